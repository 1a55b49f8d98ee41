"""`lantern audit verify | tail`: check the audit chain, or show its latest rows."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from engine.policy.audit import AuditLog
from engine.store import Store, default_path


def configure(p: argparse.ArgumentParser) -> None:
    """Arguments of `lantern audit`."""
    p.add_argument("--db", help="database file (default: the store's)")
    sub = p.add_subparsers(dest="audit_cmd", metavar="CMD", required=True)
    sub.add_parser("verify", help="check the keyed audit chain, its anchor, the stored outputs and every session's events; report the first broken row")
    t = sub.add_parser("tail", help="the latest rows")
    t.add_argument("-n", type=int, default=20, help="how many rows")
    t.add_argument("--session", help="only this session")
    t.add_argument("--json", action="store_true", help="one JSON object per line")


async def run(args: argparse.Namespace) -> int:
    """Run the audit command."""
    path = Path(args.db) if args.db else default_path()
    if not path.exists():
        print(f"no store at {path}: nothing audited yet")
        return 0 if args.audit_cmd == "tail" else 1
    async with Store(path) as store:
        log = await AuditLog.open(store.db)
        if args.audit_cmd == "verify":
            ok, seq, why = await log.verify()
            print(("ok: " if ok else "BROKEN" + (f" at row {seq}" if seq else "") + ": ") + why)
            events_ok, events_why = await store.verify_events()
            print(("ok: " if events_ok else "BROKEN: ") + events_why)
            return 0 if ok and events_ok else 1
        rows = await log.rows(session_id=args.session, limit=max(1, args.n), newest=True)
        for r in rows:
            if args.json:
                print(json.dumps(r.__dict__, ensure_ascii=False))
            else:
                detail = r.detail.replace("\n", " ")[:80]
                print(f"{r.seq:>6} {r.at[:19]} {r.session_id[:8]:8} {r.user:10.10} {r.kind:12} {r.tool:30.30} {r.decision:8} {r.rule:24.24} {detail}")
        if not rows:
            print("(no audit rows)")
    return 0
