"""Measure the sandbox: build step (no-op when built), cold and warm start to /readyz, memory of each
process (Prometheus and Alertmanager included when installed), and how soon the first alert fires.

Run: `lantern bench sandbox` or `python -m bench sandbox` (uses a temporary data directory, stops it afterwards).
"""

from __future__ import annotations

import tempfile
import threading
import time
from pathlib import Path

from sandbox import build, cluster, monitoring
from sandbox.scenario import apply_scenario


def _readyz_time(home: Path) -> str:
    """Seconds from nothing running to the API server's /readyz, and to the end of `up` (nodes Ready)."""
    marks: dict[str, float] = {}
    t0 = time.monotonic()
    cluster.up(home, nodes=2, progress=lambda m: marks.setdefault(m, time.monotonic() - t0))
    total = time.monotonic() - t0
    readyz = marks.get("API server ready", total)
    return f"{readyz:.1f}s to /readyz, {total:.1f}s until nodes Ready"


class _AlertWatch:
    """Polls, in a thread, the sandbox Prometheus for the first alert firing in the scenario's namespace."""

    def __init__(self, home: Path, t0: float, namespace: str = "shop") -> None:
        self.url = cluster.info(home).endpoints.get("prometheus")
        self.t0, self.namespace = t0, namespace
        self.seen: tuple[float, list[str]] | None = None
        self.thread = threading.Thread(target=self._poll, daemon=True)
        if self.url:
            self.thread.start()

    def _poll(self) -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and self.seen is None:
            firing = monitoring.alerts(self.url or "", self.namespace)
            if firing:
                self.seen = (time.monotonic() - self.t0, sorted({a["labels"]["alertname"] for a in firing}))
            time.sleep(0.25)

    def result(self) -> str:
        """The line to print (waits for the poll to end)."""
        if not self.url:
            return "first alert: metrics and alerts are off (Prometheus and Alertmanager not installed)"
        self.thread.join()
        if self.seen is None:
            return "first alert: none fired within 120s"
        return f"first alert firing {self.seen[0]:.1f}s after the scenario started: {', '.join(self.seen[1])}"


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
            watch = _AlertWatch(home, t1)
            time.sleep(10)
            st = cluster.status(home)
            print(
                "rss with bad-deploy running 10s: "
                + ", ".join(f"{p['name']} {p['rss_mb']:.0f} MB" for p in st["processes"])
                + f"; total {st['rss_mb_total']:.0f} MB"
            )
            print(watch.result())
            t2 = time.monotonic()
            cluster.down(home)
            print(f"down: {time.monotonic() - t2:.1f}s")
            print(f"up, warm (existing data dir): {_readyz_time(home)}")
        finally:
            cluster.down(home)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
