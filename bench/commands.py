"""`lantern bench NAME`: the benchmarks, run from a checkout (each prints its numbers)."""

from __future__ import annotations

import argparse
import asyncio
import importlib

BENCHES: list[tuple[str, str, str]] = [
    ("retrieval", "bench.retrieval", "tool retrieval quality on BEIR-format files"),
    ("retrieval-scale", "bench.retrieval_scale", "index build and query latency with N actions"),
    (
        "retrieval-history-scale",
        "bench.retrieval_history_scale",
        "experience memory build time and query latency with N past requests",
    ),
    ("retrieval-multiturn", "bench.retrieval_multiturn", "multi-turn tool selection recall on Lantern's own packs"),
    ("scrub", "bench.scrub", "scrubber recall/precision on secrets and PII sets"),
    ("compaction", "bench.compaction", "fact survival and compression of context compaction"),
    ("sandbox", "bench.sandbox_start", "sandbox start times and memory"),
    (
        "store-load",
        "bench.store_load",
        "writer processes on one store (PostgreSQL, SQLite): calls/s, nothing lost, stamped → heard latency",
    ),
    ("serve", "bench.serve", "events through lantern serve to remote faces: events/s, engine → face latency"),
]
"""(name, module, help): each module has configure(parser) and run(args)."""


def configure(p: argparse.ArgumentParser) -> None:
    """One sub-parser per benchmark, configured by its own module."""
    sub = p.add_subparsers(dest="bench", metavar="NAME", required=True)
    for name, module, help_text in BENCHES:
        bp = sub.add_parser(name, help=help_text, description=help_text)
        bp.set_defaults(_bench_module=module)
        importlib.import_module(module).configure(bp)


def run(args: argparse.Namespace) -> int:
    """Run the chosen benchmark."""
    result = importlib.import_module(args._bench_module).run(args)
    if asyncio.iscoroutine(result):
        result = asyncio.run(result)
    return int(result or 0)
