"""The audit log: an append-only table in the store's database, each row chained to the previous.

Each row's hash is an HMAC (engine.chain: a key outside the database, mode 0600) over the
canonical JSON of the row and the previous row's hash, and the chain's head is appended to an
anchor file beside the database after every row. Triggers refuse UPDATE and DELETE; someone who
drops them and edits a row cannot re-chain without the key, and deleting the newest rows leaves
the anchor naming a row that is gone: `verify` reports the first bad row either way. An execution
row carries the hash of the output it stored, so the stored outputs are chained too.

A write or dangerous call gets an `intent` row before the executor runs and its `execution` row
after: a crash in between still leaves a record that it was about to run. Rows are numbered
inside one transaction holding the `audit` lock (engine.storage: SQLite's BEGIN IMMEDIATE, an
advisory lock in PostgreSQL), so several processes on one store never collide. In PostgreSQL
the anchor is a file per database under $LANTERN_HOME/anchors on each machine that writes; a
trigger refuses UPDATE, DELETE and TRUNCATE.
"""

from __future__ import annotations

import hmac
import json
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any

import aiosqlite

from engine import events as ev
from engine.chain import Anchor, load_key, mac, sha256
from engine.storage import Backend
from engine.storage.sqlite import SqliteBackend
from engine.textsafe import unicode_safe

KINDS = ("intent", "execution", "confirmation", "approval", "denial", "block", "refusal", "page")
"""What a row records (`page`: a pager's notification and what it started, server/hooks.py)."""

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
"""The audit table in SQLite."""

PG_SCHEMA = """
CREATE TABLE IF NOT EXISTS audit (
    seq BIGINT PRIMARY KEY,
    at TEXT NOT NULL,
    session_id TEXT NOT NULL,
    "user" TEXT NOT NULL,
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
DO $$ BEGIN
IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgname = 'audit_no_update' AND tgrelid = 'audit'::regclass) THEN
    CREATE OR REPLACE FUNCTION lantern_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS
    'BEGIN RAISE EXCEPTION ''audit log is append-only''; END';
    CREATE TRIGGER audit_no_update BEFORE UPDATE OR DELETE ON audit
        FOR EACH ROW EXECUTE FUNCTION lantern_audit_append_only();
    CREATE TRIGGER audit_no_truncate BEFORE TRUNCATE ON audit
        FOR EACH STATEMENT EXECUTE FUNCTION lantern_audit_append_only();
END IF;
END $$;
"""
"""The audit table in PostgreSQL, its append-only triggers created once (by the table's owner)."""

SCHEMAS = {"sqlite": SCHEMA, "postgresql": PG_SCHEMA}
"""DDL per dialect."""

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


_COLUMNS = ", ".join(f'"{c}"' for c in (*_FIELDS, "hash"))
"""Every column, quoted (`user` is a reserved word in PostgreSQL)."""


class AuditLog:
    """Append and verify audit rows in the store's database."""

    def __init__(self, backend: Backend, key: bytes, anchor: Anchor | None) -> None:
        self.backend = backend
        """The store's database (engine.storage)."""
        self.key = key
        """The chain key (engine.chain)."""
        self.anchor = anchor
        """The head's anchor file; None for an in-memory database."""
        self._ready = False

    @classmethod
    async def open(cls, source: Any, *, key: bytes | None = None) -> AuditLog:
        """The audit log of a Store (or of a bare aiosqlite connection); creates the table and
        triggers if needed. The anchor file is the backend's (SQLite: beside the database)."""
        if isinstance(source, aiosqlite.Connection):
            backend: Backend = await SqliteBackend.attach(source)
        else:
            backend = getattr(source, "backend", source)
        key = key or load_key()
        log = cls(backend, key, Anchor(backend.anchor, key) if backend.anchor is not None else None)
        await log._ensure()
        return log

    @property
    def db(self) -> aiosqlite.Connection:
        """The SQLite connection (tests that edit the file directly)."""
        if not isinstance(self.backend, SqliteBackend):
            raise RuntimeError(f"{self.backend.where} is not a SQLite store")
        return self.backend.db

    async def _ensure(self) -> None:
        if self._ready:
            return
        await self.backend.create(SCHEMAS[self.backend.dialect])
        have = await self.backend.columns("audit")
        for col in ("output_ref", "output_hash"):
            if col not in have:  # a store from before outputs were chained
                await self.backend.execute(f"ALTER TABLE audit ADD COLUMN {col} TEXT NOT NULL DEFAULT ''")
        if self.anchor is not None:
            self.anchor.path.parent.mkdir(parents=True, exist_ok=True)
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
        t = self.backend.text
        row: dict[str, Any] = {k: t(unicode_safe(str(v))) for k, v in fields.items()}
        row["detail"] = t(unicode_safe(detail[:4000]))
        row["output_ref"] = t(unicode_safe(output_ref))
        row["output_hash"] = sha256(t(unicode_safe(output))) if output is not None else ""
        async with self.backend.transaction("audit") as tx:
            last = await tx.fetchone("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1")
            row = {
                "seq": (last[0] + 1) if last else 1,
                "at": ev.utcnow().isoformat(),
                **row,
                "prev_hash": last[1] if last else GENESIS,
            }
            row["hash"] = row_hash(row, self.key)
            await tx.execute(f"INSERT INTO audit({_COLUMNS}) VALUES ({', '.join('?' for _ in row)})", *row.values())
        if self.anchor is not None:
            self.anchor.append(row["seq"], row["hash"])
        return AuditRow(**{k: row[k] for k in (*_FIELDS, "hash")})

    async def rows(
        self, *, session_id: str | None = None, limit: int | None = None, newest: bool = False
    ) -> list[AuditRow]:
        """Rows in order (or the newest `limit`, still returned oldest first)."""
        await self._ensure()
        sql = f"SELECT {_COLUMNS} FROM audit"
        params: list[Any] = []
        if session_id:
            sql += " WHERE session_id=?"
            params.append(session_id)
        sql += " ORDER BY seq DESC" if newest else " ORDER BY seq"
        if limit:
            sql += " LIMIT ?"
            params.append(limit)
        out = [AuditRow(*r) for r in await self.backend.fetch(sql, *params)]
        return list(reversed(out)) if newest else out

    async def verify(self) -> tuple[bool, int | None, str]:
        """(ok, first bad seq, why): every row's keyed hash and link, the anchored heads, the stored outputs."""
        await self._ensure()
        anchored, problems = self.anchor.heads() if self.anchor is not None else ({}, [])
        prev, expected_seq, n = GENESIS, 1, 0
        async with aclosing(self.backend.stream(f"SELECT {_COLUMNS} FROM audit ORDER BY seq")) as cur:
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
        if not await self.backend.has_table("blobs"):
            return None  # a bare audit database without the store's blobs table
        sql = "SELECT a.seq, a.output_ref, a.output_hash, b.body FROM audit a LEFT JOIN blobs b ON b.ref = a.output_ref WHERE a.output_ref != '' ORDER BY a.seq"
        async with aclosing(self.backend.stream(sql)) as cur:
            async for seq, ref, want, body in cur:
                if body is None:
                    return seq, f"row {seq}: its stored output {ref} is gone"
                if sha256(body) != want:
                    return seq, f"row {seq}: its stored output {ref} was changed"
        return None
