"""Fixtures: one store per backend (SQLite file, fresh PostgreSQL database) and raw SQL on it."""

from __future__ import annotations

from typing import Any

import pytest

from engine.store import Store


@pytest.fixture(params=["sqlite", "postgresql"])
def store_target(request: pytest.FixtureRequest, tmp_path) -> str:
    """A SQLite file, then a fresh PostgreSQL database (skipped without PostgreSQL's binaries)."""
    return str(tmp_path / "lantern.db") if request.param == "sqlite" else request.getfixturevalue("pg_url")


@pytest.fixture
async def any_store(store_target: str) -> Any:
    """An open Store on each backend in turn."""
    store = await Store(store_target).open()
    yield store
    await store.close()


async def raw(store: Store, sql: str) -> None:
    """Run SQL straight on the store's database, as someone holding the file or the owner's login would."""
    if store.backend.dialect == "sqlite":
        await store.db.execute(sql)
        await store.db.commit()
    else:
        await store.backend.pool.execute(sql)  # type: ignore[attr-defined]


def drop_audit_triggers(store: Store) -> list[str]:
    """The statements that remove the audit's append-only triggers on this backend."""
    if store.backend.dialect == "sqlite":
        return ["DROP TRIGGER audit_no_update", "DROP TRIGGER audit_no_delete"]
    return ["DROP TRIGGER audit_no_update ON audit", "DROP TRIGGER audit_no_truncate ON audit"]
