"""Benchmark of the embedded model: load time, prompt/generation speed, step time by tool count,
and single-step tool-call accuracy over Lantern's own skill packs.

    .venv/bin/python bench/local_model.py                  # everything
    .venv/bin/python bench/local_model.py --skip-accuracy  # speed only (a few minutes)
    .venv/bin/python bench/local_model.py --limit 10       # first 10 accuracy prompts

Accuracy: each prompt in bench/data/tool_prompts.jsonl names the tool set offered (the needed
tool among 7 to 12 others, all real pack actions), the expected tool and the expected
arguments. A case passes when the tool is right and every expected argument has the expected
value (strings compared case-insensitively, trimmed; {"any_of": [...]} lists alternatives),
and no argument listed in the case's "absent" is set (e.g. a revision when the prompt says
"the previous revision"). Other extra optional arguments are allowed in the main score; the
strict score also fails a call that sets any argument beyond the expected ones and the case's
"allowed" list (an invented thread id, a record type nobody asked for). The baseline from the same run is a lexical
chooser (word overlap between the prompt and each tool's name, description and keywords),
which picks a tool but cannot fill arguments.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from engine.models.base import Message, ToolCall, ToolSpec  # noqa: E402
from engine.models.local import LocalModel  # noqa: E402

SYSTEM = (
    "You are Lantern, an on-call assistant investigating production incidents. "
    "Use the tools to gather evidence before concluding."
)


def load_pack_tools(packs_dir: Path) -> dict[str, tuple[ToolSpec, list[str]]]:
    """name → (ToolSpec, keywords) for every action of every pack YAML in `packs_dir`."""
    import yaml

    out: dict[str, tuple[ToolSpec, list[str]]] = {}
    for f in sorted(packs_dir.glob("*.yaml")):
        pack = yaml.safe_load(f.read_text())
        for a in pack.get("actions") or []:
            params = dict(a.get("parameters") or {})
            params.setdefault("type", "object")
            params.setdefault("properties", {})
            name = f"{pack['name']}.{a['name']}"
            spec = ToolSpec(name=name, description=" ".join(str(a.get("description", "")).split()), parameters=params)
            out[name] = (spec, [str(k) for k in a.get("keywords") or []] + [str(e) for e in a.get("examples") or []])
    return out


def _norm(v: Any) -> Any:
    if isinstance(v, str):
        return v.strip().casefold()
    if isinstance(v, list):
        return [_norm(x) for x in v]
    return v


def arguments_match(
    expected: dict[str, Any], got: dict[str, Any], absent: list[str] | None = None
) -> tuple[bool, list[str]]:
    """(every expected argument matches and none of `absent` is set, the extra arguments the model added)."""
    if any(k in got for k in absent or []):
        return False, []
    for k, want in expected.items():
        if k not in got:
            return False, []
        alts = want["any_of"] if isinstance(want, dict) and "any_of" in want else [want]
        if not any(_norm(got[k]) == _norm(a) for a in alts):
            return False, []
    return True, sorted(set(got) - set(expected))


_WORD = re.compile(r"[a-z0-9]+")


def lexical_choice(prompt: str, tools: list[tuple[ToolSpec, list[str]]]) -> str:
    """The baseline: the tool sharing most words with the prompt (name, description, keywords)."""
    words = set(_WORD.findall(prompt.lower()))
    best, score = "", -1.0
    for spec, kws in tools:
        text = " ".join([spec.name.replace("_", " ").replace(".", " "), spec.description, *kws]).lower()
        tw = set(_WORD.findall(text))
        s = len(words & tw) / (1 + len(tw)) ** 0.5
        if s > score:
            best, score = spec.name, s
    return best


async def one_step(model: LocalModel, messages: list[Message], tools: list[ToolSpec]) -> tuple[Any, float]:
    """Run one step; (completion, seconds)."""
    t0 = time.perf_counter()
    done = None
    async for chunk in model.stream(messages, tools):
        if chunk.type == "completion":
            done = chunk
    return done, time.perf_counter() - t0


FAKE_PODS = (
    "NAME                        READY  STATUS            RESTARTS  AGE\n"
    "checkout-7d9f4-2xk8p        0/1    CrashLoopBackOff  14        32m\n"
    "checkout-7d9f4-9qwer        0/1    CrashLoopBackOff  13        32m\n"
    "cart-55c1b-77hzt            1/1    Running           0         3d\n"
    "frontend-6b7d9-lk2p0        1/1    Running           0         3d\n"
    "orders-84f2c-x8d7s          1/1    Running           1         2d"
)


async def speed(model: LocalModel, all_tools: dict[str, tuple[ToolSpec, list[str]]]) -> dict[str, Any]:
    """Step time with 5, 12 and 30 tools: a cold step (new tool set) and the next step (cached prefix)."""
    order = [
        "kubernetes.list_pods",
        "kubernetes.describe_pod",
        "kubernetes.get_pod_logs",
        "kubernetes.list_events",
        "kubernetes.rollout_history",
    ]
    rest = [n for n in all_tools if n not in order]
    names = order + rest
    res: dict[str, Any] = {}
    # Long answers would measure only generation; a cap keeps the run short on 2 shared cores.
    keep, model.max_step_tokens = model.max_step_tokens, 160
    for n in (5, 12, 30):
        tools = [all_tools[x][0] for x in names[:n]]
        # A unique first line makes this tool set's prefix cold, as when the tool set changes.
        system = f"{SYSTEM}\n(run {time.time():.0f}-{n})"
        q = "Pods of checkout in namespace shop keep restarting. Find out why."
        msgs = [Message(role="system", content=system), Message(role="user", content=q)]
        c1, t1 = await one_step(model, msgs, tools)
        s1 = dict(model.last_step)
        call = (
            c1.tool_calls[0]
            if c1 and c1.tool_calls
            else ToolCall(id="call_x", name="kubernetes.list_pods", arguments={"namespace": "shop"})
        )
        msgs2 = msgs + [
            Message(role="assistant", content=c1.text if c1 else "", tool_calls=[call]),
            Message(role="tool", content=FAKE_PODS, tool_call_id=call.id, name=call.name),
        ]
        c2, t2 = await one_step(model, msgs2, tools)
        s2 = dict(model.last_step)
        res[str(n)] = {
            "cold_step_s": round(t1, 2),
            "next_step_s": round(t2, 2),
            "cold": s1,
            "next": s2,
            "step1": f"{call.name}({json.dumps(call.arguments)})",
            "step2": (c2.tool_calls[0].name if c2 and c2.tool_calls else "answer"),
        }
        print(
            f"  {n:2d} tools: cold step {t1:6.1f}s (prompt {s1['prompt_tokens']} tok, {s1['cached_tokens']} cached, "
            f"{s1['completion_tokens']} generated)  next step {t2:6.1f}s (prompt {s2['prompt_tokens']} tok, "
            f"{s2['cached_tokens']} cached, {s2['completion_tokens']} generated)",
            flush=True,
        )
    model.max_step_tokens = keep
    return res


async def cancel_latency(model: LocalModel, tools: list[ToolSpec]) -> dict[str, float]:
    """Seconds from closing a stream to the worker going idle: during generation, and during prompt evaluation."""
    out: dict[str, float] = {}
    msgs = [
        Message(role="system", content=SYSTEM),
        Message(role="user", content="Explain in detail what a CrashLoopBackOff is and all its causes."),
    ]
    stream = model.stream(msgs, [])
    async for _ in stream:
        break  # the first streamed fragment: generation is under way
    t0 = time.perf_counter()
    await stream.aclose()
    while model.busy:
        await asyncio.sleep(0.005)
    out["during_generation_s"] = time.perf_counter() - t0
    filler = " ".join(f"line {i}: pod web-{i} restarted with exit code {i % 7}" for i in range(200))
    msgs = [Message(role="system", content=f"{SYSTEM} {time.time()}"), Message(role="user", content=filler)]
    task = asyncio.ensure_future(anext(model.stream(msgs, tools)))
    while not model.busy:
        await asyncio.sleep(0.01)
    await asyncio.sleep(2.0)
    t0 = time.perf_counter()
    task.cancel()
    try:
        await task
    except (asyncio.CancelledError, StopAsyncIteration):
        pass
    while model.busy:
        await asyncio.sleep(0.005)
    out["during_prompt_eval_s"] = time.perf_counter() - t0
    return out


async def accuracy(
    model: LocalModel, all_tools: dict[str, tuple[ToolSpec, list[str]]], cases: list[dict[str, Any]]
) -> dict[str, Any]:
    """Run every case once; print one line per case and the totals."""
    rows = []
    # Cases sharing a tool set run together so the system prompt comes from the KV cache.
    cases = sorted(cases, key=lambda c: (c["set_name"], c["id"]))
    for c in cases:
        missing = [n for n in c["set"] if n not in all_tools]
        if missing:
            rows.append(
                {
                    "id": c["id"],
                    "ok": False,
                    "tool_ok": False,
                    "error": f"missing tools {missing}",
                    "s": 0.0,
                    "base_ok": False,
                }
            )
            print(f"  {c['id']} MISSING {missing}", flush=True)
            continue
        offered = [all_tools[n] for n in c["set"]]
        msgs = [Message(role="system", content=SYSTEM), Message(role="user", content=c["prompt"])]
        done, dt = await one_step(model, msgs, [t for t, _ in offered])
        call = done.tool_calls[0] if done and done.tool_calls else None
        got_tool = call.name if call else "(answer)"
        got_args = call.arguments if call else {}
        tool_ok = got_tool == c["tool"]
        args_ok, extra = arguments_match(c["arguments"], got_args, c.get("absent")) if tool_ok else (False, [])
        base = lexical_choice(c["prompt"], offered)
        extra = [k for k in extra if k not in (c.get("allowed") or [])]
        rows.append(
            {
                "id": c["id"],
                "ok": tool_ok and args_ok,
                "strict_ok": tool_ok and args_ok and not extra,
                "tool_ok": tool_ok,
                "extra": extra,
                "s": dt,
                "got": {"tool": got_tool, "arguments": got_args},
                "base_ok": base == c["tool"],
                "tokens": model.last_step.get("completion_tokens"),
                "cached": model.last_step.get("cached_tokens"),
                "prompt_tokens": model.last_step.get("prompt_tokens"),
            }
        )
        mark = "ok  " if tool_ok and args_ok else ("ARGS" if tool_ok else "TOOL")
        mark = "ok+" if mark == "ok  " and extra else mark
        print(
            f"  {c['id']} {mark} {dt:5.1f}s {got_tool}({json.dumps(got_args)})"
            + ("" if tool_ok and args_ok else f"  expected {c['tool']}({json.dumps(c['arguments'])})"),
            flush=True,
        )
    n = len(rows)
    ok = sum(r["ok"] for r in rows)
    summary = {
        "cases": n,
        "correct": ok,
        "accuracy": ok / n if n else 0.0,
        "tool_accuracy": sum(r["tool_ok"] for r in rows) / n if n else 0.0,
        "baseline_tool_accuracy": sum(r["base_ok"] for r in rows) / n if n else 0.0,
        "strict_accuracy": sum(bool(r.get("strict_ok")) for r in rows) / n if n else 0.0,
        "with_extra_arguments": sum(bool(r.get("extra")) for r in rows),
        "mean_step_s": sum(r["s"] for r in rows) / n if n else 0.0,
        "rows": rows,
    }
    return summary


async def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--packs", type=Path, default=ROOT / "skills" / "packs", help="directory of skill pack YAML files")
    ap.add_argument("--prompts", type=Path, default=ROOT / "bench" / "data" / "tool_prompts.jsonl")
    ap.add_argument("--limit", type=int, default=0, help="only the first N accuracy prompts")
    ap.add_argument("--half", choices=["a", "b"], help="only every other prompt (a: 1st, 3rd, ...; b: 2nd, 4th, ...)")
    ap.add_argument(
        "--no-tool-first", action="store_true", help="let the first step of a turn answer without calling a tool"
    )
    ap.add_argument("--skip-speed", action="store_true")
    ap.add_argument("--skip-accuracy", action="store_true")
    ap.add_argument("--skip-cancel", action="store_true")
    ap.add_argument("--thought", action="store_true", help="ask for a one-sentence thought before each call")
    ap.add_argument("--json", type=Path, help="write all results here")
    args = ap.parse_args(argv)

    if not args.packs.is_dir():
        print(f"no skill packs at {args.packs} (use --packs DIR)", file=sys.stderr)
        return 2
    all_tools = load_pack_tools(args.packs)
    try:
        model = LocalModel.create("local")
    except Exception as exc:  # noqa: BLE001
        print(f"local model unavailable: {exc} ({getattr(exc, 'hint', '')})", file=sys.stderr)
        return 2
    model.thought = args.thought
    model.tool_first = not args.no_tool_first
    load = os.getloadavg()
    print(
        f"local model bench: {model.name}, n_ctx {model.context_window}, {model.n_threads} threads, "
        f"thought={'on' if model.thought else 'off'}, tool_first={'on' if model.tool_first else 'off'}, {len(all_tools)} pack tools, load average {load[0]:.1f}",
        flush=True,
    )
    t0 = time.perf_counter()
    await model.warm()
    print(f"load: {model.load_seconds:.1f}s", flush=True)
    results: dict[str, Any] = {
        "model": model.name,
        "load_s": model.load_seconds,
        "thought": model.thought,
        "loadavg_start": load,
    }

    if not args.skip_speed:
        print("speed (one investigation step; cold = tool set not cached, next = after a tool result):", flush=True)
        sp = await speed(model, all_tools)
        results["speed"] = sp
        cold = [v["cold"] for v in sp.values()]
        pt = [c["prompt_tok_s"] for c in cold if c.get("prompt_tok_s")]
        gt = [v[k]["gen_tok_s"] for v in sp.values() for k in ("cold", "next") if v[k].get("gen_tok_s")]
        results["prompt_tok_s"] = sum(pt) / len(pt) if pt else None
        results["gen_tok_s"] = sum(gt) / len(gt) if gt else None
        print(
            f"prompt: {results['prompt_tok_s'] or 0:.1f} tok/s   generation: {results['gen_tok_s'] or 0:.1f} tok/s",
            flush=True,
        )

    if not args.skip_cancel:
        cl = await cancel_latency(model, [t for t, _ in list(all_tools.values())[:5]])
        results["cancel"] = cl
        print(
            f"cancel: stopped {cl['during_generation_s'] * 1000:.0f} ms after close during generation, "
            f"{cl['during_prompt_eval_s'] * 1000:.0f} ms during prompt evaluation",
            flush=True,
        )

    if not args.skip_accuracy:
        cases = [json.loads(line) for line in args.prompts.read_text().splitlines() if line.strip()]
        if args.half:
            cases = cases[(0 if args.half == "a" else 1) :: 2]
        if args.limit:
            cases = cases[: args.limit]
        print(f"accuracy ({len(cases)} single-step prompts over the packs):", flush=True)
        acc = await accuracy(model, all_tools, cases)
        results["accuracy"] = acc
        print(
            f"accuracy: {acc['correct']}/{acc['cases']} = {acc['accuracy']:.1%} right tool and arguments; "
            f"right tool {acc['tool_accuracy']:.1%}; baseline (lexical tool choice) {acc['baseline_tool_accuracy']:.1%}; "
            f"strict (no unasked-for arguments) {acc['strict_accuracy']:.1%}; mean step {acc['mean_step_s']:.1f}s",
            flush=True,
        )
    results["wall_s"] = time.perf_counter() - t0
    results["loadavg_end"] = os.getloadavg()
    print(f"total {results['wall_s']:.0f}s, load average now {results['loadavg_end'][0]:.1f}", flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
