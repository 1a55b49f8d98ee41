"""`lantern bench store-load`: several writer processes on one store, a listener on another connection.

Each writer (tests.storage.load) is the real Session and Dispatcher on the scripted model with
python tools: half the calls are approved writes (approval, intent and execution audit rows), half
reads (an execution row), five a turn, every event and row committed before the next. The
listener subscribes to the store's live events (PostgreSQL: LISTEN/NOTIFY; SQLite: none across
processes, so it is left out there). Prints the calls per second held across the writers'
common span, events and audit rows counted against what the writers did, whether both chains
verify, and the latency from the engine stamping an event to the listener hearing it.

Without `--store`, a PostgreSQL server is started in a temporary folder (Debian's binaries, as
the tests do) and the same load is run on a SQLite file for the baseline.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
from pathlib import Path


def configure(p: argparse.ArgumentParser) -> None:
    """Arguments of the benchmark."""
    p.add_argument("--writers", type=int, default=4, help="writer processes")
    p.add_argument("--calls", type=int, default=200, help="tool calls per writer (a multiple of 5)")
    p.add_argument("--store", metavar="URL", help="a PostgreSQL database to load (default: a temporary server)")
    p.add_argument("--no-fsync", action="store_true", help="the temporary server without fsync, as the tests run it")


async def _one(url: str, label: str, writers: int, calls: int, listen: bool) -> None:
    from engine.policy.audit import AuditLog
    from engine.store import Store
    from tests.storage.load import drive

    load = await drive(url, writers, calls, wait_heard=listen)
    async with Store(url) as store:
        log = await AuditLog.open(store)
        rows = await store.count("audit")
        audit_ok, _, audit_why = await log.verify()
        events_ok, events_why = await store.verify_events()
        stamped = {}
        for w in load.writers:
            for e in await store.events(w["session"]):
                stamped[(w["session"], e.seq)] = e.at.timestamp()
    executed = sum(w["executed"] for w in load.writers)
    expected_rows = executed + 2 * (executed // 2)  # every call executes; every write also has approval + intent
    print(f"{label}: {writers} writers × {calls} calls")
    print(
        f"  {executed / load.span:,.1f} calls/s held over {load.span:.2f} s ({load.events / load.span:,.0f} events/s)"
    )
    print(
        f"  {load.events} events, {rows} audit rows (expected {expected_rows}); "
        f"audit: {'ok' if audit_ok else 'BROKEN'} ({audit_why}); events: {'ok' if events_ok else 'BROKEN'} ({events_why})"
    )
    if listen:
        for w in load.writers:
            seqs = [seq for sid, seq, _ in load.heard if sid == w["session"]]
            assert seqs == sorted(seqs) == list(range(1, len(seqs) + 1)), f"{w['session']}: heard out of order"
        lat = sorted((at - stamped[(sid, seq)]) * 1000 for sid, seq, at in load.heard if (sid, seq) in stamped)
        q = statistics.quantiles(lat, n=100)
        print(
            f"  heard {len(load.heard)} of {load.events} events, in order per session; stamped → heard: "
            f"p50 {q[49]:.1f} ms, p95 {q[94]:.1f} ms, p99 {q[98]:.1f} ms, max {lat[-1]:.1f} ms"
        )


async def _bench(args: argparse.Namespace) -> int:
    home = tempfile.TemporaryDirectory()  # the chain key and anchors of this run, not the user's
    os.environ["LANTERN_HOME"] = home.name
    try:
        return await _runs(args)
    finally:
        home.cleanup()


async def _runs(args: argparse.Namespace) -> int:
    if args.store:
        await _one(args.store, f"PostgreSQL {args.store}", args.writers, args.calls, listen=True)
        return 0
    from tests.storage.pgserver import start_server

    server = start_server(durable=not args.no_fsync)
    label = f"PostgreSQL (temporary server, fsync {'off' if args.no_fsync else 'on'})"
    try:
        await _one(server.database(), label, args.writers, args.calls, listen=True)
    finally:
        server.stop()
    with tempfile.TemporaryDirectory() as tmp:
        await _one(str(Path(tmp) / "bench.db"), "SQLite (WAL), the same load", args.writers, args.calls, listen=False)
    return 0


def run(args: argparse.Namespace) -> int:
    """Run it and print the numbers."""
    return asyncio.run(_bench(args))
