"""The team backend: one PostgreSQL database shared by several Lantern processes (asyncpg).

A numbering transaction takes a transaction-scoped advisory lock named after what it numbers
(`lantern:events:<session>`, `lantern:audit`) before it reads the last number, at READ COMMITTED,
so the read after the lock sees every earlier writer's commit: no gaps, no duplicates, and the
primary keys refuse a duplicate should anything else write. Each appended event sends a NOTIFY
on `lantern_events` with `session_id:seq` inside its transaction, so listeners in every process
hear it at commit, in commit order. One extra connection per process LISTENs when asked to.
"""

from __future__ import annotations

import functools
import re
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

import asyncpg

from engine.storage import Dialect, Notify, StoreError

CHANNEL = "lantern_events"
"""The NOTIFY channel of new events (payload: `session_id:seq`)."""
CONNECT_TIMEOUT_S = 10.0
"""How long opening a connection may take before the store says the server does not answer."""
POOL_SIZE = 10
"""Connections per process (a write transaction holds one while it waits for its lock)."""
PRIVILEGES = "CONNECT on the database, USAGE and (the first time) CREATE on its schema, then SELECT, INSERT and UPDATE on Lantern's tables"
"""What a role needs, for the one-line error when it lacks something."""


@functools.lru_cache(maxsize=256)
def _numbered(sql: str) -> str:
    """`?` placeholders as PostgreSQL's `$1, $2, …` (the shared SQL has no `?` in literals)."""
    n = iter(range(1, 1_000))
    return re.sub(r"\?", lambda _: f"${next(n)}", sql)


def _redacted(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{host}"))


class _Tx:
    """A transaction on one pooled connection; notifications are sent just before the commit."""

    def __init__(self, con: Any) -> None:
        self.con = con
        self.pending: list[tuple[str, int]] = []

    async def fetchone(self, sql: str, *params: Any) -> tuple[Any, ...] | None:
        row = await self.con.fetchrow(_numbered(sql), *params)
        return tuple(row) if row is not None else None

    async def execute(self, sql: str, *params: Any) -> None:
        await self.con.execute(_numbered(sql), *params)

    def notify(self, session_id: str, seq: int) -> None:
        self.pending.append((session_id, seq))


class PostgresBackend:
    """A store in a PostgreSQL database named by a URL."""

    dialect: Dialect = "postgresql"

    def __init__(self, url: str) -> None:
        self.url = url
        """The connection URL (postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?search_path=…])."""
        self.where = _redacted(url)
        try:
            parts = urlsplit(url)
            parts.port  # noqa: B018 - validates the port
        except ValueError as exc:
            raise StoreError(f"store URL {self.where!r}: {exc}") from None
        self.host = f"{parts.hostname or 'localhost'}:{parts.port or 5432}"
        """host:port, for messages."""
        self.user = unquote(parts.username or "")
        self.database = unquote(parts.path.lstrip("/")) or self.user
        self.anchor: Path | None = self._anchor_path()
        self._pool: Any = None
        self._listener: Any = None
        self._callbacks: list[Notify] = []
        self._lost: list[Callable[[str], None]] = []

    def _anchor_path(self) -> Path:
        """The audit anchor of this database on this machine (every process here appends to it)."""
        from engine.config import lantern_home

        name = re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{self.host}-{self.database}")
        return lantern_home() / "anchors" / f"{name}.audit.anchor"

    # -- errors ------------------------------------------------------------------------------
    def explain(self, exc: BaseException) -> str:
        """One line that says what is wrong and what to do."""
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        who = f"user {self.user!r}" if self.user else "the current user"
        if isinstance(exc, asyncpg.InvalidPasswordError):
            return f"PostgreSQL at {self.host} refused {who}: wrong or missing password (put it in the URL, PGPASSWORD or ~/.pgpass)"
        if isinstance(exc, asyncpg.InvalidAuthorizationSpecificationError):
            return f"PostgreSQL at {self.host} refused {who}: {first}"
        if isinstance(exc, asyncpg.InvalidCatalogNameError):
            return f"PostgreSQL at {self.host} has no database {self.database!r}: create it (createdb {self.database}) or name another in the URL"
        if isinstance(exc, asyncpg.InsufficientPrivilegeError):
            return f"PostgreSQL {self.where}: {first}; the role needs {PRIVILEGES} (see the README)"
        if isinstance(exc, asyncpg.PostgresError):
            return f"PostgreSQL {self.where}: {first}"
        if isinstance(exc, TimeoutError):
            return f"PostgreSQL at {self.host} did not answer within {CONNECT_TIMEOUT_S:.0f} s"
        if isinstance(exc, (asyncpg.InterfaceError, asyncpg.exceptions.ConnectionDoesNotExistError)):
            return f"lost the connection to PostgreSQL at {self.host}: {first}"
        if isinstance(exc, OSError):
            return f"cannot reach PostgreSQL at {self.host}: {exc.strerror or first}"
        return f"PostgreSQL {self.where}: {first}"

    @contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except StoreError:
            raise
        except (TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
            raise StoreError(self.explain(exc)) from exc

    def text(self, value: str) -> str:
        return value.replace("\x00", "\ufffd") if "\x00" in value else value

    # -- connections --------------------------------------------------------------------------
    async def open(self) -> None:
        if self._pool is not None:
            return
        with self._errors():
            try:
                self._pool = await asyncpg.create_pool(
                    self.url, min_size=1, max_size=POOL_SIZE, timeout=CONNECT_TIMEOUT_S
                )
            except ValueError as exc:  # asyncpg's own parsing of the URL
                raise StoreError(f"store URL {self.where!r}: {exc}") from None

    async def close(self) -> None:
        if self._listener is not None:
            listener, self._listener = self._listener, None
            await listener.close()
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.close()

    @property
    def pool(self) -> Any:
        """The asyncpg pool (for tests and tools that need a raw connection)."""
        if self._pool is None:
            raise RuntimeError("store is not open")
        return self._pool

    # -- statements ---------------------------------------------------------------------------
    async def create(self, ddl: str) -> None:
        """Skipped when every table it names exists: a role without CREATE on the schema (the
        tables made by an administrator) still opens the store."""
        tables = re.findall(r"CREATE TABLE IF NOT EXISTS (\w+)", ddl)
        if tables and all([await self.has_table(t) for t in tables]):
            return
        with self._errors():
            async with self.pool.acquire() as con, con.transaction():
                await con.execute("SELECT pg_advisory_xact_lock(hashtextextended('lantern:schema', 0))")
                await con.execute(ddl)

    async def columns(self, table: str) -> set[str]:
        # pg_attribute, not information_schema: that one hides the columns of tables the role may not read
        sql = "SELECT attname FROM pg_attribute WHERE attrelid = to_regclass(?) AND attnum > 0 AND NOT attisdropped"
        return {r[0] for r in await self.fetch(sql, table)}

    async def has_table(self, table: str) -> bool:
        row = await self.fetchone("SELECT to_regclass(?) IS NOT NULL", table)
        return bool(row and row[0])

    async def fetch(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        with self._errors():
            return [tuple(r) for r in await self.pool.fetch(_numbered(sql), *params)]

    async def fetchone(self, sql: str, *params: Any) -> tuple[Any, ...] | None:
        with self._errors():
            row = await self.pool.fetchrow(_numbered(sql), *params)
        return tuple(row) if row is not None else None

    async def stream(self, sql: str, *params: Any) -> AsyncGenerator[tuple[Any, ...], None]:
        with self._errors():
            async with self.pool.acquire() as con, con.transaction(isolation="repeatable_read", readonly=True):
                async for r in con.cursor(_numbered(sql), *params, prefetch=1000):
                    yield tuple(r)

    async def execute(self, sql: str, *params: Any) -> None:
        with self._errors():
            await self.pool.execute(_numbered(sql), *params)

    @asynccontextmanager
    async def transaction(self, lock: str) -> AsyncIterator[_Tx]:
        with self._errors():
            async with self.pool.acquire() as con, con.transaction():
                await con.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", f"lantern:{lock}")
                tx = _Tx(con)
                yield tx
                for session_id, seq in tx.pending:
                    await con.execute("SELECT pg_notify($1, $2)", CHANNEL, f"{session_id}:{seq}")

    # -- live events --------------------------------------------------------------------------
    async def listen(self, callback: Notify, on_lost: Callable[[str], None] | None = None) -> None:
        self._callbacks.append(callback)
        if on_lost is not None:
            self._lost.append(on_lost)
        if self._listener is not None:
            return
        with self._errors():
            con = await asyncpg.connect(self.url, timeout=CONNECT_TIMEOUT_S)
            await con.add_listener(CHANNEL, self._heard)
            con.add_termination_listener(self._terminated)
            self._listener = con

    def unlisten(self, callback: Notify, on_lost: Callable[[str], None] | None = None) -> None:
        """Stop delivering to `callback` (the listening connection stays for the others)."""
        if callback in self._callbacks:
            self._callbacks.remove(callback)
        if on_lost in self._lost:
            self._lost.remove(on_lost)

    def _heard(self, con: Any, pid: int, channel: str, payload: str) -> None:
        session_id, _, seq = payload.rpartition(":")
        for callback in list(self._callbacks):
            callback(session_id, int(seq))

    def _terminated(self, con: Any) -> None:
        if self._listener is con:
            self._listener = None
            why = f"lost the connection to PostgreSQL at {self.host} that listens for new events"
            for lost in list(self._lost):
                lost(why)
