"""The audit log: an append-only SQLite table in the store's file, each row chained to the previous.

Each row's hash is an HMAC (engine.chain: a key outside the database, mode 0600) over the
canonical JSON of the row and the previous row's hash, and the chain's head is appended to an
anchor file beside the database after every row. Triggers refuse UPDATE and DELETE; someone who
drops them and edits a row cannot re-chain without the key, and deleting the newest rows leaves
the anchor naming a row that is gone: `verify` reports the first bad row either way. An execution
row carries the hash of the output it stored, so the stored outputs are chained too.

A write or dangerous call gets an `intent` row before the executor runs and its `execution` row
after: a crash in between still leaves a record that it was about to run. Rows are numbered
inside one `BEGIN IMMEDIATE` transaction, so several processes on one store never collide.
"""

from __future__ import annotations

import hmac
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiosqlite

from engine import events as ev
from engine.chain import Anchor, load_key, mac, sha256
from engine.store import write_lock
from engine.textsafe import unicode_safe

KINDS = ("intent", "execution", "confirmation", "approval", "denial", "block", "refusal")
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
    output_ref TEXT NOT NULL DEFAULT '',
    output_hash TEXT NOT NULL DEFAULT '',
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

_FIELDS = (
    "seq",
    "at",
    "session_id",
    "user",
    "kind",
    "tool",
    "args_json",
    "call_hash",
    "decision",
    "rule",
    "detail",
    "output_ref",
    "output_hash",
    "prev_hash",
)


def canonical(obj: Any) -> str:
    """Canonical JSON: sorted keys, no spaces, UTF-8 kept."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def call_hash(tool: str, args: dict[str, Any]) -> str:
    """sha256 of the canonical {tool, args}: what an approval binds to."""
    return sha256(canonical({"tool": tool, "args": args}))


def row_hash(row: dict[str, Any], key: bytes) -> str:
    """The keyed hash of one row (every field but `hash`, including prev_hash)."""
    return mac(key, canonical({k: row[k] for k in _FIELDS}))


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
    output_ref: str
    output_hash: str
    prev_hash: str
    hash: str


class AuditLog:
    """Append and verify audit rows on the store's aiosqlite connection."""

    def __init__(self, db: aiosqlite.Connection, key: bytes, anchor: Anchor | None) -> None:
        self.db = db
        """The shared store connection."""
        self.key = key
        """The chain key (engine.chain)."""
        self.anchor = anchor
        """The head's anchor file; None for an in-memory database."""
        self._ready = False

    @classmethod
    async def open(cls, db: aiosqlite.Connection, *, key: bytes | None = None) -> AuditLog:
        """Create the table and triggers if needed; the anchor file sits beside the database."""
        async with db.execute("SELECT file FROM pragma_database_list WHERE name='main'") as cur:
            row = await cur.fetchone()
        key = key or load_key()
        anchor = Anchor(Path(row[0] + "-audit.anchor"), key) if row and row[0] else None
        log = cls(db, key, anchor)
        await log._ensure()
        return log

    async def _ensure(self) -> None:
        if self._ready:
            return
        async with write_lock(self.db):
            await self.db.executescript(SCHEMA)
            async with self.db.execute("PRAGMA table_info(audit)") as cur:
                have = {r[1] async for r in cur}
            for col in ("output_ref", "output_hash"):
                if col not in have:  # a store from before outputs were chained
                    await self.db.execute(f"ALTER TABLE audit ADD COLUMN {col} TEXT NOT NULL DEFAULT ''")
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
        output_ref: str = "",
        output: str | None = None,
    ) -> AuditRow:
        """Add one row, chained to the last one, and commit it (`output`: the stored text it hashes)."""
        if kind not in KINDS:
            raise ValueError(f"unknown audit kind {kind!r}; one of {', '.join(KINDS)}")
        await self._ensure()
        fields = {
            "session_id": session_id,
            "user": user,
            "kind": kind,
            "tool": tool,
            "args_json": args_json,
            "call_hash": call_hash,
            "decision": decision,
            "rule": rule,
        }
        row: dict[str, Any] = {k: unicode_safe(str(v)) for k, v in fields.items()}
        row["detail"] = unicode_safe(detail[:4000])
        row["output_ref"] = unicode_safe(output_ref)
        row["output_hash"] = sha256(unicode_safe(output)) if output is not None else ""
        async with write_lock(self.db):
            await self.db.commit()  # nothing of this connection may ride in the numbering transaction
            await self.db.execute("BEGIN IMMEDIATE")
            try:
                async with self.db.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1") as cur:
                    last = await cur.fetchone()
                row = {
                    "seq": (last[0] + 1) if last else 1,
                    "at": ev.utcnow().isoformat(),
                    **row,
                    "prev_hash": last[1] if last else GENESIS,
                }
                row["hash"] = row_hash(row, self.key)
                await self.db.execute(
                    f"INSERT INTO audit({', '.join(row)}) VALUES ({', '.join('?' for _ in row)})", tuple(row.values())
                )
                await self.db.commit()
            except BaseException:
                await self.db.rollback()
                raise
        if self.anchor is not None:
            self.anchor.append(row["seq"], row["hash"])
        return AuditRow(**{k: row[k] for k in (*_FIELDS, "hash")})

    async def rows(
        self, *, session_id: str | None = None, limit: int | None = None, newest: bool = False
    ) -> list[AuditRow]:
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
        """(ok, first bad seq, why): every row's keyed hash and link, the anchored heads, the stored outputs."""
        await self._ensure()
        anchored, problems = self.anchor.heads() if self.anchor is not None else ({}, [])
        prev, expected_seq, n = GENESIS, 1, 0
        async with self.db.execute("SELECT " + ", ".join((*_FIELDS, "hash")) + " FROM audit ORDER BY seq") as cur:
            async for r in cur:
                row = dict(zip((*_FIELDS, "hash"), r))
                n += 1
                why = self._row_problem(row, expected_seq, prev, anchored)
                if why:
                    return False, row["seq"], why
                prev = row["hash"]
                expected_seq += 1
        missing = [s for s in anchored if s >= expected_seq]
        if missing:
            return (
                False,
                expected_seq,
                f"row {expected_seq}: missing (the anchor records rows up to {max(missing)}; the log was truncated)",
            )
        bad = await self._output_problem()
        if bad:
            return False, bad[0], bad[1]
        if problems:
            return False, None, problems[0]
        note = "" if anchored or n == 0 else "; no anchor file"
        return True, None, f"{n} rows, chain intact{note}"

    def _row_problem(self, row: dict[str, Any], expected_seq: int, prev: str, anchored: dict[int, str]) -> str:
        seq = row["seq"]
        if seq != expected_seq:
            return f"row {seq}: expected seq {expected_seq} (a row was removed)"
        if row["prev_hash"] != prev:
            return f"row {seq}: prev_hash does not match row {seq - 1}'s hash"
        if not hmac.compare_digest(row_hash(row, self.key), row["hash"]):
            return f"row {seq}: contents do not match its keyed hash (edited, or written with another key)"
        if seq in anchored and anchored[seq] != row["hash"]:
            return f"row {seq}: differs from the anchored hash (the chain was rewritten from here)"
        return ""

    async def _output_problem(self) -> tuple[int, str] | None:
        sql = "SELECT a.seq, a.output_ref, a.output_hash, b.body FROM audit a LEFT JOIN blobs b ON b.ref = a.output_ref WHERE a.output_ref != '' ORDER BY a.seq"
        try:
            async with self.db.execute(sql) as cur:
                async for seq, ref, want, body in cur:
                    if body is None:
                        return seq, f"row {seq}: its stored output {ref} is gone"
                    if sha256(body) != want:
                        return seq, f"row {seq}: its stored output {ref} was changed"
        except aiosqlite.OperationalError:
            return None  # a bare audit database without the store's blobs table
        return None
