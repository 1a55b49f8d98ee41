"""`lantern bench NAME`: the benchmarks that ship with the product (each prints its numbers)."""

from __future__ import annotations

import argparse
import asyncio
import importlib

BENCHES: list[tuple[str, str, str]] = [
    ("retrieval", "engine.retrieval.bench", "tool retrieval quality on BEIR-format files"),
    ("retrieval-scale", "engine.retrieval.bench_scale", "index build and query latency with N actions"),
    ("retrieval-history-scale", "engine.retrieval.bench_history_scale", "experience memory build time and query latency with N past requests"),
    ("retrieval-multiturn", "engine.retrieval.bench_multiturn", "multi-turn tool selection recall on Lantern's own packs"),
    ("scrub", "engine.guard.bench", "scrubber recall/precision on secrets and PII sets"),
    ("compaction", "engine.context.bench", "fact survival and compression of context compaction"),
    ("sandbox", "sandbox.measure", "sandbox start times and memory"),
]
"""(name, module, help): each module has configure(parser) and run(args)."""


def configure(p: argparse.ArgumentParser) -> None:
    """One sub-parser per benchmark, configured by its own module."""
    sub = p.add_subparsers(dest="bench", metavar="NAME", required=True)
    for name, module, help_text in BENCHES:
        bp = sub.add_parser(name, help=help_text, description=help_text)
        bp.set_defaults(_bench_module=module)
        try:
            importlib.import_module(module).configure(bp)
        except ImportError as exc:
            bp.set_defaults(_bench_missing=str(exc))


def run(args: argparse.Namespace) -> int:
    """Run the chosen benchmark."""
    if getattr(args, "_bench_missing", None):
        print(f"lantern bench {args.bench}: not available ({args._bench_missing})")
        return 2
    result = importlib.import_module(args._bench_module).run(args)
    if asyncio.iscoroutine(result):
        result = asyncio.run(result)
    return int(result or 0)
