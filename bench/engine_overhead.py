"""Engine time per step (scripted model, no sleeps) with 20 and 200 events already in the session.

Engine time = a step's wall time minus the model's and the tools' own time: prompt assembly
(compaction, ledger), tool selection (retrieval), the guard/policy/audit pipeline, event
stamping and the store's durable writes. The bare loop (no retrieval, verbatim context) is the
baseline measured in the same run.
Target: ≤ 20 ms per step at 200 events.

    .venv/bin/python bench/engine_overhead.py [--steps 40] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from engine.config import Config
from engine.loop import Session
from engine.store import Store
from engine.testing import ScriptedModel
from engine.toolbox import Toolbox
from engine.tools import python_tool
from wiring import open_session


def get_pods(namespace: str) -> str:
    """List pods in a namespace."""
    return "\n".join(f"checkout-{i:04x}  1/1  Running  0  {i}m  ns={namespace}" for i in range(30))


def step_script(n: int) -> list[dict]:
    return [
        {"text": f"step {i}", "tool_calls": [{"name": "get_pods", "arguments": {"namespace": "shop"}}]}
        for i in range(n - 1)
    ] + [{"text": "done"}]


async def grow(session: Session, target: int) -> None:
    """Add turns until the session holds at least `target` events."""
    while len(session.events) < target:
        session.model.enqueue(*step_script(2))  # type: ignore[attr-defined]
        async for _ in session.run_turn("warm up"):
            pass


async def measure(size: int, steps: int, tmp: Path, full: bool) -> dict:
    model = ScriptedModel(chunk=64)
    async with Store(tmp / f"bench-{size}.db") as store:
        cfg = Config(model="scripted:x", max_steps=steps + 1)
        if full:
            from wiring import build_toolbox

            toolbox = build_toolbox(cfg, extra_tools=[python_tool(get_pods)])
        else:
            toolbox = Toolbox([python_tool(get_pods)])
        session = await open_session(cfg, store=store, model=model, toolbox=toolbox)
        session.config.max_tokens = 10**9
        await grow(session, size)
        before = len(session.events)
        model.enqueue(*step_script(steps))
        engine_ms = []
        async for e in session.run_turn("why is checkout failing?"):
            if e.kind == "step-finished":
                # The scripted model answers instantly and the tool is trivial, so a step's wall time is the
                # engine's own: selection, context, guard, policy, audit, store writes.
                engine_ms.append(e.duration_ms)
        engine_ms.sort()
        return {
            "events_before": before,
            "steps": len(engine_ms),
            "mean_ms": round(statistics.mean(engine_ms), 2),
            "p50_ms": round(engine_ms[len(engine_ms) // 2], 2),
            "p95_ms": round(engine_ms[int(len(engine_ms) * 0.95) - 1], 2),
        }


async def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as d:
        rows = {}
        for full in (False, True):
            for size in (20, 200):
                rows[("full runtime" if full else "bare loop", size)] = await measure(
                    size, args.steps, Path(d), full=full
                )
    if args.json:
        print(json.dumps({f"{k[0]} @{k[1]}": v for k, v in rows.items()}, indent=1))
    else:
        print(f"{'pipeline':>13} {'events':>7} {'steps':>6} {'mean ms':>8} {'p50 ms':>8} {'p95 ms':>8}")
        for (name, _), r in rows.items():
            print(
                f"{name:>13} {r['events_before']:>7} {r['steps']:>6} {r['mean_ms']:>8} {r['p50_ms']:>8} {r['p95_ms']:>8}"
            )
        full = rows[("full runtime", 200)]["mean_ms"]
        base = rows[("bare loop", 200)]["mean_ms"]
        print(
            f"full runtime vs bare loop at 200 events: {full / max(base, 1e-6):.1f}x   target: <= 20 ms per step at 200 events   ({time.perf_counter() - t0:.1f} s)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
