"""`lantern ask "question"`: one turn in the plain terminal face."""

from __future__ import annotations

import argparse
import sys

from rich.console import Console


def configure(p: argparse.ArgumentParser) -> None:
    """Arguments of `lantern ask`."""
    p.add_argument("question", help="what to ask")
    p.add_argument("--json", action="store_true", help="print raw event lines (JSON) instead of blocks")


async def run(args: argparse.Namespace) -> int:
    """Open (or continue) a session, run one turn, render it (on `--server`, the server runs it)."""
    if getattr(args, "server", None):
        from console.remote import ask_remote

        return await ask_remote(args)
    from console.cli import session_config
    from console.plain import PromptApprover, ask
    from engine.models.errors import ModelError
    from engine.store import Store
    from wiring import open_session

    cfg = session_config(args)
    console = Console(stderr=False, highlight=False)
    async with Store() as store:
        sid = None
        if args.cont:
            sid = await store.latest()
        elif args.session:
            sid = await store.find(args.session)
            if sid is None:
                print(f"lantern: no session matches {args.session!r}", file=sys.stderr)
                return 2
        try:
            session = await open_session(cfg, store=store, approver=PromptApprover(console, cfg.user), session_id=sid)
        except ModelError as exc:
            print(f"lantern: {exc.message}" + (f"\n  hint: {exc.hint}" if exc.hint else ""), file=sys.stderr)
            return 2
        code = await ask(session, args.question, as_json=args.json, console=console)
        from wiring import score_in_background

        await score_in_background(store, session.id, session.toolbox)
        return code
