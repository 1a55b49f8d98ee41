"""Build the sandbox's Kubernetes binaries from Debian's source package, once per machine.

No registry ships kube-apiserver binaries that run here and the Go module proxy is unreachable,
but Debian bookworm's `kubernetes` source package vendors every dependency and builds offline
with Debian's `golang-go`. The binaries land in ~/.cache/lantern/sandbox/bin (outside the repo);
a second build is a no-op. etcd comes from Debian's `etcd-server` package.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from engine.config import cache_dir

COMPONENTS = ("kube-apiserver", "kube-controller-manager", "kube-scheduler")
"""The binaries the sandbox builds from source."""

APT_PACKAGES = ("golang-go", "etcd-server", "dpkg-dev", "make", "rsync")
"""Debian packages the build and the cluster need."""

SRC_SOURCES_FILE = Path("/etc/apt/sources.list.d/lantern-deb-src.sources")


class BuildError(RuntimeError):
    """The sandbox binaries could not be built; the message says which step and where the log is."""


def sandbox_cache() -> Path:
    """Where the sandbox keeps its binaries, sources and build log."""
    return cache_dir() / "sandbox"


def bin_dir() -> Path:
    """The directory holding kube-apiserver, kube-controller-manager and kube-scheduler."""
    return sandbox_cache() / "bin"


def find_etcd() -> Path | None:
    """The etcd binary, from PATH or Debian's usual place."""
    for cand in (shutil.which("etcd"), "/usr/bin/etcd"):
        if cand and Path(cand).is_file() and os.access(cand, os.X_OK):
            return Path(cand)
    return None


def binaries() -> dict[str, Path]:
    """Paths of every binary the cluster runs (present or not)."""
    out = {name: bin_dir() / name for name in COMPONENTS}
    out["etcd"] = find_etcd() or Path("/usr/bin/etcd")
    return out


def missing_binaries() -> list[str]:
    """Names of the binaries that are not there yet."""
    return [name for name, path in binaries().items() if not (path.is_file() and os.access(path, os.X_OK))]


class _Log:
    """Build output goes to a file; the console gets one short line per step."""

    def __init__(self, path: Path, quiet: bool = False) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.fh = path.open("a", encoding="utf-8")
        self.quiet = quiet
        self.t0 = time.monotonic()

    def step(self, msg: str) -> None:
        line = f"[{time.monotonic() - self.t0:6.1f}s] {msg}"
        self.fh.write(f"\n=== {line}\n")
        self.fh.flush()
        if not self.quiet:
            print(line, flush=True)

    def run(self, argv: list[str], cwd: Path | None = None, env: dict[str, str] | None = None) -> None:
        self.fh.write(f"$ {' '.join(argv)}\n")
        self.fh.flush()
        proc = subprocess.run(
            argv, cwd=cwd, env=env, stdout=self.fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
        if proc.returncode != 0:
            raise BuildError(f"`{' '.join(argv)}` failed with exit {proc.returncode}; see {self.path}")


def _deb_src_stanzas(text: str) -> list[str]:
    """deb-src twins of the `Types: deb` stanzas of a deb822 sources file."""
    out = []
    for stanza in text.split("\n\n"):
        lines = [ln for ln in stanza.strip().splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
        if not any(ln.split(":", 1)[0].strip() == "Types" for ln in lines):
            continue
        types = next(ln.split(":", 1)[1].split() for ln in lines if ln.split(":", 1)[0].strip() == "Types")
        if "deb" not in types or "deb-src" in types:
            continue
        out.append("\n".join("Types: deb-src" if ln.split(":", 1)[0].strip() == "Types" else ln for ln in lines))
    return out


def _has_deb_src() -> bool:
    """Whether apt already knows a deb-src line."""
    paths = [Path("/etc/apt/sources.list"), *Path("/etc/apt/sources.list.d").glob("*")]
    for p in paths:
        try:
            text = p.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        for ln in text.splitlines():
            s = ln.strip()
            if s.startswith("deb-src ") or (s.startswith("Types:") and "deb-src" in s.split()):
                return True
    return False


def ensure_deb_src(log: _Log) -> None:
    """Give apt a deb-src twin of the machine's own Debian deb lines (needed by `apt-get source`)."""
    if _has_deb_src():
        return
    stanzas: list[str] = []
    for p in sorted(Path("/etc/apt/sources.list.d").glob("*.sources")):
        stanzas += _deb_src_stanzas(p.read_text(encoding="utf-8", errors="replace"))
    legacy = Path("/etc/apt/sources.list")
    lines = []
    if legacy.is_file():
        lines = ["deb-src " + ln.strip()[4:] for ln in legacy.read_text().splitlines() if ln.strip().startswith("deb ")]
    if not stanzas and not lines:
        raise BuildError(
            "no Debian `deb` source found in /etc/apt; cannot add a deb-src line for `apt-get source kubernetes`"
        )
    if stanzas:
        SRC_SOURCES_FILE.write_text("\n\n".join(stanzas) + "\n", encoding="utf-8")
        log.step(f"added deb-src sources in {SRC_SOURCES_FILE}")
    if lines:
        p = Path("/etc/apt/sources.list.d/lantern-deb-src.list")
        p.write_text("\n".join(lines) + "\n", encoding="utf-8")
        log.step(f"added deb-src lines in {p}")


def _find_source_tree(work: Path) -> Path | None:
    """The unpacked kubernetes-* directory under work, if any."""
    for d in sorted(work.glob("kubernetes-*")):
        if d.is_dir() and (d / "Makefile").is_file() and (d / "cmd" / "kube-apiserver").is_dir():
            return d
    return None


def build(force: bool = False, keep_source: bool = False, quiet: bool = False) -> dict[str, Path]:
    """Install etcd and build the three Kubernetes binaries if missing; returns the binary paths."""
    if not force and not missing_binaries():
        if not quiet:
            print(f"sandbox binaries present in {bin_dir()} (etcd: {find_etcd()}); nothing to build")
        return binaries()
    cache = sandbox_cache()
    log = _Log(cache / "build.log", quiet=quiet)
    if not quiet:
        print(f"building the sandbox; full output in {log.path}", flush=True)
    need_apt = [p for p in APT_PACKAGES if not _dpkg_installed(p)]
    need_k8s = force or any(not (bin_dir() / n).is_file() for n in COMPONENTS)
    if need_apt or need_k8s:
        if os.geteuid() != 0 and need_apt:
            raise BuildError(
                f"need root to install {', '.join(need_apt)} with apt (run `lantern sandbox build` as root)"
            )
        if need_k8s and os.geteuid() == 0:
            ensure_deb_src(log)
        if os.geteuid() == 0:
            log.step("apt-get update")
            log.run(["apt-get", "update"])
        if need_apt:
            log.step(f"apt-get install {' '.join(need_apt)}")
            env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
            log.run(["apt-get", "install", "-y", "--no-install-recommends", *need_apt], env=env)
    if need_k8s:
        work = cache / "src"
        work.mkdir(parents=True, exist_ok=True)
        tree = _find_source_tree(work)
        if tree is None:
            log.step("apt-get source kubernetes")
            log.run(["apt-get", "source", "kubernetes"], cwd=work)
            tree = _find_source_tree(work)
            if tree is None:
                raise BuildError(f"`apt-get source kubernetes` left no source tree in {work}; see {log.path}")
        log.step(f"make kube-apiserver kube-controller-manager kube-scheduler in {tree.name} (several minutes)")
        env = dict(
            os.environ,
            GOPROXY="off",
            CGO_ENABLED="0",
            GOFLAGS="",
            GO111MODULE="",
            GOCACHE=str(cache / "gocache"),
            KUBE_VERBOSE="1",
        )
        env.pop("GOPATH", None)
        log.run(["make", f"WHAT={' '.join('cmd/' + c for c in COMPONENTS)}"], cwd=tree, env=env)
        out = _find_outputs(tree)
        bin_dir().mkdir(parents=True, exist_ok=True)
        for name in COMPONENTS:
            src = out.get(name)
            if src is None:
                raise BuildError(f"make succeeded but {name} is not under {tree / '_output'}; see {log.path}")
            tmp = bin_dir() / f".{name}.tmp"
            shutil.copy2(src, tmp)
            tmp.chmod(0o755)
            tmp.replace(bin_dir() / name)  # atomic, so a half-copied binary never looks built
        log.step(f"binaries in {bin_dir()}")
        if not keep_source:
            # 2.3 GB of tree and build cache; the binaries are all the sandbox needs.
            shutil.rmtree(work, ignore_errors=True)
            shutil.rmtree(cache / "gocache", ignore_errors=True)
            log.step("removed the source tree and Go build cache")
    missing = missing_binaries()
    if missing:
        raise BuildError(f"still missing after the build: {', '.join(missing)}; see {log.path}")
    log.step("sandbox build done")
    return binaries()


def _find_outputs(tree: Path) -> dict[str, Path]:
    """The freshly built binaries (make puts them in _output/local/bin/OS/ARCH, linked from _output/bin)."""
    found: dict[str, Path] = {}
    dirs = [tree / "_output" / "bin", *sorted((tree / "_output" / "local" / "bin").glob("*/*"))]
    for name in COMPONENTS:
        for d in dirs:
            cand = d / name
            if cand.is_file() and os.access(cand, os.X_OK):
                found[name] = cand.resolve()
                break
    return found


def _dpkg_installed(pkg: str) -> bool:
    """Whether a Debian package is installed."""
    try:
        r = subprocess.run(["dpkg-query", "-W", "-f=${Status}", pkg], capture_output=True, text=True)
    except FileNotFoundError:
        return False
    return r.returncode == 0 and "install ok installed" in r.stdout


if __name__ == "__main__":
    try:
        build(force="--force" in sys.argv, keep_source="--keep-source" in sys.argv)
    except BuildError as exc:
        print(f"sandbox build failed: {exc}", file=sys.stderr)
        sys.exit(1)
