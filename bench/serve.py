"""`lantern bench serve`: events through `lantern serve` to remote faces, on loopback.

One session on the scripted model; each turn is one step asking for `--calls` reads (python tools
behind the real dispatcher, policy, audit and store) and a streamed answer; `--faces` faces are
attached over WebSockets. Prints events per second as a face receives them, and the latency from
the engine stamping an event (`at`) to a face parsing it, p50/p95/max (same clock: one machine).

`--servers 2`: two servers on one PostgreSQL database (a temporary server, Debian's binaries, as
the tests start it): the faces attach to server A, the turns run on server B, so every event goes
B's engine → the store → NOTIFY → A's hub reads it → A's faces. Each face's events are checked:
every one, once, in seq order.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any


def configure(p: argparse.ArgumentParser) -> None:
    """Arguments of the benchmark."""
    p.add_argument("--faces", type=int, default=4, help="faces attached to the session")
    p.add_argument("--calls", type=int, default=50, help="tool calls per turn")
    p.add_argument("--turns", type=int, default=3)
    p.add_argument("--chunk", type=int, default=8, help="characters per streamed answer fragment")
    p.add_argument(
        "--servers", type=int, choices=(1, 2), default=1, help="2: faces on one server, turns on another (PostgreSQL)"
    )
    p.add_argument("--no-fsync", action="store_true", help="with --servers 2: PostgreSQL without fsync")


def _script(turns: int, calls: int) -> list[dict[str, Any]]:
    answer = "The api pods are OOMKilled since revision 14 cut the memory limit; roll back to revision 13. " * 4
    steps: list[dict[str, Any]] = []
    for t in range(turns):
        steps.append(
            {
                "text": "Reading.",
                "tool_calls": [{"name": "get_pods", "arguments": {"namespace": f"ns-{t}-{i}"}} for i in range(calls)],
            }
        )
        steps.append({"text": answer})
    return steps


async def _face(remote: Any, sid: str, lat: list[float], counts: list[int], ready: asyncio.Event, turns: int) -> None:
    from engine import events as ev
    from engine.events import utcnow

    async with remote.attach(sid) as face:
        done, last = 0, 0
        async for item in face.frames():
            if isinstance(item, dict):
                if item.get("frame") == "live":
                    ready.set()
                continue
            if item.seq != last + 1:
                raise AssertionError(f"a face got seq {item.seq} after {last}: lost, repeated or out of order")
            last = item.seq
            if not ready.is_set():
                continue  # the history: not timed
            lat.append((utcnow() - item.at).total_seconds() * 1000)
            counts[0] += 1
            if isinstance(item, ev.TurnFinished):
                done += 1
                if done == turns:
                    return


async def _bench(args: argparse.Namespace) -> int:
    from server.testing import ServerThread, scripted_sessions

    script = scripted_sessions(_script(args.turns, args.calls), [], chunk=args.chunk)
    if args.servers == 1:
        with tempfile.TemporaryDirectory() as tmp:
            server = ServerThread(Path(tmp) / "bench.db", script).start()
            try:
                wall, lats, counts = await _drive(args, server, server)
            finally:
                server.stop()
        _report(args, "1 server (SQLite)", wall, lats, counts)
        return 0
    from tests.storage.pgserver import start_server

    home = tempfile.TemporaryDirectory()  # the chain key and anchors of this run, not the user's
    os.environ["LANTERN_HOME"] = home.name
    pg = start_server(durable=not args.no_fsync)
    try:
        url = pg.database()
        a = ServerThread(url, scripted_sessions([], [])).start()  # the faces' server: its model never runs
        b = ServerThread(url, script, tokens=a.tokens).start()  # the turns' server
        try:
            wall, lats, counts = await _drive(args, a, b)
        finally:
            b.stop()
            a.stop()
    finally:
        pg.stop()
        home.cleanup()
    fsync = "off" if args.no_fsync else "on"
    _report(args, f"2 servers on PostgreSQL (fsync {fsync}): faces on A, turns on B", wall, lats, counts)
    return 0


async def _drive(
    args: argparse.Namespace, faces_on: Any, turns_on: Any
) -> tuple[float, list[list[float]], list[list[int]]]:
    """Attach the faces to `faces_on`, run the turns on `turns_on`; (wall, latencies, counts) per face."""
    from server.client import Remote

    remote = Remote(faces_on.url, faces_on.tokens["alice"])
    asking = Remote(turns_on.url, turns_on.tokens["alice"])
    sid = await remote.create()
    lats: list[list[float]] = [[] for _ in range(args.faces)]
    counts = [[0] for _ in range(args.faces)]
    ready = [asyncio.Event() for _ in range(args.faces)]
    tasks = [
        asyncio.create_task(_face(remote, sid, lats[i], counts[i], ready[i], args.turns)) for i in range(args.faces)
    ]
    await asyncio.gather(*(r.wait() for r in ready))
    t0 = time.perf_counter()
    async with asking.attach(sid) as asker:
        for _ in range(args.turns):
            await asker.message("why is the api crash-looping?")
            async for item in asker.frames():
                if getattr(item, "kind", "") == "turn-finished":
                    break
    await asyncio.wait_for(asyncio.gather(*tasks), 120)
    return time.perf_counter() - t0, lats, counts


def _report(
    args: argparse.Namespace, label: str, wall: float, lats: list[list[float]], counts: list[list[int]]
) -> None:
    every = sorted(x for lat in lats for x in lat)
    n = counts[0][0]
    calls = args.turns * args.calls
    print(f"{label}")
    print(f"  {args.faces} faces, {args.turns} turns × {args.calls} calls: {n} events per face in {wall:.2f} s")
    print(
        f"  {n / wall:,.0f} events/s per face ({n * args.faces / wall:,.0f} delivered/s), {calls / wall:,.1f} tool calls/s"
    )
    print(f"  every face got every event once, in seq order ({sorted({c[0] for c in counts})} live events)")
    q = statistics.quantiles(every, n=100)
    print(f"  engine → face latency: p50 {q[49]:.1f} ms, p95 {q[94]:.1f} ms, max {every[-1]:.1f} ms")


def run(args: argparse.Namespace) -> int:
    """Run it and print the numbers."""
    return asyncio.run(_bench(args))
