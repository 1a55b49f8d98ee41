"""Thin wrapper: `python bench/compaction.py [--budget 0.25] [--json]` = `lantern bench compaction` with default paths."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.context import bench  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    """Parse the same options as `lantern bench compaction` and run it."""
    p = argparse.ArgumentParser(prog="bench/compaction.py", description=bench.__doc__.splitlines()[0])
    bench.configure(p)
    return bench.run(p.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
