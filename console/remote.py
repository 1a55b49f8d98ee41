"""The plain face against `lantern serve`: `lantern ask --server URL` and `lantern sessions --server URL`.

The events come over the attach WebSocket and are rendered by the same BlockRenderer as a local
turn's; an approval request is answered at the terminal (when there is one) by sending the
answer, which the server binds to the connection's identity. Every failure is one line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

from rich.console import Console

from engine import events as ev


def _fail(message: str) -> int:
    print(f"lantern: {message}", file=sys.stderr)
    return 2


async def ask_remote(args: argparse.Namespace, console: Console | None = None) -> int:
    """One turn on the server: a new session (or --session/--continue), rendered as it happens."""
    from server.client import Remote, RemoteError

    console = console or Console(stderr=False, highlight=False)
    try:
        remote = Remote(args.server)
        sid = await _session_for(remote, args)
        async with remote.attach(sid) as face:
            return await _one_turn(face, args.question, as_json=args.json, console=console)
    except RemoteError as exc:
        return _fail(str(exc))


async def _session_for(remote: Any, args: argparse.Namespace) -> str:
    from server.client import RemoteError

    if getattr(args, "session", None):
        return str(args.session)
    if getattr(args, "cont", False):
        rows = await remote.sessions(limit=1)
        if not rows:
            raise RemoteError(f"no session to continue on {remote.url}")
        return str(rows[0]["id"])
    return str(await remote.create())


async def _one_turn(face: Any, question: str, *, as_json: bool, console: Console) -> int:
    """Render what opening the session said, send the question, render until its turn ends."""
    from console.plain import BlockRenderer

    render = BlockRenderer(console)
    history: list[Any] = []
    frames = face.frames()
    async for item in frames:  # the history, up to the `live` marker
        if isinstance(item, dict):
            if item.get("frame") == "live":
                break
            continue
        history.append(item)
    starts = [i for i, e in enumerate(history) if isinstance(e, ev.SessionStarted)]
    for e in history[starts[-1] :] if starts else []:
        _show(e, render, as_json)
    await face.message(question)
    turn, errors, last, prompts = None, 0, None, set[asyncio.Task[None]]()
    asked: dict[str, ev.ApprovalRequested] = {}
    async for item in frames:
        if isinstance(item, dict):
            kind = item.get("frame")
            if kind == "accepted":
                turn = item.get("turn")
            elif kind == "error":
                return _fail(str(item.get("message") or item.get("code")))
            elif kind == "refused":
                print(f"lantern: your answer did not count: {item.get('reason')}", file=sys.stderr)
            elif kind == "approvers" and item.get("request_id") in asked:
                request = asked.pop(str(item["request_id"]))
                if item.get("can_answer"):
                    prompts.add(asyncio.create_task(_prompt(face, request, console)))
                else:  # the Approve action is not this face's: say who may
                    who = ", ".join(item.get("approvers") or []) or "an approver"
                    console.print(f"approval pending ({request.tool}): waiting for {who}", style="yellow")
            continue
        _show(item, render, as_json)
        if isinstance(item, ev.ApprovalRequested) and item.turn == turn:
            asked[item.request_id] = item  # the server's `approvers` frame follows: may this face answer?
        if isinstance(item, ev.ErrorEvent) and item.turn == turn:
            errors += 1
        if isinstance(item, ev.TurnFinished) and item.turn == turn:
            last = item
            break
    for t in prompts:
        t.cancel()
    if last is None:
        return _fail("the server closed the connection before the turn finished")
    return 0 if last.reason == "answered" and not errors else 1


def _show(e: Any, render: Any, as_json: bool) -> None:
    if as_json:
        print(ev.to_json(e), flush=True)
    else:
        render(e)


async def _prompt(face: Any, request: ev.ApprovalRequested, console: Console) -> None:
    """Ask y/N at this terminal and send the answer; without a terminal, leave it to another face."""
    from console.plain import PromptApprover

    if not sys.stdin.isatty():
        console.print(
            f"waiting for an approver on another face ({request.tool}, request {request.request_id})", style="yellow"
        )
        return
    answer = await PromptApprover(console, "").ask(request)
    await face.answer(request, answer.approved, answer.reason)


async def sessions_remote(args: argparse.Namespace) -> int:
    """`lantern sessions --server URL [show ID]`: the server's sessions, or one's events."""
    from server.client import Remote, RemoteError

    try:
        remote = Remote(args.server)
        if args.action == "list":
            rows = await remote.sessions(limit=args.limit)
            if args.json:
                print(json.dumps(rows, indent=1))
            elif not rows:
                print("no sessions yet")
            for r in rows if not args.json else []:
                state = "running" if r.get("running") else ("live" if r.get("live") else "")
                print(
                    f"{r['id']}  {r['updated_at'][:19]}  {r['events']:5d} events  {r['model']:28s}  {state:7s}  {r['title']}"
                )
            return 0
        if args.action != "show":
            return _fail(f"lantern sessions {args.action} runs on the server's machine, not through --server")
        if not args.id:
            return _fail("lantern sessions show: give a session id")
        for e in await remote.events(args.id):
            print(ev.to_json(e))
        return 0
    except RemoteError as exc:
        return _fail(str(exc))
