"""`lantern audit verify | tail | undo`: check the audit chain, show its latest rows, or the ways back
the latest writes recorded (each write computes its own inverse from the values it replaced)."""

from __future__ import annotations

import argparse
import json

from engine.policy.audit import AuditLog
from engine.store import Store


def configure(p: argparse.ArgumentParser) -> None:
    """Arguments of `lantern audit`."""
    p.add_argument("--db", help="database file (default: the store's; --store also takes a URL)")
    sub = p.add_subparsers(dest="audit_cmd", metavar="CMD", required=True)
    sub.add_parser(
        "verify",
        help="check the keyed audit chain, its anchor, the stored outputs and every session's events; report the first broken row",
    )
    t = sub.add_parser("tail", help="the latest rows")
    t.add_argument("-n", type=int, default=20, help="how many rows")
    t.add_argument("--session", help="only this session")
    t.add_argument("--json", action="store_true", help="one JSON object per line")
    u = sub.add_parser(
        "undo", help="the way back from the latest writes, newest first (the calls that restore the previous values)"
    )
    u.add_argument("-n", type=int, default=10, help="how many writes")
    u.add_argument("--session", help="only this session")


async def run(args: argparse.Namespace) -> int:
    """Run the audit command."""
    store = Store(args.db or getattr(args, "store", None))
    if store.path is not None and not store.path.exists():
        print(f"no store at {store.path}: nothing audited yet")
        return 0 if args.audit_cmd == "tail" else 1
    async with store:
        log = await AuditLog.open(store)
        if args.audit_cmd == "verify":
            ok, seq, why = await log.verify()
            print(("ok: " if ok else "BROKEN" + (f" at row {seq}" if seq else "") + ": ") + why)
            events_ok, events_why = await store.verify_events()
            print(("ok: " if events_ok else "BROKEN: ") + events_why)
            return 0 if ok and events_ok else 1
        if args.audit_cmd == "undo":
            return await _undo(log, args)
        rows = await log.rows(session_id=args.session, limit=max(1, args.n), newest=True)
        for r in rows:
            if args.json:
                print(json.dumps(r.__dict__, ensure_ascii=False))
            else:
                detail = r.detail.replace("\n", " ")[:80]
                print(
                    f"{r.seq:>6} {r.at[:19]} {r.session_id[:8]:8} {r.user:10.10} {r.kind:12} {r.tool:30.30} {r.decision:8} {r.rule:24.24} {detail}"
                )
        if not rows:
            print("(no audit rows)")
    return 0


UNDO_MARK = "; undo: "
"""Where an execution row's detail carries the write's own way back (engine.dispatch)."""


async def _undo(log: AuditLog, args: argparse.Namespace) -> int:
    rows = [
        r
        for r in await log.rows(session_id=args.session, newest=True)
        if r.kind == "execution" and UNDO_MARK in r.detail
    ]
    for r in rows[: max(1, args.n)]:
        undo = r.detail.split(UNDO_MARK, 1)[1].split("; approved by ", 1)[0]
        print(f"{r.seq:>6} {r.at[:19]} {r.session_id[:8]:8} {r.tool:32.32} undo: {undo}")
    if not rows:
        print("(no write recorded a way back)")
    return 0
