"""Console speed: process start → first frame, and keypress → frame latency while a turn streams.

Runs the real `lantern` console (`python -m console.cli --model scripted:FILE`) in a
pseudo-terminal, the way a user's terminal runs it, and reads what it draws:
  * first frame: time from spawning the process to the header being drawn (target ≤ 1.0 s),
    and to the header saying the model is ready;
  * keypress latency: a key typed into the input while a long scripted answer streams, timed
    until the terminal receives the frame that shows it (target ≤ 50 ms p95); the same
    measurement with nothing streaming is the baseline.
Also prints the cost of starting Python itself (baseline for the first number).

    .venv/bin/python bench/console_start.py [--runs 5] [--keys 40]
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import pty
import select
import signal
import statistics
import struct
import subprocess
import sys
import tempfile
import termios
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable
HEADER_MARK = "◆".encode()
READY_MARK = "● ready".encode()
WORKING_MARK = b"working"
STREAM_MARK = b"Findings"
"""The answer's first heading: once it is drawn, the answer is streaming (not still retrieving)."""


class Term:
    """A child process on a pseudo-terminal of a fixed size, with its output collected."""

    def __init__(self, argv: list[str], env: dict[str, str], cols: int = 120, rows: int = 40) -> None:
        self.master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        self.t0 = time.perf_counter()
        self.proc = subprocess.Popen(
            argv, stdin=slave, stdout=slave, stderr=slave, env=env, cwd=ROOT, start_new_session=True
        )
        os.close(slave)
        self.buf = bytearray()

    def read_until(self, needle: bytes, timeout: float, start: int = 0) -> float | None:
        """Read until `needle` appears after byte `start`; the perf_counter time it arrived, or None."""
        end = time.perf_counter() + timeout
        while True:
            if needle in self.buf[start:]:
                return time.perf_counter()
            left = end - time.perf_counter()
            if left <= 0:
                return None
            r, _, _ = select.select([self.master], [], [], min(left, 0.05))
            if r:
                try:
                    chunk = os.read(self.master, 65536)
                except OSError:
                    return None
                if not chunk:
                    return None
                self.buf.extend(chunk)

    def drain(self, seconds: float) -> None:
        """Read whatever arrives for a while."""
        self.read_until(b"\x00never\x00", seconds)

    def write(self, data: bytes) -> float:
        """Send keys; the time they were sent."""
        os.write(self.master, data)
        return time.perf_counter()

    def close(self) -> None:
        """Stop the child."""
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        os.close(self.master)


def env_for(home: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    env.update(
        {
            "LANTERN_HOME": home,
            "LANTERN_CONFIG": os.path.join(home, "config.yaml"),
            "TERM": "xterm-256color",
            "COLORTERM": "truecolor",
            "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        }
    )
    # An empty kubeconfig: the console must not start a sandbox cluster in each throwaway home.
    env["KUBECONFIG"] = os.devnull
    return env


def long_answer() -> str:
    """A long markdown answer without the letter Z (the keypress probe)."""
    para = (
        "The **api** deployment in `payments` restarts because the container exceeds its memory limit; "
        "each restart drops in-flight checkout requests and the retry storm raises latency on the gateway.\n\n"
        "- pod api-7d9f8b6c5-x2k4p: OOMKilled, 37 restarts\n- pod api-7d9f8b6c5-q8w1z: OOMKilled, 35 restarts\n\n"
    )
    return "## Findings\n\n" + para * 40


def percentile(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    k = max(0, min(len(xs) - 1, round(p / 100 * (len(xs) - 1))))
    return xs[k]


def python_baseline(runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run([PY, "-c", "pass"], check=True)
        out.append(time.perf_counter() - t)
    return out


def cpu_seconds(pid: int) -> float:
    """User + system CPU time the process has used so far (load-independent, unlike wall time)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_once(script: Path) -> tuple[float | None, float | None, float | None]:
    """(wall s to first frame, CPU s to first frame, wall s to model ready)."""
    with tempfile.TemporaryDirectory() as home:
        term = Term([PY, "-m", "console.cli", "--model", f"scripted:{script}"], env_for(home))
        try:
            first = term.read_until(HEADER_MARK, 15)
            cpu = cpu_seconds(term.proc.pid) if first else None
            ready = term.read_until(READY_MARK, 30)
            return (first - term.t0 if first else None, cpu, ready - term.t0 if ready else None)
        finally:
            term.close()


def key_latencies(script: Path, keys: int, streaming: bool) -> tuple[list[float], bool]:
    """Latency of `keys` keypresses; with streaming=True they are typed while an answer streams."""
    with tempfile.TemporaryDirectory() as home:
        term = Term([PY, "-m", "console.cli", "--model", f"scripted:{script}"], env_for(home))
        try:
            if term.read_until(READY_MARK, 30) is None:
                raise SystemExit("console did not become ready")
            term.drain(0.3)
            if streaming:
                term.write(b"why is checkout failing?\r")
                sent_at = len(term.buf)
                if term.read_until(WORKING_MARK, 10, start=sent_at) is None:
                    raise SystemExit("the turn did not start")
                # Typing starts once the answer is on screen: before that the turn selects tools
                # and assembles context, which is a different load than streaming.
                if term.read_until(STREAM_MARK, 30, start=sent_at) is None:
                    raise SystemExit("the answer never started streaming")
                term.drain(0.2)
            out: list[float] = []
            still_streaming = True
            for k in range(1, keys + 1):
                start = len(term.buf)
                sent = term.write(b"Z")
                got = term.read_until(b"Z" * k, 2.0, start=max(0, start - 4 * k))
                if got is None:
                    raise SystemExit(f"keypress {k} never drawn")
                out.append((got - sent) * 1000)
                term.drain(0.03)
            if streaming:
                still_streaming = READY_MARK not in term.buf[-20000:]
            return out, still_streaming
        finally:
            term.close()


def load_note() -> str:
    """The 1-minute load average, printed with each number (they stretch with it)."""
    return f"load {os.getloadavg()[0]:.1f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5, help="start-up runs")
    ap.add_argument("--keys", type=int, default=40, help="keypresses per latency run")
    ap.add_argument("--only", choices=["start", "keys"], help="run one half")
    a = ap.parse_args()
    load = os.getloadavg()[0]
    print(f"machine   {os.cpu_count()} CPUs, load average {load:.1f} (wall times stretch with load; CPU time does not)")
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "stream.json"
        script.write_text(json.dumps([{"text": long_answer(), "token_delay": 0.004}] * 3))
        if a.only != "keys":
            base = python_baseline(a.runs)
            print(f"baseline  python -c pass          median {statistics.median(base) * 1000:7.0f} ms")
            firsts, cpus, readies = [], [], []
            for _ in range(a.runs):
                f, c, r = start_once(script)
                if f is not None:
                    firsts.append(f)
                if c is not None:
                    cpus.append(c)
                if r is not None:
                    readies.append(r)
            print(
                f"start     first frame (header)    median {statistics.median(firsts) * 1000:7.0f} ms   max {max(firsts) * 1000:6.0f} ms   target ≤ 1000 ms   runs {len(firsts)}/{a.runs}   {load_note()}"
            )
            print(
                f"start     CPU used by first frame median {statistics.median(cpus) * 1000:7.0f} ms   (user+system of the console process)"
            )
            if readies:
                print(
                    f"start     model ready (scripted)  median {statistics.median(readies) * 1000:7.0f} ms   max {max(readies) * 1000:6.0f} ms"
                )
        if a.only == "start":
            return
        idle, _ = key_latencies(script, a.keys, streaming=False)
        print(
            f"baseline  keypress→frame idle     p50 {percentile(idle, 50):6.1f} ms   p95 {percentile(idle, 95):6.1f} ms   max {max(idle):6.1f} ms   n={len(idle)}   {load_note()}"
        )
        busy, streaming = key_latencies(script, a.keys, streaming=True)
        note = "" if streaming else "  (the answer finished before the last key)"
        print(
            f"stream    keypress→frame streaming p50 {percentile(busy, 50):6.1f} ms   p95 {percentile(busy, 95):6.1f} ms   max {max(busy):6.1f} ms   n={len(busy)}   {load_note()}   target p95 ≤ 50 ms{note}"
        )


if __name__ == "__main__":
    main()
