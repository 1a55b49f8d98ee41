"""One real sandbox cluster (etcd, kube-apiserver, controllers, node agent) for the whole session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from skills.sandbox.cluster import SandboxInfo
from skills.sandbox.testing import sandbox_for_tests


@pytest.fixture(scope="session")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxInfo]:
    """The running sandbox; skipped (or failed under LANTERN_REQUIRE_SANDBOX=1) without binaries."""
    with sandbox_for_tests(tmp_path_factory.mktemp("sandbox"), nodes=2, time_scale=0.3) as si:
        yield si
