"""Lantern's benchmarks: each module prints numbers with a baseline from the same run.

Not part of the product (the wheel ships engine, skills, sandbox, console and themes only):
`lantern bench NAME` runs these from a checkout, as does `python -m bench.NAME`. Outside data sets
are read from `../shared/data` ($LANTERN_BENCH_DATA overrides it); Lantern's own labelled sets
live in `bench/data/`.
"""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
"""The repository root."""

DATA = Path(__file__).resolve().parent / "data"
"""Lantern's own labelled sets (multi-turn conversations, the stand-in catalogue, tool prompts)."""


def shared_data(name: str = "") -> Path:
    """`../shared/data/NAME` relative to the repository root ($LANTERN_BENCH_DATA overrides the
    data directory); from a worktree nested deeper, the nearest ancestor holding it."""
    env = os.environ.get("LANTERN_BENCH_DATA")
    if env:
        return Path(env) / name
    for up in ROOT.parents:
        cand = up / "shared" / "data" / name
        if cand.exists():
            return cand
    return ROOT.parent / "shared" / "data" / name
