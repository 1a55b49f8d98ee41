"""Which Slack thread carries which session, kept in the server's store (SQLite or PostgreSQL), so
`@lantern …` in a thread still reaches its session after the server restarts."""

from __future__ import annotations

from typing import Any

from engine import events as ev
from engine.storage import Backend

SCHEMA = """
CREATE TABLE IF NOT EXISTS slack_threads (
    channel TEXT NOT NULL,
    thread_ts TEXT NOT NULL,
    session_id TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (channel, thread_ts)
);
"""


class Threads:
    """channel + thread ts ↔ session id."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend

    @classmethod
    async def open(cls, store: Any) -> Threads:
        """The table in `store`'s database, created when missing."""
        backend: Backend = getattr(store, "backend", store)
        await backend.create(SCHEMA)
        return cls(backend)

    async def bind(self, channel: str, thread_ts: str, session_id: str) -> None:
        """The thread `thread_ts` in `channel` carries `session_id` from now on."""
        await self.backend.execute(
            "INSERT INTO slack_threads(channel, thread_ts, session_id, created_at) VALUES (?,?,?,?) "
            "ON CONFLICT(channel, thread_ts) DO UPDATE SET session_id=excluded.session_id",
            channel,
            thread_ts,
            session_id,
            ev.utcnow().isoformat(),
        )

    async def session(self, channel: str, thread_ts: str) -> str | None:
        """The session a thread carries, or None."""
        row = await self.backend.fetchone(
            "SELECT session_id FROM slack_threads WHERE channel=? AND thread_ts=?", channel, thread_ts
        )
        return str(row[0]) if row else None

    async def thread(self, session_id: str) -> tuple[str, str] | None:
        """(channel, thread ts) of the latest thread that carries `session_id`, or None."""
        row = await self.backend.fetchone(
            "SELECT channel, thread_ts FROM slack_threads WHERE session_id=? ORDER BY created_at DESC LIMIT 1",
            session_id,
        )
        return (str(row[0]), str(row[1])) if row else None
