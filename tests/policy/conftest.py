"""Fixtures for guard and dispatch tests: a real store in the test's LANTERN_HOME."""

from __future__ import annotations

import pytest

from engine.store import Store


@pytest.fixture
async def store(tmp_path):
    """An open Store on a temp file."""
    s = Store(tmp_path / "lantern.db")
    await s.open()
    yield s
    await s.close()
