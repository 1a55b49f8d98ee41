"""`lantern handoff SESSION [--format md|json] [--out FILE]`: the incident as the next shift reads it."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def configure(p: argparse.ArgumentParser) -> None:
    """Arguments of `lantern handoff`."""
    p.add_argument("session", nargs="?", help="session id or unique prefix")
    p.add_argument("--format", choices=["md", "json"], default="md", help="Markdown (default) or JSON")
    p.add_argument("--out", help="write to this file instead of printing")
    p.add_argument("--db", help="the store file (default: the user's store)")


def _fail(message: str) -> int:
    print(f"lantern handoff: {message}", file=sys.stderr)
    return 2


async def run(args: argparse.Namespace) -> int:
    """Print (or write) one session's handoff."""
    from engine import handoff
    from engine.store import Store

    if not args.session:
        return _fail("give a session id (`lantern sessions` lists them)")
    store = Store(args.db or getattr(args, "store", None))
    if store.path is not None and not store.path.exists():
        return _fail(f"no session matches {args.session!r} (no store at {store.path})")
    async with store:
        sid = await store.find(args.session)
        if sid is None:
            return _fail(f"no session matches {args.session!r}")
        h = await handoff.load(store, sid)
    text = h.to_json() + "\n" if args.format == "json" else handoff.markdown(h)
    if args.out:
        Path(args.out).write_text(text)
        print(f"handoff of session {sid} written to {args.out}")
    else:
        sys.stdout.write(text)
    return 0
