"""`lantern sessions`: list stored sessions, or show one."""

from __future__ import annotations

import argparse
import json
import os
import sys


def configure(p: argparse.ArgumentParser) -> None:
    """Arguments of `lantern sessions`."""
    p.add_argument("action", nargs="?", choices=["list", "show", "mark"], default="list")
    p.add_argument("id", nargs="?", help="session id or unique prefix (for show and mark)")
    p.add_argument(
        "verdict",
        nargs="?",
        choices=["good", "bad"],
        help="with mark: a bad session never teaches, and forgets what it taught",
    )
    p.add_argument("--score", action="store_true", help="with show: print the trajectory score")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--limit", type=int, default=30)
    p.add_argument(
        "--server",
        metavar="URL",
        default=os.environ.get("LANTERN_SERVER"),
        help="the sessions of `lantern serve` at URL",
    )


async def run(args: argparse.Namespace) -> int:
    """List or show sessions."""
    if getattr(args, "server", None):
        from console.remote import sessions_remote

        return await sessions_remote(args)
    from engine import events as ev
    from engine.store import Store

    async with Store() as store:
        if args.action == "list":
            rows = await store.sessions(limit=args.limit)
            if args.json:
                print(json.dumps([r.__dict__ for r in rows], indent=1))
                return 0
            if not rows:
                print("no sessions yet")
                return 0
            for r in rows:
                print(f"{r.id}  {r.updated_at[:19]}  {r.events:5d} events  {r.model:28s}  {r.title}")
            return 0
        if not args.id:
            print("lantern sessions show: give a session id", file=sys.stderr)
            return 2
        sid = await store.find(args.id)
        if sid is None:
            print(f"lantern: no session matches {args.id!r}", file=sys.stderr)
            return 2
        if args.action == "mark":
            return await _mark(store, sid, args.verdict)
        if args.score:
            score = await store.get_score(sid)
            if score is None:
                from engine.critic.trajectory import score_session

                score = score_session(await store.events(sid))
                await store.put_score(sid, score)
            print(json.dumps(score, indent=1))
            return 0
        for e in await store.events(sid):
            print(ev.to_json(e))
        return 0


async def _mark(store: object, sid: str, verdict: str | None) -> int:
    """Keep the user's verdict; a bad session's lessons leave the experience memory."""
    if verdict is None:
        print("lantern sessions mark: say good or bad", file=sys.stderr)
        return 2
    await store.put_mark(sid, verdict)  # type: ignore[attr-defined]
    forgot = 0
    if verdict == "bad":
        from console.commands.experience import memory_at
        from engine.config import cache_dir

        if (cache_dir() / "index" / "experience").exists():
            forgot = memory_at(None).forget(source=f"session:{sid}")
    print(f"session {sid} marked {verdict}" + (f"; forgot the {forgot} lessons it taught" if forgot else ""))
    return 0
