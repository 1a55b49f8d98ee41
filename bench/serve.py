"""`lantern bench serve`: events through `lantern serve` to remote faces, on loopback.

One session on the scripted model; each turn is one step asking for `--calls` reads (python tools
behind the real dispatcher, policy, audit and store) and a streamed answer; `--faces` faces are
attached over WebSockets. Prints events per second as a face receives them, and the latency from
the engine stamping an event (`at`) to a face parsing it, p50/p95/max (same clock: one machine).
"""

from __future__ import annotations

import argparse
import asyncio
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
        done = 0
        async for item in face.frames():
            if isinstance(item, dict):
                if item.get("frame") == "live":
                    ready.set()
                continue
            lat.append((utcnow() - item.at).total_seconds() * 1000)
            counts[0] += 1
            if isinstance(item, ev.TurnFinished):
                done += 1
                if done == turns:
                    return


async def _bench(args: argparse.Namespace) -> int:
    from server.client import Remote
    from server.testing import ServerThread, scripted_sessions

    with tempfile.TemporaryDirectory() as tmp:
        server = ServerThread(
            Path(tmp) / "bench.db", scripted_sessions(_script(args.turns, args.calls), [], chunk=args.chunk)
        ).start()
        try:
            remote = Remote(server.url, server.tokens["alice"])
            sid = await remote.create()
            lats: list[list[float]] = [[] for _ in range(args.faces)]
            counts = [[0] for _ in range(args.faces)]
            ready = [asyncio.Event() for _ in range(args.faces)]
            tasks = [
                asyncio.create_task(_face(remote, sid, lats[i], counts[i], ready[i], args.turns))
                for i in range(args.faces)
            ]
            await asyncio.gather(*(r.wait() for r in ready))
            t0 = time.perf_counter()
            async with remote.attach(sid) as asker:
                for _ in range(args.turns):
                    await asker.message("why is the api crash-looping?")
                    async for item in asker.frames():
                        if getattr(item, "kind", "") == "turn-finished":
                            break
            await asyncio.wait_for(asyncio.gather(*tasks), 120)
            wall = time.perf_counter() - t0
        finally:
            server.stop()
    every = sorted(x for lat in lats for x in lat)
    n = counts[0][0]
    calls = args.turns * args.calls
    print(f"{args.faces} faces, {args.turns} turns × {args.calls} calls: {n} events per face in {wall:.2f} s")
    print(
        f"  {n / wall:,.0f} events/s per face ({n * args.faces / wall:,.0f} delivered/s), {calls / wall:,.1f} tool calls/s"
    )
    q = statistics.quantiles(every, n=100)
    print(f"  engine → face latency: p50 {q[49]:.1f} ms, p95 {q[94]:.1f} ms, max {every[-1]:.1f} ms")
    return 0


def run(args: argparse.Namespace) -> int:
    """Run it and print the numbers."""
    return asyncio.run(_bench(args))
