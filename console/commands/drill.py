"""`lantern drill list|run NAME`: proof that a playbook heals. A drill starts the sandbox scenario,
runs one investigation turn on its alert, applies the fix through the normal policy, preview and
approval path (auto-approved only here, and only with --auto-approve), then reads the scenario's
own health condition from the cluster and reports what happened.

    scenario → sandbox up + apply → Session.run_turn(alert) → approvals (dry-run diff) → writes
    → health condition polled → {scenario, diagnosed, fix, healed, seconds, session}

`--model reference` plays the scenario's reference fix through the same path, so the machinery is
testable without a model.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

from engine import events as ev

REFERENCE = "reference"
"""The --model value that plays the scenario's own fix."""


def configure(p: argparse.ArgumentParser) -> None:
    """Arguments of `lantern drill`."""
    sub = p.add_subparsers(dest="drill_cmd", metavar="CMD", required=True)
    sub.add_parser("list", help="the scenarios a drill can run")
    r = sub.add_parser("run", help="run one drill")
    r.add_argument("name", help="scenario name (lantern drill list)")
    r.add_argument("--model", default=None, help="reference (the scenario's own fix), local, or provider/model")
    r.add_argument("--auto-approve", action="store_true", help="approve every call the policy asks about (drills only)")
    r.add_argument("--json", action="store_true", help="print the report as one JSON object")
    r.add_argument("--keep", action="store_true", help="leave the sandbox running afterwards")


class DrillApprover:
    """Approves every request as the session's user, bound to its call hash and request id."""

    def __init__(self, user: str) -> None:
        self.user = user
        self.requests: list[Any] = []

    async def ask(self, request: Any) -> Any:
        from engine.loop import ApprovalAnswer

        self.requests.append(request)
        return ApprovalAnswer(
            approved=True,
            by=self.user,
            reason="drill auto-approve",
            call_hash=request.call_hash,
            request_id=request.request_id,
        )


def run(args: argparse.Namespace) -> int:
    """List the drills, or run one."""
    from sandbox.scenario import ScenarioError, list_scenarios, load_scenario

    if args.drill_cmd == "list":
        for sc in list_scenarios():
            if sc.drill is not None:
                print(f"{sc.name:<20} {sc.title}")
        return 0
    try:
        sc = load_scenario(args.name)
    except ScenarioError as exc:
        print(f"lantern drill: {exc}", file=sys.stderr)
        return 2
    if sc.drill is None:
        print(f"lantern drill: scenario {sc.name!r} has no drill section", file=sys.stderr)
        return 2
    import asyncio

    try:
        report = asyncio.run(_drill(sc, args))
    except DrillError as exc:
        print(f"lantern drill {sc.name}: {exc}", file=sys.stderr)
        return 1
    _print(report, args.json)
    return 0 if report["healed"] else 1


class DrillError(RuntimeError):
    """The drill could not run (the sandbox would not start, the model is missing)."""


async def _drill(sc: Any, args: argparse.Namespace) -> dict[str, Any]:
    from sandbox import cluster
    from sandbox.drill import wait_healthy

    t0 = time.monotonic()
    started = not cluster.is_running()
    try:
        si = await _up(sc)
    except Exception as exc:  # noqa: BLE001 - a sandbox that will not start is a one-line error
        raise DrillError(str(exc).splitlines()[0]) from None
    try:
        session, events, approver = await _investigate(sc, si, args)
        left = await _in_thread(wait_healthy, sc)
    finally:
        if started and not args.keep:
            await _in_thread(cluster.down)
    return _report(sc, session.id, events, left, time.monotonic() - t0, approver)


async def _in_thread(fn: Any, *a: Any) -> Any:
    import asyncio

    return await asyncio.to_thread(fn, *a)


async def _up(sc: Any) -> Any:
    from sandbox import cluster
    from sandbox.scenario import apply_scenario

    si = await _in_thread(lambda: cluster.ensure_up(nodes=sc.nodes))
    # a drill always starts from the scenario's broken state, even when it was running already
    await _in_thread(lambda: apply_scenario(sc.name))
    for name, url in cluster.info().endpoints.items():
        var = {"prometheus": "LANTERN_PROMETHEUS_URL", "rabbitmq": "LANTERN_QUEUE_URL"}.get(name)
        if var:
            os.environ[var] = url
    return si


async def _investigate(sc: Any, si: Any, args: argparse.Namespace) -> tuple[Any, list[Any], Any]:
    from console.plain import PromptApprover
    from engine.config import load
    from engine.store import Store
    from wiring import open_session

    cfg = load(context=si.context, namespace=sc.namespace, model=None if args.model == REFERENCE else args.model)
    model = _reference_model(sc) if args.model == REFERENCE else None
    if args.auto_approve:
        approver: Any = DrillApprover(cfg.user)
    else:
        from rich.console import Console

        approver = PromptApprover(Console(stderr=True), cfg.user)
    async with Store() as store:
        session = await open_session(cfg, store=store, approver=approver, model=model)
        question = f"{sc.symptom.strip()}\nInvestigate, name the cause, and fix it with the smallest safe change."
        async for _ in session.run_turn(question):
            pass
        offer = _offered_fix(session.events)
        if offer is not None:
            # what the console's one key does: the answer's own fix, through the same approval
            async for _ in session.run_call(
                f"run the proposed fix: {offer.written}", offer.tool, dict(offer.arguments)
            ):
                pass
        return session, list(session.events), approver


def _offered_fix(events: list[Any]) -> Any:
    """The fix the last turn's answer offered as a call (one the turn did not already make)."""
    turn = max((e.turn for e in events), default=0)
    return next((e for e in reversed(events) if e.turn == turn and isinstance(e, ev.FixOffered)), None)


def _reference_model(sc: Any) -> Any:
    from engine.testing import ScriptedModel
    from sandbox.drill import reference_calls

    calls = reference_calls(sc)
    reads = [{"name": r.tool, "arguments": dict(r.arguments)} for r in sc.drill.investigate]
    script: list[dict[str, Any]] = (
        [{"text": "Reading the objects the fix acts on.", "tool_calls": reads}] if reads else []
    )
    # the fix is one plan, as a model would propose it: the critic judges its steps together
    script.append(
        {"text": "Applying the reference fix: " + ", ".join(c["name"] for c in calls) + ".", "tool_calls": calls}
    )
    script.append(
        {"text": f"Cause: {sc.drill.cause[0]} ({sc.title}). Fixed with: " + ", ".join(c["name"] for c in calls) + "."}
    )
    return ScriptedModel(script, name=REFERENCE)


def _report(
    sc: Any, session_id: str, events: list[Any], left: list[str], seconds: float, approver: Any
) -> dict[str, Any]:
    started = {e.call_id: e for e in events if isinstance(e, ev.ToolCallStarted)}
    fix = [
        {"tool": e.tool, "arguments": started[e.call_id].arguments, "status": e.status}
        for e in events
        if isinstance(e, ev.ToolCallFinished) and e.call_id in started and started[e.call_id].risk != "read"
    ]
    blocked = [
        {"tool": e.tool, "status": e.status, "why": e.output.splitlines()[0][:200]}
        for e in events
        if isinstance(e, ev.ToolCallFinished) and e.call_id not in started and e.status != "ok"
    ]
    answers = [e.text for e in events if isinstance(e, ev.AssistantMessage) and e.text and not e.tool_calls]
    diagnosed = answers[-1].strip() if answers else ""
    approvals = [
        {"tool": e.tool, "rule": e.rule, "objects": e.objects, "diff": e.preview}
        for e in events
        if isinstance(e, ev.ApprovalRequested)
    ]
    return {
        "scenario": sc.name,
        "diagnosed": diagnosed,
        "diagnosed_right": any(w.lower() in diagnosed.lower() for w in sc.drill.cause),
        "fix": fix,
        "not_run": blocked,
        "healed": not left and any(f["status"] == "ok" for f in fix),
        "still_wrong": left,
        "seconds": round(seconds, 1),
        "session": session_id,
        "approvals": approvals,
    }


def _print(report: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(report, ensure_ascii=False))
        return
    mark = "healed" if report["healed"] else "NOT healed"
    print(f"drill {report['scenario']}: {mark} in {report['seconds']}s (session {report['session']})")
    print(
        f"  diagnosed: {report['diagnosed'].splitlines()[0] if report['diagnosed'] else '-'}"
        + ("" if report["diagnosed_right"] else "  (cause not named)")
    )
    for f in report["fix"]:
        print(f"  fix: {f['tool']} {json.dumps(f['arguments'], ensure_ascii=False)} → {f['status']}")
    for w in report["still_wrong"]:
        print(f"  still wrong: {w}")
