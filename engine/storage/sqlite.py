"""The embedded backend: one SQLite file (WAL) on one aiosqlite connection per process.

Several processes may share the file: every write waits for SQLite's lock (busy timeout), and
the writes of one process share one asyncio lock, so a numbering transaction (BEGIN IMMEDIATE)
is never joined by another task's statements. Live events fan out inside this process only.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
import weakref
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiosqlite

from engine.storage import Dialect, Notify, StoreError

BUSY_TIMEOUT_S = 30.0
"""How long a write waits for another process holding the database's lock."""
_LOCKS: weakref.WeakKeyDictionary[aiosqlite.Connection, asyncio.Lock] = weakref.WeakKeyDictionary()


def write_lock(db: aiosqlite.Connection) -> asyncio.Lock:
    """The one lock for writes on a connection (the store's events and the audit's rows)."""
    lock = _LOCKS.get(db)
    if lock is None:
        lock = _LOCKS[db] = asyncio.Lock()
    return lock


async def _retry_locked(step: Callable[[], Awaitable[Any]]) -> None:
    """Run `step`, again while another process holds the lock in a way SQLite's busy handler does
    not wait for (two processes creating the same new file: the switch to WAL, the first DDL)."""
    deadline = time.monotonic() + BUSY_TIMEOUT_S
    while True:
        try:
            await step()
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.02)


class _Tx:
    """A transaction on the connection; notifications wait for the commit."""

    def __init__(self, db: aiosqlite.Connection) -> None:
        self.db = db
        self.pending: list[tuple[str, int]] = []

    async def fetchone(self, sql: str, *params: Any) -> tuple[Any, ...] | None:
        async with self.db.execute(sql, params) as cur:
            row = await cur.fetchone()
        return tuple(row) if row is not None else None

    async def execute(self, sql: str, *params: Any) -> None:
        await self.db.execute(sql, params)

    def notify(self, session_id: str, seq: int) -> None:
        self.pending.append((session_id, seq))


class SqliteBackend:
    """A store in one SQLite file (or on a connection someone else opened)."""

    dialect: Dialect = "sqlite"

    def __init__(self, path: Path | None, *, db: aiosqlite.Connection | None = None) -> None:
        self.path = path
        """The database file (None: a connection opened elsewhere, see `attach`)."""
        self.where = str(path) if path else "(sqlite connection)"
        self.anchor: Path | None = Path(str(path) + "-audit.anchor") if path else None
        self._db = db
        self._owned = db is None
        self._listeners: list[Notify] = []

    @classmethod
    async def attach(cls, db: aiosqlite.Connection) -> SqliteBackend:
        """A backend over a connection that its opener keeps (and closes)."""
        async with db.execute("SELECT file FROM pragma_database_list WHERE name='main'") as cur:
            row = await cur.fetchone()
        backend = cls(Path(row[0]) if row and row[0] else None, db=db)
        return backend

    @property
    def db(self) -> aiosqlite.Connection:
        """The open connection (tests and tools that edit the file directly use it)."""
        if self._db is None:
            raise RuntimeError("store is not open")
        return self._db

    def text(self, value: str) -> str:
        return value

    async def open(self) -> None:
        if self._db is not None:
            return
        assert self.path is not None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = await aiosqlite.connect(self.path, timeout=BUSY_TIMEOUT_S)
            async with write_lock(self._db):
                await _retry_locked(lambda: self.db.execute("PRAGMA journal_mode=WAL"))
                await self._db.execute("PRAGMA synchronous=NORMAL")
        except (OSError, sqlite3.Error) as exc:
            if self._db is not None:
                await self._db.close()
                self._db = None
            raise StoreError(f"cannot open the store {self.path}: {exc}") from None

    async def close(self) -> None:
        if self._db is not None and self._owned:
            await self._db.close()
        self._db = None

    async def create(self, ddl: str) -> None:
        async with write_lock(self.db):
            await _retry_locked(lambda: self.db.executescript(ddl))
            await self.db.commit()

    async def columns(self, table: str) -> set[str]:
        async with self.db.execute("SELECT name FROM pragma_table_info(?)", (table,)) as cur:
            return {r[0] async for r in cur}

    async def has_table(self, table: str) -> bool:
        sql = "SELECT 1 FROM sqlite_master WHERE type='table' AND name=?"
        return await self.fetchone(sql, table) is not None

    async def fetch(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        async with self.db.execute(sql, params) as cur:
            return [tuple(r) async for r in cur]

    async def fetchone(self, sql: str, *params: Any) -> tuple[Any, ...] | None:
        async with self.db.execute(sql, params) as cur:
            row = await cur.fetchone()
        return tuple(row) if row is not None else None

    async def stream(self, sql: str, *params: Any) -> AsyncGenerator[tuple[Any, ...], None]:
        async with self.db.execute(sql, params) as cur:
            async for r in cur:
                yield tuple(r)

    async def execute(self, sql: str, *params: Any) -> None:
        async with write_lock(self.db):
            await self.db.execute(sql, params)
            await self.db.commit()

    @asynccontextmanager
    async def transaction(self, lock: str) -> AsyncIterator[_Tx]:
        """BEGIN IMMEDIATE takes the file's write lock, which serves every lock name at once."""
        del lock
        async with write_lock(self.db):
            await self.db.commit()  # nothing of this connection may ride in the numbering transaction
            await self.db.execute("BEGIN IMMEDIATE")
            tx = _Tx(self.db)
            try:
                yield tx
                await self.db.commit()
            except BaseException:
                await self.db.rollback()
                raise
            for session_id, seq in tx.pending:
                for callback in self._listeners:
                    callback(session_id, seq)

    async def listen(self, callback: Notify, on_lost: Callable[[str], None] | None = None) -> None:
        self._listeners.append(callback)

    def unlisten(self, callback: Notify, on_lost: Callable[[str], None] | None = None) -> None:
        if callback in self._listeners:
            self._listeners.remove(callback)
