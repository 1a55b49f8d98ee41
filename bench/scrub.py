"""Scrubber benchmark: `python bench/scrub.py [--json] [--show-fp]` (same as `lantern bench scrub`).

Reads ../shared/data/secrets-dev and ../shared/data/pii-dev relative to the repository root and
prints recall, precision and throughput (MB/s) with same-run baselines.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.guard import bench  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    """Parse arguments and run the benchmark."""
    p = argparse.ArgumentParser(prog="bench/scrub.py", description=__doc__.splitlines()[0])
    bench.configure(p)
    return bench.run(p.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
