"""The session store: sessions and their events, written as they happen, in SQLite or PostgreSQL.

An event is committed before any face shows it, so a killed process loses nothing already on
screen. The audit log lives in the same database, in its own append-only table (engine/policy).
Each session's events form a keyed hash chain (engine.chain), checked by `lantern audit verify`.

Where the rows live is a backend (engine.storage) named by `--store`, LANTERN_STORE or the
config's `store:` key: a file path (SQLite, the default `$LANTERN_HOME/lantern.db`) or
`postgresql://USER@HOST:PORT/DB`. The logic here is written once over that seam. An event's seq
is allocated inside a transaction holding the session's lock (the last seq plus one; the event is
re-stamped if another writer took its number), so several processes appending to one session
leave no gap and no duplicate; every commit is announced as (session_id, seq) to `subscribe()`rs:
across processes through PostgreSQL's NOTIFY, inside the process for SQLite.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hmac
import json
import os
from contextlib import aclosing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine import events as ev
from engine.chain import load_key, mac
from engine.storage import Backend, StoreError, open_backend
from engine.storage.sqlite import BUSY_TIMEOUT_S, SqliteBackend, write_lock

__all__ = [
    "BUSY_TIMEOUT_S",
    "EventFeed",
    "PageGroup",
    "SessionInfo",
    "Store",
    "StoreError",
    "default_path",
    "write_lock",
]


def event_hash(key: bytes, prev: str, body: str) -> str:
    """The keyed link of one event to the one before it in its session."""
    return mac(key, prev + "\n" + body)


PAGE_TABLES = """
CREATE TABLE IF NOT EXISTS session_status (
    session_id TEXT PRIMARY KEY,
    at TEXT NOT NULL,
    status TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS page_groups (
    group_key TEXT PRIMARY KEY,
    session_id TEXT NOT NULL,
    source TEXT NOT NULL,
    status TEXT NOT NULL,
    opened_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    fingerprints TEXT NOT NULL DEFAULT '[]',
    pages INTEGER NOT NULL DEFAULT 0
);
"""
"""A paged session's status and the alert groups' sessions: the same DDL in both dialects."""

SCHEMA = (
    """
CREATE TABLE IF NOT EXISTS sessions (
    id TEXT PRIMARY KEY,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    title TEXT NOT NULL DEFAULT '',
    model TEXT NOT NULL DEFAULT '',
    context TEXT,
    meta TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE IF NOT EXISTS events (
    session_id TEXT NOT NULL REFERENCES sessions(id),
    seq INTEGER NOT NULL,
    kind TEXT NOT NULL,
    at TEXT NOT NULL,
    body TEXT NOT NULL,
    hash TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (session_id, seq)
);
CREATE TABLE IF NOT EXISTS blobs (
    ref TEXT PRIMARY KEY,
    session_id TEXT NOT NULL,
    body TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS scores (
    session_id TEXT PRIMARY KEY,
    at TEXT NOT NULL,
    body TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS marks (
    session_id TEXT PRIMARY KEY,
    at TEXT NOT NULL,
    verdict TEXT NOT NULL
);
"""
    + PAGE_TABLES
)
"""The store's tables in SQLite (the embedded file's format)."""

PG_SCHEMA = (
    """
CREATE TABLE IF NOT EXISTS sessions (
    id TEXT PRIMARY KEY,
    rowid BIGSERIAL UNIQUE,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    title TEXT NOT NULL DEFAULT '',
    model TEXT NOT NULL DEFAULT '',
    context TEXT,
    meta TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE IF NOT EXISTS events (
    session_id TEXT NOT NULL,
    seq BIGINT NOT NULL,
    kind TEXT NOT NULL,
    at TEXT NOT NULL,
    body TEXT NOT NULL,
    hash TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (session_id, seq)
);
CREATE TABLE IF NOT EXISTS blobs (
    ref TEXT PRIMARY KEY,
    session_id TEXT NOT NULL,
    body TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS scores (
    session_id TEXT PRIMARY KEY,
    at TEXT NOT NULL,
    body TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS marks (
    session_id TEXT PRIMARY KEY,
    at TEXT NOT NULL,
    verdict TEXT NOT NULL
);
"""
    + PAGE_TABLES
    + """
CREATE TABLE IF NOT EXISTS lantern_meta (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"""
)
"""The same tables in PostgreSQL (`rowid` keeps the insertion order SQLite has built in), and
`lantern_meta`, which names the chain key the database was started with."""

SCHEMAS = {"sqlite": SCHEMA, "postgresql": PG_SCHEMA}
"""DDL per dialect."""


def default_path() -> Path:
    """Where the store lives: $LANTERN_HOME/lantern.db, else the user's data directory."""
    home = os.environ.get("LANTERN_HOME")
    base = Path(home) if home else Path(os.environ.get("XDG_DATA_HOME", Path.home() / ".local" / "share")) / "lantern"
    return base / "lantern.db"


@dataclass
class SessionInfo:
    """One row of `lantern sessions`."""

    id: str
    created_at: str
    updated_at: str
    title: str
    model: str
    context: str | None
    events: int


STATUSES = ("open", "resolved")
"""Where a session's incident stands (`Store.set_status`); a session without one is a plain conversation."""


@dataclass
class PageGroup:
    """The investigation an alert group (a pager's group key) is attached to, kept so that a
    repeated notification finds it again, across restarts and servers."""

    group_key: str
    session_id: str
    """The session investigating the group."""
    source: str
    """Who sends it: 'alertmanager' or 'generic'."""
    status: str
    """'firing' or 'resolved': the last notification's."""
    opened_at: str
    """When `session_id` was opened for the group (ISO 8601, UTC): the rate limit counts from here."""
    updated_at: str
    """When the last notification came."""
    fingerprints: list[str]
    """The alerts of the group already told to the session."""
    pages: int = 0
    """Notifications received for this session."""


KEY_ID = "chain_key_id"
"""The lantern_meta row naming the chain key (a MAC of a fixed text, never the key)."""


def key_id(key: bytes) -> str:
    """A fingerprint of the chain key that reveals nothing of it."""
    return mac(key, "lantern:chain-key-id")[:16]


def default_target() -> str | Path:
    """Where the store lives when no path is given: LANTERN_STORE, else the config file's
    `store:`, else $LANTERN_HOME/lantern.db."""
    from engine.config import configured_store

    return configured_store() or default_path()


class EventFeed:
    """Live (session_id, seq) of every event committed to the store, in commit order, by any
    process on the database (SQLite: this process). `async with store.subscribe() as feed:`
    starts listening before it returns, so nothing committed after that is missed."""

    def __init__(self, backend: Backend, session_id: str | None = None) -> None:
        self.session_id = session_id
        """Only this session's events (None: every session's)."""
        self._backend = backend
        self._queue: asyncio.Queue[tuple[str, int] | str] = asyncio.Queue()
        self._listening = False

    async def start(self) -> EventFeed:
        """Begin listening (idempotent)."""
        if not self._listening:
            await self._backend.listen(self._heard, self._lost)
            self._listening = True
        return self

    def stop(self) -> None:
        """Stop listening; events already heard can still be read."""
        if self._listening:
            self._backend.unlisten(self._heard, self._lost)
            self._listening = False

    async def __aenter__(self) -> EventFeed:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        self.stop()

    def __aiter__(self) -> EventFeed:
        return self

    async def __anext__(self) -> tuple[str, int]:
        await self.start()
        item = await self._queue.get()
        if isinstance(item, str):
            raise StoreError(item)
        return item

    def _heard(self, session_id: str, seq: int) -> None:
        if self.session_id is None or session_id == self.session_id:
            self._queue.put_nowait((session_id, seq))

    def _lost(self, why: str) -> None:
        self._queue.put_nowait(why)


class Store:
    """Sessions, events, outputs, scores and marks, over a backend (engine.storage)."""

    def __init__(self, path: str | Path | None = None) -> None:
        target = path if path is not None and str(path) else default_target()
        self.backend: Backend = open_backend(target)
        """Where the rows live (SQLite or PostgreSQL)."""
        self.path: Path | None = self.backend.path if isinstance(self.backend, SqliteBackend) else None
        """The database file (None for PostgreSQL)."""
        self._key = b""
        self._ready = False

    @property
    def where(self) -> str:
        """The database as a user names it (a path, or a URL without its password)."""
        return self.backend.where

    async def open(self) -> Store:
        """Connect and create the tables if needed (SQLite: the file, in WAL mode)."""
        self._key = load_key()
        await self.backend.open()
        if not self._ready:
            await self.backend.create(SCHEMAS[self.backend.dialect])
            if "hash" not in await self.backend.columns("events"):  # a store from before events were chained
                await self.backend.execute("ALTER TABLE events ADD COLUMN hash TEXT NOT NULL DEFAULT ''")
            if await self.backend.has_table("lantern_meta"):
                await self._check_key()
            self._ready = True
        return self

    async def _check_key(self) -> None:
        """A shared database is chained with one key: a process holding another would write rows
        nobody can verify, so it stops here with what to do."""
        mine = key_id(self._key)
        await self.backend.execute(
            "INSERT INTO lantern_meta(name, value) VALUES (?, ?) ON CONFLICT (name) DO NOTHING", KEY_ID, mine
        )
        row = await self.backend.fetchone("SELECT value FROM lantern_meta WHERE name = ?", KEY_ID)
        if row and row[0] != mine:
            from engine.chain import key_path

            raise StoreError(
                f"{self.where} is chained with another audit key (id {row[0]}, this machine's is {mine}): "
                f"copy the first server's audit.key to {key_path()}"
            )

    @property
    def db(self) -> Any:
        """The SQLite connection (tools and tests that edit the file directly)."""
        if not isinstance(self.backend, SqliteBackend):
            raise RuntimeError(f"{self.where} is not a SQLite store: use store.backend")
        return self.backend.db

    async def close(self) -> None:
        """Close the connections."""
        await self.backend.close()

    async def __aenter__(self) -> Store:
        return await self.open()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def subscribe(self, session_id: str | None = None) -> EventFeed:
        """Live (session_id, seq) of events as they are committed; see EventFeed."""
        return EventFeed(self.backend, session_id)

    async def create_session(
        self, session_id: str, *, model: str = "", context: str | None = None, meta: dict[str, Any] | None = None
    ) -> None:
        """Register a session (idempotent)."""
        now = ev.utcnow().isoformat()
        t = self.backend.text
        await self.backend.execute(
            "INSERT INTO sessions(id, created_at, updated_at, model, context, meta) VALUES (?,?,?,?,?,?) "
            "ON CONFLICT (id) DO NOTHING",
            session_id,
            now,
            now,
            t(model),
            t(context) if context is not None else None,
            json.dumps(meta or {}),
        )

    async def append(self, event: Any) -> Any:
        """Persist one event and commit it (durable before any face shows it); returns the event
        as stored: re-stamped with the next seq if another writer took the one it carried."""
        at = event.at.isoformat() if isinstance(event.at, dt.datetime) else str(event.at)
        sid = event.session_id
        async with self.backend.transaction(f"events:{sid}") as tx:
            last = await tx.fetchone("SELECT seq, hash FROM events WHERE session_id=? ORDER BY seq DESC LIMIT 1", sid)
            seq = last[0] + 1 if last else 1
            if event.seq != seq:
                event = event.model_copy(update={"seq": seq})
            body = event.model_dump_json()
            h = event_hash(self._key, last[1] if last else "", body)
            await tx.execute(
                "INSERT INTO events(session_id, seq, kind, at, body, hash) VALUES (?,?,?,?,?,?)",
                sid,
                seq,
                event.kind,
                at,
                body,
                h,
            )
            if isinstance(event, ev.UserMessage):
                await tx.execute(
                    "UPDATE sessions SET updated_at=?, title=CASE WHEN title='' THEN ? ELSE title END WHERE id=?",
                    at,
                    self.backend.text(event.text[:80]),
                    sid,
                )
            elif isinstance(event, ev.TurnFinished):
                await tx.execute("UPDATE sessions SET updated_at=? WHERE id=?", at, sid)
            tx.notify(sid, seq)
        return event

    async def verify_events(self) -> tuple[bool, str]:
        """(ok, why): every session's events still form their keyed chain (an edit, a removed or
        re-ordered event breaks it); sessions written before events were chained are counted apart."""
        sessions = unchained = 0
        current, prev, seq = None, "", 0
        sql = "SELECT session_id, seq, body, hash FROM events ORDER BY session_id, seq"
        async with aclosing(self.backend.stream(sql)) as rows:
            async for sid, n, body, h in rows:
                if sid != current:
                    current, prev, seq = sid, "", 0
                    sessions += 1
                seq += 1
                if not h and not prev:
                    unchained += n == 1
                    continue
                if n != seq:
                    return False, f"session {sid}: event {seq} is missing"
                if not hmac.compare_digest(event_hash(self._key, prev, body), h):
                    return False, f"session {sid}: event {n} does not match its keyed hash (edited)"
                prev = h
        extra = f" ({unchained} written before events were chained)" if unchained else ""
        return True, f"{sessions} sessions' events intact{extra}"

    async def events(self, session_id: str, *, after: int = 0) -> list[Any]:
        """The events of a session in order (only those with a seq above `after`, when given)."""
        sql = "SELECT body FROM events WHERE session_id=? AND seq>? ORDER BY seq"
        return [ev.from_json(row[0]) for row in await self.backend.fetch(sql, session_id, after)]

    async def count(self, table: str) -> int:
        """How many rows a table of the store holds (sessions, events, blobs, audit …)."""
        if table not in ("sessions", "events", "blobs", "scores", "marks", "session_status", "page_groups", "audit"):
            raise ValueError(f"not a table of the store: {table!r}")
        row = await self.backend.fetchone(f"SELECT COUNT(*) FROM {table}")
        return int(row[0]) if row else 0

    async def sessions(self, limit: int = 50) -> list[SessionInfo]:
        """Sessions, most recently active first."""
        sql = (
            "SELECT s.id, s.created_at, s.updated_at, s.title, s.model, s.context, "
            "(SELECT COUNT(*) FROM events e WHERE e.session_id = s.id) "
            "FROM sessions s ORDER BY s.updated_at DESC, s.rowid DESC LIMIT ?"
        )
        return [SessionInfo(*row) for row in await self.backend.fetch(sql, limit)]

    async def latest(self) -> str | None:
        """The id of the most recently active session."""
        rows = await self.sessions(limit=1)
        return rows[0].id if rows else None

    async def find(self, prefix: str) -> str | None:
        """A session id from its full id or a unique prefix."""
        rows = await self.backend.fetch("SELECT id FROM sessions WHERE id LIKE ? LIMIT 2", prefix + "%")
        return rows[0][0] if len(rows) == 1 else None

    async def session_meta(self, session_id: str) -> dict[str, Any]:
        """The row of a session as a dict (model, context, meta)."""
        row = await self.backend.fetchone("SELECT model, context, meta FROM sessions WHERE id=?", session_id)
        if row is None:
            return {}
        return {"model": row[0], "context": row[1], **json.loads(row[2] or "{}")}

    async def put_blob(self, ref: str, session_id: str, body: str) -> None:
        """Keep a full (scrubbed) tool output, recallable by `ref`."""
        await self.backend.execute(
            "INSERT INTO blobs(ref, session_id, body) VALUES (?,?,?) "
            "ON CONFLICT (ref) DO UPDATE SET session_id=excluded.session_id, body=excluded.body",
            ref,
            session_id,
            self.backend.text(body),
        )

    async def get_blob(self, ref: str, *, session_id: str | None = None) -> str | None:
        """A stored output by reference (only if it belongs to `session_id`, when given)."""
        if session_id is None:
            row = await self.backend.fetchone("SELECT body FROM blobs WHERE ref=?", ref)
        else:
            row = await self.backend.fetchone("SELECT body FROM blobs WHERE ref=? AND session_id=?", ref, session_id)
        return row[0] if row else None

    async def put_score(self, session_id: str, score: dict[str, Any]) -> None:
        """Store a session's trajectory score."""
        await self.backend.execute(
            "INSERT INTO scores(session_id, at, body) VALUES (?,?,?) "
            "ON CONFLICT (session_id) DO UPDATE SET at=excluded.at, body=excluded.body",
            session_id,
            ev.utcnow().isoformat(),
            json.dumps(score),
        )

    async def get_score(self, session_id: str) -> dict[str, Any] | None:
        """A session's stored trajectory score."""
        row = await self.backend.fetchone("SELECT body FROM scores WHERE session_id=?", session_id)
        return json.loads(row[0]) if row else None

    async def recent_scores(self, limit: int = 50) -> list[dict[str, Any]]:
        """The newest stored trajectory scores, newest first."""
        rows = await self.backend.fetch("SELECT body FROM scores ORDER BY at DESC LIMIT ?", limit)
        return [json.loads(r[0]) for r in rows]

    async def put_mark(self, session_id: str, verdict: str) -> None:
        """Keep the user's verdict on a session ('good' or 'bad'; a bad session never teaches)."""
        if verdict not in ("good", "bad"):
            raise ValueError(f"a session is marked good or bad, not {verdict!r}")
        await self.backend.execute(
            "INSERT INTO marks(session_id, at, verdict) VALUES (?,?,?) "
            "ON CONFLICT (session_id) DO UPDATE SET at=excluded.at, verdict=excluded.verdict",
            session_id,
            ev.utcnow().isoformat(),
            verdict,
        )

    async def get_mark(self, session_id: str) -> str | None:
        """The user's verdict on a session, or None when unmarked."""
        row = await self.backend.fetchone("SELECT verdict FROM marks WHERE session_id=?", session_id)
        return row[0] if row else None

    async def set_status(self, session_id: str, status: str, detail: str = "") -> None:
        """Mark where a session's incident stands: 'open', or 'resolved' (its page's alerts resolved)."""
        if status not in STATUSES:
            raise ValueError(f"a session's status is one of {', '.join(STATUSES)}, not {status!r}")
        await self.backend.execute(
            "INSERT INTO session_status(session_id, at, status, detail) VALUES (?,?,?,?) "
            "ON CONFLICT (session_id) DO UPDATE SET at=excluded.at, status=excluded.status, detail=excluded.detail",
            session_id,
            ev.utcnow().isoformat(),
            status,
            self.backend.text(detail[:500]),
        )

    async def page_group(self, group_key: str) -> PageGroup | None:
        """The session an alert group is attached to, or None for a group never paged."""
        row = await self.backend.fetchone(
            "SELECT group_key, session_id, source, status, opened_at, updated_at, fingerprints, pages "
            "FROM page_groups WHERE group_key=?",
            self.backend.text(group_key),
        )
        if row is None:
            return None
        key, sid, source, status, opened_at, updated_at, prints, pages = row
        return PageGroup(key, sid, source, status, opened_at, updated_at, list(json.loads(prints or "[]")), int(pages))

    async def put_page_group(self, group: PageGroup) -> None:
        """Attach an alert group to its session (or record its latest notification)."""
        t = self.backend.text
        await self.backend.execute(
            "INSERT INTO page_groups(group_key, session_id, source, status, opened_at, updated_at, fingerprints, pages) "
            "VALUES (?,?,?,?,?,?,?,?) ON CONFLICT (group_key) DO UPDATE SET session_id=excluded.session_id, "
            "source=excluded.source, status=excluded.status, opened_at=excluded.opened_at, "
            "updated_at=excluded.updated_at, fingerprints=excluded.fingerprints, pages=excluded.pages",
            t(group.group_key),
            group.session_id,
            group.source,
            group.status,
            group.opened_at,
            group.updated_at,
            t(json.dumps(group.fingerprints[-1000:])),
            group.pages,
        )

    async def get_status(self, session_id: str) -> tuple[str, str, str] | None:
        """(status, since, detail) of a session, or None when it has none (an ordinary conversation)."""
        row = await self.backend.fetchone(
            "SELECT status, at, detail FROM session_status WHERE session_id=?", session_id
        )
        return (row[0], row[1], row[2]) if row else None
