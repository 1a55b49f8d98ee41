"""Index build time and query latency with N synthetic actions; see engine/retrieval/bench_scale.py."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from engine.retrieval import bench_scale  # noqa: E402

if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__)
    bench_scale.configure(p)
    sys.exit(bench_scale.run(p.parse_args()))
