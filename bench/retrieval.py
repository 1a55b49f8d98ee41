"""Tool retrieval quality on ToolLens (../shared/data/toollens by default); see engine/retrieval/bench.py."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from engine.retrieval import bench  # noqa: E402

if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__)
    bench.configure(p)
    sys.exit(bench.run(p.parse_args()))
