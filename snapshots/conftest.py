"""Snapshot session set-up: a temp LANTERN_HOME per test, loopback-only network, local cost map."""

from __future__ import annotations

import os
import socket

import pytest

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ["TZ"] = "UTC"

_real_connect = socket.socket.connect


def _guarded_connect(self: socket.socket, addr: object) -> None:
    if self.family in (socket.AF_INET, socket.AF_INET6):
        host = addr[0] if isinstance(addr, tuple) else addr
        if isinstance(host, str) and not (host.startswith("127.") or host in ("localhost", "::1")):
            raise OSError(f"network access blocked in snapshot tests: {host}")
    return _real_connect(self, addr)


socket.socket.connect = _guarded_connect  # type: ignore[method-assign]


@pytest.fixture(autouse=True)
def _lantern_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each snapshot gets its own LANTERN_HOME (store, config, themes)."""
    home = tmp_path_factory.mktemp("lantern-home")
    monkeypatch.setenv("LANTERN_HOME", str(home))
    monkeypatch.setenv("LANTERN_CONFIG", str(home / "config.yaml"))
    monkeypatch.delenv("LANTERN_STORE", raising=False)
