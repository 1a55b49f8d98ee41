"""End to end: the real runtime session (retrieval, dispatcher, policy, audit, context) over the sandbox cluster."""

from __future__ import annotations

import pytest

from sandbox.testing import sandbox  # noqa: F401 - the session fixture: one cluster for the whole run

pytestmark = pytest.mark.sandbox


@pytest.fixture
def world(sandbox, monkeypatch):  # noqa: F811 - the imported fixture
    """Points the kubernetes, queue and metrics packs at the test sandbox (its kubeconfig and endpoints)."""
    from skills.kube.client import clear_cache

    monkeypatch.setenv("KUBECONFIG", str(sandbox.kubeconfig))
    monkeypatch.delenv("LANTERN_CONTEXT", raising=False)
    clear_cache()
    yield sandbox
    clear_cache()
