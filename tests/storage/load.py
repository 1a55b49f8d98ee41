"""A concurrent load on a shared store: `drive` starts writer processes and listens to them.

A writer (`python -m tests.storage.load URL WORKER CALLS`) is the real Session and Dispatcher
(tests.guard.harness) on the scripted model with python tools: every second call is a write
(approved: approval, intent and execution rows), the others reads (an execution row), five calls
a turn. It prints one JSON line: its session, the calls executed, the wall-clock span of its
turns. `drive` listens on its own connection meanwhile, and records when it heard each event.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]

PER_TURN = 5
"""Tool calls per scripted turn."""


def script(worker: int, calls: int) -> list[dict[str, Any]]:
    """The model's turns: PER_TURN calls, then a short answer."""
    from tests.guard.harness import step

    out: list[dict[str, Any]] = []
    for t in range(calls // PER_TURN):
        batch = []
        for k in range(PER_TURN):
            i = t * PER_TURN + k
            if i % 2:
                batch.append(("kubernetes.scale_deployment", {"name": f"w{worker}-d{i}", "replicas": i % 7}))
            else:
                batch.append(("kubernetes.get_pod", {"name": f"w{worker}-p{i}"}))
        out += [step(*batch), {"text": f"turn {t} done"}]
    return out


async def work(url: str, worker: int, calls: int) -> dict[str, Any]:
    """Run the writer's turns on the store at `url`."""
    from engine.store import Store
    from tests.guard.harness import Recorder, ScriptedApprover, k8s_tools, make_session, run

    rec = Recorder()
    async with Store(url) as store:
        approver = ScriptedApprover(*([True] * calls), by=f"worker{worker}")
        session, _, _ = await make_session(
            store, k8s_tools(rec), script(worker, calls), approver=approver, user=f"worker{worker}"
        )
        t0 = time.time()
        for t in range(calls // PER_TURN):
            events = await run(session, f"turn {t}")
            assert events[-1].reason == "answered", events[-1]
        t1 = time.time()
    return {"worker": worker, "session": session.id, "executed": len(rec.calls), "t0": t0, "t1": t1}


@dataclass
class Load:
    """What a run of `drive` did and heard."""

    writers: list[dict[str, Any]]
    """Each writer's line (session, executed, t0, t1)."""
    heard: list[tuple[str, int, float]] = field(default_factory=list)
    """(session_id, seq, when) for every event the listener heard, in the order heard."""
    events: int = 0
    """Events in the store afterwards."""

    @property
    def span(self) -> float:
        """Seconds from the first writer's first turn to the last writer's last."""
        return max(w["t1"] for w in self.writers) - min(w["t0"] for w in self.writers)


async def drive(url: str, writers: int, calls: int, *, wait_heard: bool = True) -> Load:
    """Run `writers` writer processes of `calls` calls each on `url`, listening meanwhile (and
    waiting, after they finish, until every stored event was heard, unless `wait_heard` is False:
    SQLite's feed does not cross processes)."""
    from engine.store import Store

    heard: list[tuple[str, int, float]] = []
    async with Store(url) as store, store.subscribe() as feed:

        async def listen() -> None:
            async for sid, seq in feed:
                heard.append((sid, seq, time.time()))

        listening = asyncio.create_task(listen())
        procs = [
            await asyncio.create_subprocess_exec(
                sys.executable, "-m", "tests.storage.load", url, str(w), str(calls),
                cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            )
            for w in range(writers)
        ]  # fmt: skip
        lines = []
        for p in procs:
            out, err = await p.communicate()
            if p.returncode != 0:
                raise RuntimeError(f"writer failed: {err.decode()[-3000:]}")
            lines.append(json.loads(out.decode().strip().splitlines()[-1]))
        total = await store.count("events")
        for _ in range(200 if wait_heard else 0):
            if len(heard) >= total:
                break
            await asyncio.sleep(0.05)
        listening.cancel()
    return Load(lines, heard, total)


if __name__ == "__main__":
    url, worker, calls = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    print(json.dumps(asyncio.run(work(url, worker, calls))), flush=True)
