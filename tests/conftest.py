"""Test session set-up: no network except loopback, no real home directory."""

from __future__ import annotations

import os
import socket

import pytest

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex


def _loopback_only(addr: object) -> None:
    host = addr[0] if isinstance(addr, tuple) else addr
    if isinstance(host, (bytes, bytearray)):
        host = host.decode()
    if not isinstance(host, str):
        return
    if host.startswith("/") or host in ("localhost", "::1", "") or host.startswith("127."):
        return
    raise OSError(f"network access blocked in tests: {host}")


def _guarded_connect(self: socket.socket, addr: object) -> None:
    if self.family in (socket.AF_INET, socket.AF_INET6):
        _loopback_only(addr)
    return _real_connect(self, addr)


def _guarded_connect_ex(self: socket.socket, addr: object) -> int:
    if self.family in (socket.AF_INET, socket.AF_INET6):
        _loopback_only(addr)
    return _real_connect_ex(self, addr)


socket.socket.connect = _guarded_connect  # type: ignore[method-assign]
socket.socket.connect_ex = _guarded_connect_ex  # type: ignore[method-assign]


@pytest.fixture(autouse=True)
def _lantern_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test gets its own LANTERN_HOME so stores and configs never touch the user's."""
    home = tmp_path_factory.mktemp("lantern-home")
    monkeypatch.setenv("LANTERN_HOME", str(home))
    monkeypatch.delenv("LANTERN_STORE", raising=False)


@pytest.fixture(scope="session")
def postgres():
    """One real PostgreSQL server for the test session (tests.storage.pgserver); skips without
    the binaries unless LANTERN_REQUIRE_POSTGRES=1."""
    from tests.storage.pgserver import start_server

    server = start_server()
    yield server
    server.stop()


@pytest.fixture
def pg_url(postgres) -> str:
    """The URL of a fresh, empty database on the test session's PostgreSQL server."""
    return postgres.database()
