"""Test support: one real sandbox cluster per test session, in a temporary data directory.

Tests that need the sandbox skip when its binaries are not built, unless the environment sets
LANTERN_REQUIRE_SANDBOX=1 (CI does, after `make sandbox`), where they fail instead; that also
requires Prometheus and Alertmanager (Debian's `prometheus`, `prometheus-alertmanager`).
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from sandbox import build, monitoring
from sandbox.cluster import SandboxInfo, down, up

REQUIRE_ENV = "LANTERN_REQUIRE_SANDBOX"


def require_binaries() -> None:
    """Skip the calling test (or fail, when LANTERN_REQUIRE_SANDBOX=1) if the sandbox binaries are missing."""
    missing = build.missing_binaries()
    if missing:
        _missing(
            f"sandbox binaries missing: {', '.join(missing)} (expected in {build.bin_dir()} and etcd on PATH); "
            f"run `lantern sandbox build`"
        )
    if os.environ.get(REQUIRE_ENV) == "1":
        require_monitoring()


def require_monitoring() -> None:
    """Skip the calling test (or fail, when LANTERN_REQUIRE_SANDBOX=1) if Prometheus or Alertmanager is not installed."""
    missing = monitoring.missing()
    if missing:
        _missing(f"Debian packages missing: {', '.join(missing)}; `make sandbox` installs them as root")


def _missing(msg: str) -> None:
    import pytest

    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"{REQUIRE_ENV}=1 but {msg}", pytrace=False)
    pytest.skip(msg)


@contextlib.contextmanager
def sandbox_for_tests(home: Path, nodes: int = 2, time_scale: float = 0.3) -> Iterator[SandboxInfo]:
    """A running sandbox in `home` for the duration of the block; always torn down afterwards."""
    require_binaries()
    try:
        yield up(home, nodes=nodes, time_scale=time_scale)
    finally:
        down(home)


def k8s_clients(info: SandboxInfo) -> tuple[Any, Any, Any]:
    """(ApiClient, CoreV1Api, AppsV1Api) for the sandbox, via its kubeconfig and context."""
    from kubernetes import client, config

    api = config.new_client_from_config(config_file=str(info.kubeconfig), context=info.context)
    return api, client.CoreV1Api(api), client.AppsV1Api(api)


def wait_for(what: str, check: Callable[[], Any], timeout: float = 60.0, every: float = 0.3) -> Any:
    """Poll check() until it returns something truthy; fail with `what` and the last value otherwise."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r})")


def _session_fixture():
    """A session-scoped pytest fixture `sandbox`; import it into a conftest to share one cluster."""
    import pytest

    @pytest.fixture(scope="session")
    def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxInfo]:
        """The running sandbox for the whole test session (torn down at the end)."""
        with sandbox_for_tests(tmp_path_factory.mktemp("sandbox"), nodes=2, time_scale=0.3) as si:
            yield si

    return sandbox


try:
    sandbox = _session_fixture()
    """`from sandbox.testing import sandbox` in a conftest.py gives tests one shared cluster."""
except ImportError:  # pytest is a test-only dependency
    pass
