"""The session store: sessions and their events in SQLite (WAL), written as they happen.

An event is committed before any face shows it, so a killed process loses nothing already on
screen. The audit log lives in the same file, in its own append-only table (engine/policy).
Each session's events form a keyed hash chain (engine.chain), checked by `lantern audit verify`.
Several processes may share the file: every write waits for SQLite's lock (busy timeout), and
writes of one process share one lock so the audit's numbering transaction stays its own.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hmac
import json
import os
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiosqlite

from engine import events as ev
from engine.chain import load_key, mac

BUSY_TIMEOUT_S = 30.0
"""How long a write waits for another process holding the database's lock."""
_LOCKS: weakref.WeakKeyDictionary[aiosqlite.Connection, asyncio.Lock] = weakref.WeakKeyDictionary()


def write_lock(db: aiosqlite.Connection) -> asyncio.Lock:
    """The one lock for writes on a connection (the store's events and the audit's rows)."""
    lock = _LOCKS.get(db)
    if lock is None:
        lock = _LOCKS[db] = asyncio.Lock()
    return lock


def event_hash(key: bytes, prev: str, body: str) -> str:
    """The keyed link of one event to the one before it in its session."""
    return mac(key, prev + "\n" + body)


SCHEMA = """
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


class Store:
    """Async access to the SQLite file; one connection per process."""

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path else default_path()
        """The database file."""
        self._db: aiosqlite.Connection | None = None
        self._key = b""
        self._heads: dict[str, str] = {}

    async def open(self) -> Store:
        """Open (creating if needed) the database in WAL mode."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._key = load_key()
        self._db = await aiosqlite.connect(self.path, timeout=BUSY_TIMEOUT_S)
        async with write_lock(self._db):
            await self._db.execute("PRAGMA journal_mode=WAL")
            await self._db.execute("PRAGMA synchronous=NORMAL")
            await self._db.executescript(SCHEMA)
            async with self._db.execute("PRAGMA table_info(events)") as cur:
                if "hash" not in {r[1] async for r in cur}:  # a store from before events were chained
                    await self._db.execute("ALTER TABLE events ADD COLUMN hash TEXT NOT NULL DEFAULT ''")
            await self._db.commit()
        return self

    @property
    def db(self) -> aiosqlite.Connection:
        """The open connection (for the audit log and scores, which share the file)."""
        if self._db is None:
            raise RuntimeError("store is not open")
        return self._db

    async def close(self) -> None:
        """Close the connection."""
        if self._db is not None:
            await self._db.close()
            self._db = None

    async def __aenter__(self) -> Store:
        return await self.open()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def create_session(
        self, session_id: str, *, model: str = "", context: str | None = None, meta: dict[str, Any] | None = None
    ) -> None:
        """Register a session (idempotent)."""
        now = ev.utcnow().isoformat()
        async with write_lock(self.db):
            await self.db.execute(
                "INSERT OR IGNORE INTO sessions(id, created_at, updated_at, model, context, meta) VALUES (?,?,?,?,?,?)",
                (session_id, now, now, model, context, json.dumps(meta or {})),
            )
            await self.db.commit()

    async def append(self, event: Any) -> None:
        """Persist one event and commit (the event is durable before any face shows it)."""
        body = event.model_dump_json()
        at = event.at.isoformat() if isinstance(event.at, dt.datetime) else str(event.at)
        async with write_lock(self.db):
            prev = await self._head(event.session_id)
            h = event_hash(self._key, prev, body)
            await self.db.execute(
                "INSERT INTO events(session_id, seq, kind, at, body, hash) VALUES (?,?,?,?,?,?)",
                (event.session_id, event.seq, event.kind, at, body, h),
            )
            if isinstance(event, ev.UserMessage):
                await self.db.execute(
                    "UPDATE sessions SET updated_at=?, title=CASE WHEN title='' THEN ? ELSE title END WHERE id=?",
                    (at, event.text[:80], event.session_id),
                )
            elif isinstance(event, ev.TurnFinished):
                await self.db.execute("UPDATE sessions SET updated_at=? WHERE id=?", (at, event.session_id))
            await self.db.commit()
            self._heads[event.session_id] = h

    async def _head(self, session_id: str) -> str:
        if session_id not in self._heads:
            async with self.db.execute(
                "SELECT hash FROM events WHERE session_id=? ORDER BY seq DESC LIMIT 1", (session_id,)
            ) as cur:
                row = await cur.fetchone()
            self._heads[session_id] = row[0] if row else ""
        return self._heads[session_id]

    async def verify_events(self) -> tuple[bool, str]:
        """(ok, why): every session's events still form their keyed chain (an edit, a removed or
        re-ordered event breaks it); sessions written before events were chained are counted apart."""
        sessions = unchained = 0
        current, prev, seq = None, "", 0
        async with self.db.execute("SELECT session_id, seq, body, hash FROM events ORDER BY session_id, seq") as cur:
            async for sid, n, body, h in cur:
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

    async def events(self, session_id: str) -> list[Any]:
        """All events of a session, in order."""
        async with self.db.execute("SELECT body FROM events WHERE session_id=? ORDER BY seq", (session_id,)) as cur:
            return [ev.from_json(row[0]) async for row in cur]

    async def sessions(self, limit: int = 50) -> list[SessionInfo]:
        """Sessions, most recently active first."""
        sql = (
            "SELECT s.id, s.created_at, s.updated_at, s.title, s.model, s.context, "
            "(SELECT COUNT(*) FROM events e WHERE e.session_id = s.id) "
            "FROM sessions s ORDER BY s.updated_at DESC, s.rowid DESC LIMIT ?"
        )
        async with self.db.execute(sql, (limit,)) as cur:
            return [SessionInfo(*row) async for row in cur]

    async def latest(self) -> str | None:
        """The id of the most recently active session."""
        rows = await self.sessions(limit=1)
        return rows[0].id if rows else None

    async def find(self, prefix: str) -> str | None:
        """A session id from its full id or a unique prefix."""
        async with self.db.execute("SELECT id FROM sessions WHERE id LIKE ? LIMIT 2", (prefix + "%",)) as cur:
            rows = [r[0] async for r in cur]
        return rows[0] if len(rows) == 1 else None

    async def session_meta(self, session_id: str) -> dict[str, Any]:
        """The row of a session as a dict (model, context, meta)."""
        async with self.db.execute("SELECT model, context, meta FROM sessions WHERE id=?", (session_id,)) as cur:
            row = await cur.fetchone()
        if row is None:
            return {}
        return {"model": row[0], "context": row[1], **json.loads(row[2] or "{}")}

    async def put_blob(self, ref: str, session_id: str, body: str) -> None:
        """Keep a full (scrubbed) tool output, recallable by `ref`."""
        async with write_lock(self.db):
            await self.db.execute(
                "INSERT OR REPLACE INTO blobs(ref, session_id, body) VALUES (?,?,?)", (ref, session_id, body)
            )
            await self.db.commit()

    async def get_blob(self, ref: str, *, session_id: str | None = None) -> str | None:
        """A stored output by reference (only if it belongs to `session_id`, when given)."""
        sql, params = "SELECT body FROM blobs WHERE ref=?", [ref]
        if session_id is not None:
            sql, params = sql + " AND session_id=?", [ref, session_id]
        async with self.db.execute(sql, params) as cur:
            row = await cur.fetchone()
        return row[0] if row else None

    async def put_score(self, session_id: str, score: dict[str, Any]) -> None:
        """Store a session's trajectory score."""
        async with write_lock(self.db):
            await self.db.execute(
                "INSERT OR REPLACE INTO scores(session_id, at, body) VALUES (?,?,?)",
                (session_id, ev.utcnow().isoformat(), json.dumps(score)),
            )
            await self.db.commit()

    async def get_score(self, session_id: str) -> dict[str, Any] | None:
        """A session's stored trajectory score."""
        async with self.db.execute("SELECT body FROM scores WHERE session_id=?", (session_id,)) as cur:
            row = await cur.fetchone()
        return json.loads(row[0]) if row else None

    async def put_mark(self, session_id: str, verdict: str) -> None:
        """Keep the user's verdict on a session ('good' or 'bad'; a bad session never teaches)."""
        if verdict not in ("good", "bad"):
            raise ValueError(f"a session is marked good or bad, not {verdict!r}")
        async with write_lock(self.db):
            await self.db.execute(
                "INSERT OR REPLACE INTO marks(session_id, at, verdict) VALUES (?,?,?)",
                (session_id, ev.utcnow().isoformat(), verdict),
            )
            await self.db.commit()

    async def get_mark(self, session_id: str) -> str | None:
        """The user's verdict on a session, or None when unmarked."""
        async with self.db.execute("SELECT verdict FROM marks WHERE session_id=?", (session_id,)) as cur:
            row = await cur.fetchone()
        return row[0] if row else None
