"""Measure the sandbox: build step (no-op when built), cold and warm start to /readyz, memory.

Run: `lantern bench sandbox` or `python -m bench sandbox` (uses a temporary data directory, stops it afterwards).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from sandbox import build, cluster
from sandbox.scenario import apply_scenario


def _readyz_time(home: Path) -> str:
    """Seconds from nothing running to the API server's /readyz, and to the end of `up` (nodes Ready)."""
    marks: dict[str, float] = {}
    t0 = time.monotonic()
    cluster.up(home, nodes=2, progress=lambda m: marks.setdefault(m, time.monotonic() - t0))
    total = time.monotonic() - t0
    readyz = marks.get("API server ready", total)
    return f"{readyz:.1f}s to /readyz, {total:.1f}s until nodes Ready"


def configure(parser: object) -> None:
    """No options: `lantern bench sandbox` measures with a temporary data directory."""


def run(args: object = None) -> int:
    """Entry for `lantern bench sandbox`."""
    return main()


def main() -> int:
    """Print the numbers, one per line."""
    t0 = time.monotonic()
    build.build(quiet=True)
    print(f"build step (binaries present): {time.monotonic() - t0:.2f}s")
    with tempfile.TemporaryDirectory(prefix="lantern-sandbox-measure-") as d:
        home = Path(d)
        try:
            print(f"up, cold (new data dir, certs, etcd init): {_readyz_time(home)}")
            st = cluster.status(home)
            print(
                "rss after up: "
                + ", ".join(f"{p['name']} {p['rss_mb']:.0f} MB" for p in st["processes"])
                + f"; total {st['rss_mb_total']:.0f} MB"
            )
            t1 = time.monotonic()
            apply_scenario("bad-deploy", home=home)
            print(f"scenario bad-deploy applied (3 revisions rolled out): {time.monotonic() - t1:.1f}s")
            time.sleep(10)
            st = cluster.status(home)
            print(f"rss with bad-deploy running 10s: total {st['rss_mb_total']:.0f} MB")
            t2 = time.monotonic()
            cluster.down(home)
            print(f"down: {time.monotonic() - t2:.1f}s")
            print(f"up, warm (existing data dir): {_readyz_time(home)}")
        finally:
            cluster.down(home)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
