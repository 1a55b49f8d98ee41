"""Multi-turn tool selection recall over Lantern's packs (see engine/retrieval/bench_multiturn.py)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from engine.retrieval import bench_multiturn  # noqa: E402

if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__)
    bench_multiturn.configure(p)
    sys.exit(bench_multiturn.run(p.parse_args()))
