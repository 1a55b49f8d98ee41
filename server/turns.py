"""Where a session's turn runs, when several servers share one store, and what a server that
stopped mid-turn left behind.

One place at a time: a turn holds a lease row (`server_turns`) naming its server, renewed by a
heartbeat while it runs and removed when it ends. Another server asked to start a turn in that
session while the lease is live answers "busy"; a lease whose server died (no heartbeat) expires
after `ttl_s`, and the session can be continued anywhere.

What a dead server left: a turn whose user message has no TurnFinished. The next server to hold
the session's lease (to reopen it, or to start a turn) closes it on the record: each approval
still pending is resolved as expired (and audited as a denial), each call that never finished is
finished as cancelled (so the model's history has a result for every call), then an ErrorEvent
`interrupted` and TurnFinished(reason='error').
"""

from __future__ import annotations

import json
import os
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from engine import events as ev
from engine.storage import Backend

SCHEMA = """
CREATE TABLE IF NOT EXISTS server_turns (
    session_id TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    asked_by TEXT NOT NULL DEFAULT '',
    expires DOUBLE PRECISION NOT NULL
);
"""
"""One row per session whose turn runs somewhere (the same DDL in SQLite and PostgreSQL)."""

LEASE_TTL_S = 30.0
"""How long a lease lives without a heartbeat: how long a session stays busy after its server died."""


def server_name() -> str:
    """This server process, as another server's "busy" names it (host:pid:random)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


@dataclass(frozen=True)
class Holder:
    """Who holds a session's lease."""

    server: str
    asked_by: str
    expires: float


class Busy(Exception):
    """The session's turn runs on another server."""

    def __init__(self, holder: Holder) -> None:
        super().__init__(f"a turn runs on {holder.server}")
        self.holder = holder


class Leases:
    """The lease rows of one store, held for this server (`me`)."""

    def __init__(self, backend: Backend, me: str, ttl_s: float = LEASE_TTL_S, clock: Callable[[], float] = time.time):
        self.backend = backend
        self.me = me
        """This server's name in the rows it holds."""
        self.ttl_s = ttl_s
        self.clock = clock

    @classmethod
    async def open(cls, store: Any, me: str, ttl_s: float = LEASE_TTL_S) -> Leases:
        backend: Backend = getattr(store, "backend", store)
        await backend.create(SCHEMA)
        return cls(backend, me, ttl_s)

    async def acquire(self, session_id: str, asked_by: str) -> None:
        """Hold the session's lease; Busy when another server holds a live one."""
        now = self.clock()
        async with self.backend.transaction(f"turns:{session_id}") as tx:
            row = await tx.fetchone("SELECT holder, asked_by, expires FROM server_turns WHERE session_id=?", session_id)
            if row is not None and row[0] != self.me and float(row[2]) > now:
                raise Busy(Holder(row[0], row[1], float(row[2])))
            await tx.execute(
                "INSERT INTO server_turns(session_id, holder, asked_by, expires) VALUES (?,?,?,?) "
                "ON CONFLICT (session_id) DO UPDATE SET holder=excluded.holder, asked_by=excluded.asked_by, "
                "expires=excluded.expires",
                session_id,
                self.me,
                asked_by,
                now + self.ttl_s,
            )

    async def renew(self, session_id: str) -> bool:
        """Extend the lease; False when this server no longer holds it (it expired and another took it)."""
        async with self.backend.transaction(f"turns:{session_id}") as tx:
            row = await tx.fetchone(
                "UPDATE server_turns SET expires=? WHERE session_id=? AND holder=? RETURNING session_id",
                self.clock() + self.ttl_s,
                session_id,
                self.me,
            )
        return row is not None

    async def release(self, session_id: str) -> None:
        """Give the lease up (the turn ended here)."""
        await self.backend.execute("DELETE FROM server_turns WHERE session_id=? AND holder=?", session_id, self.me)

    async def holder(self, session_id: str) -> Holder | None:
        """Who holds a live lease on the session (None: nobody, or it expired)."""
        row = await self.backend.fetchone(
            "SELECT holder, asked_by, expires FROM server_turns WHERE session_id=?", session_id
        )
        if row is None or float(row[2]) <= self.clock():
            return None
        return Holder(row[0], row[1], float(row[2]))


@dataclass
class Leftover:
    """What an interrupted turn left open."""

    turn: int
    requests: list[ev.ApprovalRequested]
    """Approval requests never resolved."""
    calls: list[tuple[str, str, int]]
    """(call_id, tool, step) of calls that never finished."""


def unfinished(events: list[Any]) -> Leftover | None:
    """The last turn when it has no TurnFinished (its server stopped mid-turn), with what it left open."""
    turn = None
    for e in events:
        if isinstance(e, ev.UserMessage):
            turn = e.turn
        elif isinstance(e, ev.TurnFinished) and e.turn == turn:
            turn = None
    if turn is None:
        return None
    requests: dict[str, ev.ApprovalRequested] = {}
    calls: dict[str, tuple[str, str, int]] = {}
    for e in events:
        if getattr(e, "turn", None) != turn:
            continue
        if isinstance(e, ev.ApprovalRequested):
            requests[e.request_id] = e
        elif isinstance(e, ev.ApprovalResolved):
            requests.pop(e.request_id, None)
        elif isinstance(e, ev.AssistantMessage):
            for c in e.tool_calls:
                calls.setdefault(str(c.get("id")), (str(c.get("id")), str(c.get("name")), e.step))
        elif isinstance(e, ev.ToolCallStarted):
            calls.setdefault(e.call_id, (e.call_id, e.tool, e.step))
        elif isinstance(e, ev.ToolCallFinished):
            calls[e.call_id] = ("", "", 0)
    return Leftover(turn, list(requests.values()), [c for c in calls.values() if c[0]])


INTERRUPTED = "the server stopped mid-turn"


async def close_interrupted(session: Any, left: Leftover, audit: Any | None) -> None:
    """Put on the record that `left.turn` was interrupted (see the module's doc); `session` is the
    engine Session (its sink stores and fans the events out)."""
    n = left.turn
    for r in left.requests:
        why = f"expired: {INTERRUPTED}; ask again"
        await session.emit(
            ev.ApprovalResolved,
            turn=n,
            request_id=r.request_id,
            call_id=r.call_id,
            approved=False,
            by="server",
            reason=why,
        )
        if audit is not None:
            await audit.append(
                session_id=session.id, user="(server)", kind="denial", tool=r.tool,
                args_json=json.dumps(r.arguments, sort_keys=True), call_hash=r.call_hash, decision=r.decision,
                rule=r.rule, detail=f"request {r.request_id} {why}",
            )  # fmt: skip
    for call_id, tool, step in left.calls:
        await session.emit(
            ev.ToolCallFinished,
            turn=n,
            call_id=call_id,
            tool=tool,
            status="cancelled",
            duration_ms=0.0,
            summary=f"not run: {INTERRUPTED}",
            output=f"[cancelled] not run: {INTERRUPTED} before this call finished",
            step=step,
        )
    await session.emit(
        ev.ErrorEvent,
        turn=n,
        code="interrupted",
        message=f"turn {n} was interrupted: {INTERRUPTED}; everything stored before is kept",
        hint="ask again to continue",
    )
    await session.emit(ev.TurnFinished, turn=n, reason="error")
