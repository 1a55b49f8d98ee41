"""The audit log: an append-only SQLite table in the store's file, each row chained to the previous by hash.

Triggers refuse UPDATE and DELETE, so the engine itself cannot rewrite history; someone with the
file can still drop the triggers and edit rows, which `verify` then reports as the first row
whose hash (sha256 over the canonical JSON of the row and the previous row's hash) is wrong.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from dataclasses import dataclass
from typing import Any

import aiosqlite

from engine import events as ev

KINDS = ("execution", "confirmation", "approval", "denial", "block", "refusal")
"""What a row records."""

SCHEMA = """
CREATE TABLE IF NOT EXISTS audit (
    seq INTEGER PRIMARY KEY,
    at TEXT NOT NULL,
    session_id TEXT NOT NULL,
    user TEXT NOT NULL,
    kind TEXT NOT NULL,
    tool TEXT NOT NULL,
    args_json TEXT NOT NULL,
    call_hash TEXT NOT NULL,
    decision TEXT NOT NULL,
    rule TEXT NOT NULL,
    detail TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE TRIGGER IF NOT EXISTS audit_no_update BEFORE UPDATE ON audit
BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_no_delete BEFORE DELETE ON audit
BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END;
"""

GENESIS = "0" * 64
"""prev_hash of the first row."""

_FIELDS = ("seq", "at", "session_id", "user", "kind", "tool", "args_json", "call_hash", "decision", "rule", "detail", "prev_hash")


def canonical(obj: Any) -> str:
    """Canonical JSON: sorted keys, no spaces, UTF-8 kept."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def call_hash(tool: str, args: dict[str, Any]) -> str:
    """sha256 of the canonical {tool, args}: what an approval binds to."""
    return hashlib.sha256(canonical({"tool": tool, "args": args}).encode()).hexdigest()


def row_hash(row: dict[str, Any]) -> str:
    """The hash of one row (every field but `hash`, including prev_hash)."""
    return hashlib.sha256(canonical({k: row[k] for k in _FIELDS}).encode()).hexdigest()


@dataclass
class AuditRow:
    """One audit row as read back."""

    seq: int
    at: str
    session_id: str
    user: str
    kind: str
    tool: str
    args_json: str
    call_hash: str
    decision: str
    rule: str
    detail: str
    prev_hash: str
    hash: str


class AuditLog:
    """Append and verify audit rows on the store's aiosqlite connection."""

    def __init__(self, db: aiosqlite.Connection) -> None:
        self.db = db
        """The shared store connection."""
        self._lock = asyncio.Lock()
        self._ready = False

    @classmethod
    async def open(cls, db: aiosqlite.Connection) -> AuditLog:
        """Create the table and triggers if needed."""
        log = cls(db)
        await log._ensure()
        return log

    async def _ensure(self) -> None:
        if not self._ready:
            await self.db.executescript(SCHEMA)
            await self.db.commit()
            self._ready = True

    async def append(
        self,
        *,
        session_id: str,
        user: str,
        kind: str,
        tool: str,
        args_json: str,
        call_hash: str,
        decision: str = "",
        rule: str = "",
        detail: str = "",
    ) -> AuditRow:
        """Add one row, chained to the last one, and commit it."""
        if kind not in KINDS:
            raise ValueError(f"unknown audit kind {kind!r}; one of {', '.join(KINDS)}")
        await self._ensure()
        async with self._lock:
            async with self.db.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1") as cur:
                last = await cur.fetchone()
            row = {
                "seq": (last[0] + 1) if last else 1,
                "at": ev.utcnow().isoformat(),
                "session_id": session_id,
                "user": user,
                "kind": kind,
                "tool": tool,
                "args_json": args_json,
                "call_hash": call_hash,
                "decision": decision,
                "rule": rule,
                "detail": detail[:4000],
                "prev_hash": last[1] if last else GENESIS,
            }
            row["hash"] = row_hash(row)
            await self.db.execute(
                f"INSERT INTO audit({', '.join(row)}) VALUES ({', '.join('?' for _ in row)})",
                tuple(row.values()),
            )
            await self.db.commit()
        return AuditRow(**row)

    async def rows(self, *, session_id: str | None = None, limit: int | None = None, newest: bool = False) -> list[AuditRow]:
        """Rows in order (or the newest `limit`, still returned oldest first)."""
        await self._ensure()
        sql = "SELECT " + ", ".join((*_FIELDS, "hash")) + " FROM audit"
        params: list[Any] = []
        if session_id:
            sql += " WHERE session_id=?"
            params.append(session_id)
        sql += " ORDER BY seq DESC" if newest else " ORDER BY seq"
        if limit:
            sql += " LIMIT ?"
            params.append(limit)
        async with self.db.execute(sql, params) as cur:
            out = [AuditRow(*r) async for r in cur]
        return list(reversed(out)) if newest else out

    async def verify(self) -> tuple[bool, int | None, str]:
        """(ok, first broken seq, why): recomputes every hash and link in order."""
        await self._ensure()
        prev = GENESIS
        expected_seq = 1
        n = 0
        async with self.db.execute("SELECT " + ", ".join((*_FIELDS, "hash")) + " FROM audit ORDER BY seq") as cur:
            async for r in cur:
                row = dict(zip((*_FIELDS, "hash"), r))
                n += 1
                if row["seq"] != expected_seq:
                    return False, row["seq"], f"row {row['seq']}: expected seq {expected_seq} (a row was removed)"
                if row["prev_hash"] != prev:
                    return False, row["seq"], f"row {row['seq']}: prev_hash does not match row {row['seq'] - 1}'s hash"
                if row_hash(row) != row["hash"]:
                    return False, row["seq"], f"row {row['seq']}: contents do not match its hash (edited)"
                prev = row["hash"]
                expected_seq += 1
        return True, None, f"{n} rows, chain intact"
