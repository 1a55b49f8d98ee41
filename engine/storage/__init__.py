"""The seam under the store and the audit: where their rows live, SQLite or PostgreSQL.

```
Store (sessions, events chained per session, blobs, scores, marks)  ─┐  one implementation of
AuditLog (rows numbered and chained, anchored, verified)             ─┤  the SQL, chaining,
                                                                      │  numbering, verification
Backend: fetch · stream · execute · create · columns · has_table ◀───┘
         transaction(lock) → Tx: fetchone · execute · notify         (numbering: one lock each)
         listen(callback)                                            (live (session_id, seq))
  ├─ SqliteBackend   (engine.storage.sqlite)   one file, BEGIN IMMEDIATE, in-process fan-out
  └─ PostgresBackend (engine.storage.postgres) a pool, advisory transaction locks, LISTEN/NOTIFY
```

SQL is written once with `?` placeholders in the dialect both understand (upserts with ON
CONFLICT, quoted "user"); only the DDL differs, and the module that owns a table keeps both
versions of it. This module imports nothing heavy: the faces catch `StoreError` from it.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import AsyncGenerator, Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any, Literal, Protocol

Dialect = Literal["sqlite", "postgresql"]
"""The two kinds of database a store can live in."""

Notify = Callable[[str, int], None]
"""Called with (session_id, seq) for every event committed, in commit order."""

URL_HELP = "a file path, sqlite:///PATH, or postgresql://USER@HOST:PORT/DATABASE"
"""What `--store` takes, for error messages."""


class StoreError(Exception):
    """The store cannot be opened or used; the message is one line a user can act on."""


class Tx(Protocol):
    """One write transaction holding its lock (see `Backend.transaction`)."""

    async def fetchone(self, sql: str, *params: Any) -> tuple[Any, ...] | None:
        """The first row of a query inside the transaction."""
        ...

    async def execute(self, sql: str, *params: Any) -> None:
        """Run a statement inside the transaction."""
        ...

    def notify(self, session_id: str, seq: int) -> None:
        """Announce an event to every listener once (and only if) the transaction commits."""
        ...


class Backend(Protocol):
    """A database the store and the audit log share."""

    dialect: Dialect
    """Which SQL dialect the DDL must be written in."""
    where: str
    """The database as a user names it (a path, or a URL without its password)."""
    anchor: Path | None
    """The audit chain's anchor file for this database (None: in-memory)."""

    def text(self, value: str) -> str:
        """`value` as this database stores it (PostgreSQL's TEXT holds no NUL); hashes are taken
        over this form, so a chain verifies after the round trip."""
        ...

    async def open(self) -> None:
        """Connect; StoreError (one line) when the database cannot be reached or used."""
        ...

    async def close(self) -> None:
        """Release every connection."""
        ...

    async def create(self, ddl: str) -> None:
        """Run a DDL script (idempotent: IF NOT EXISTS), serialised against other processes."""
        ...

    async def columns(self, table: str) -> set[str]:
        """The column names of a table (empty when it does not exist)."""
        ...

    async def has_table(self, table: str) -> bool:
        """Whether a table exists."""
        ...

    async def fetch(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        """Every row of a query."""
        ...

    async def fetchone(self, sql: str, *params: Any) -> tuple[Any, ...] | None:
        """The first row of a query, or None."""
        ...

    def stream(self, sql: str, *params: Any) -> AsyncGenerator[tuple[Any, ...], None]:
        """Rows of a query as they come, from one consistent snapshot (close it with aclosing)."""
        ...

    async def execute(self, sql: str, *params: Any) -> None:
        """One statement, committed."""
        ...

    def transaction(self, lock: str) -> AbstractAsyncContextManager[Tx]:
        """A write transaction that holds the lock named `lock` until it commits: two writers
        with the same lock name, in any process on this database, run one after the other, and
        each sees what the other committed. A failure inside rolls back."""
        ...

    async def listen(self, callback: Notify, on_lost: Callable[[str], None] | None = None) -> None:
        """Deliver every committed event's (session_id, seq) to `callback`, from every process
        that shares this database (SQLite: this process only); `on_lost(why)` if that stops."""
        ...

    def unlisten(self, callback: Notify, on_lost: Callable[[str], None] | None = None) -> None:
        """Stop delivering to `callback`."""
        ...


def is_url(target: str | os.PathLike[str] | None) -> bool:
    """Whether a --store value names a PostgreSQL database rather than a file."""
    return isinstance(target, str) and target.split("://", 1)[0].lower() in ("postgresql", "postgres")


def open_backend(target: str | os.PathLike[str]) -> Backend:
    """The backend a --store value names (not yet connected): a path or sqlite:///PATH is SQLite,
    postgresql://… is PostgreSQL; anything else is a StoreError naming what is accepted."""
    if is_url(target):
        from engine.storage.postgres import PostgresBackend

        return PostgresBackend(str(target))
    text = os.fspath(target)
    if "://" in text:
        scheme, rest = text.split("://", 1)
        if scheme.lower() != "sqlite":
            raise StoreError(f"store URL {text!r}: unknown scheme {scheme!r}; use {URL_HELP}")
        if rest.strip("/") == "":
            raise StoreError(f"store URL {text!r}: no file named; use sqlite:///PATH")
        text = rest[1:] if rest.startswith("//") else rest
    from engine.storage.sqlite import SqliteBackend

    return SqliteBackend(Path(text).expanduser())


def add_store_argument(p: argparse.ArgumentParser, *, suppress: bool = True) -> None:
    """`--store URL` on a command that opens the store (default: LANTERN_STORE, the config's
    `store:`, else the embedded file). A subcommand's copy is SUPPRESSed so that
    `lantern --store URL CMD` and `lantern CMD --store URL` both work."""
    p.add_argument(
        "--store",
        metavar="URL",
        default=argparse.SUPPRESS if suppress else None,
        help=f"where sessions and the audit live: {URL_HELP}",
    )
