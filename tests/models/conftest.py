"""Fixtures for the provider tests: litellm imported once, one recorded-wire server per module."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from wire_server import WireServer, load


@pytest.fixture(scope="session")
def litellm_loaded():
    """litellm, imported once for the whole test session (it takes seconds)."""
    from engine.models.litellm_adapter import _litellm

    return _litellm()


@pytest.fixture(scope="module")
def wire_server(litellm_loaded):
    """A loopback server replaying recorded provider responses."""
    server = WireServer().start()
    # litellm asks Ollama for model details in the background after a call; answer like Ollama.
    server.side["/api/show"] = load("ollama", "show")
    yield server
    server.stop()


@pytest.fixture
def wire(wire_server):
    """The recorded-wire server, with no queued replies or recorded requests."""
    wire_server.reset()
    return wire_server
