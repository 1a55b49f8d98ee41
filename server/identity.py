"""Who is asking: users of the server, their roles, tokens kept only as hashes, and their accounts
elsewhere (a Slack user id, for the Slack face).

`lantern serve users add NAME --role ROLE` makes a token, prints it once and stores its SHA-256;
a request's `Authorization: Bearer TOKEN` is hashed and looked up. The table lives in the
server's store (SQLite or PostgreSQL), beside the audit log that records every refused request.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
from dataclasses import dataclass, field
from typing import Any

import aiosqlite

from engine import events as ev
from engine.storage import Backend

SCHEMA = """
CREATE TABLE IF NOT EXISTS server_users (
    name TEXT PRIMARY KEY,
    roles TEXT NOT NULL DEFAULT '[]',
    token_hash TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL
);
"""
LINKS_SCHEMA = """
CREATE TABLE IF NOT EXISTS server_user_links (
    kind TEXT NOT NULL,
    external_id TEXT NOT NULL,
    name TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (kind, external_id)
);
"""
"""A user's accounts elsewhere (kind "slack": a Slack user id), so a chat face knows who clicked."""
TOKEN_PREFIX = "lt_"
"""Marks a Lantern server token (and lets the scrubber's rules see it as a secret)."""
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
"""A user or role name: what a policy file can spell (no `role:` prefix, no spaces)."""


@dataclass(frozen=True)
class Identity:
    """An authenticated user: the name the dispatcher sees and the roles the policy expands."""

    name: str
    """The user's name (policy `users`, approvers, the audit's user column)."""
    roles: tuple[str, ...] = field(default_factory=tuple)
    """Roles (`role:NAME` in a policy's approvers and users)."""


def token_hash(token: str) -> str:
    """The stored form of a token (SHA-256, hex); tokens are 256 random bits, so no salt or stretch is needed."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


class UserError(ValueError):
    """A user command that cannot be done (bad name, unknown user), in one line."""


class Users:
    """The server's users, in its store's database (SQLite or PostgreSQL, engine.storage)."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        """The store's database."""

    @classmethod
    async def open(cls, source: Any) -> Users:
        """The users table of a Store (or of a bare aiosqlite connection), created when missing."""
        if isinstance(source, aiosqlite.Connection):
            from engine.storage.sqlite import SqliteBackend

            backend: Backend = await SqliteBackend.attach(source)
        else:
            backend = getattr(source, "backend", source)
        await backend.create(SCHEMA)
        await backend.create(LINKS_SCHEMA)
        return cls(backend)

    async def add(self, name: str, roles: list[str]) -> str:
        """Create `name` (or give it a new token and these roles); returns the token, which is not kept."""
        for n in (name, *roles):
            if not NAME.match(n):
                raise UserError(f"{n!r} is not a valid name (letters, digits, . _ @ -; at most 64)")
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        await self.backend.execute(
            "INSERT INTO server_users(name, roles, token_hash, created_at) VALUES (?,?,?,?) "
            "ON CONFLICT(name) DO UPDATE SET roles=excluded.roles, token_hash=excluded.token_hash",
            name,
            json.dumps(sorted(set(roles))),
            token_hash(token),
            ev.utcnow().isoformat(),
        )
        return token

    async def remove(self, name: str) -> None:
        """Remove a user; their token stops working at once."""
        async with self.backend.transaction("users") as tx:
            gone = await tx.fetchone("DELETE FROM server_users WHERE name=? RETURNING name", name)
            if gone is not None:
                await tx.execute("DELETE FROM server_user_links WHERE name=?", name)
        if gone is None:
            raise UserError(f"no user {name!r}")

    async def all(self) -> list[Identity]:
        """Every user, by name."""
        rows = await self.backend.fetch("SELECT name, roles FROM server_users ORDER BY name")
        return [Identity(n, tuple(json.loads(r))) for n, r in rows]

    async def get(self, name: str) -> Identity | None:
        """The user `name`, or None."""
        row = await self.backend.fetchone("SELECT name, roles FROM server_users WHERE name=?", name)
        return Identity(row[0], tuple(json.loads(row[1]))) if row else None

    async def link(self, name: str, kind: str, external_id: str) -> None:
        """Say that `external_id` (a Slack user id for kind "slack") is the user `name`."""
        if await self.get(name) is None:
            raise UserError(f"no user {name!r}: add it first with `lantern serve users add {name} --role ROLE`")
        await self.backend.execute(
            "INSERT INTO server_user_links(kind, external_id, name, created_at) VALUES (?,?,?,?) "
            "ON CONFLICT(kind, external_id) DO UPDATE SET name=excluded.name",
            kind,
            external_id,
            name,
            ev.utcnow().isoformat(),
        )

    async def unlink(self, kind: str, external_id: str) -> None:
        """Forget a link; the account is nobody again."""
        async with self.backend.transaction("users") as tx:
            gone = await tx.fetchone(
                "DELETE FROM server_user_links WHERE kind=? AND external_id=? RETURNING name", kind, external_id
            )
        if gone is None:
            raise UserError(f"no {kind} account {external_id!r} is linked")

    async def links(self, kind: str) -> dict[str, str]:
        """external id → user name, for one kind."""
        rows = await self.backend.fetch("SELECT external_id, name FROM server_user_links WHERE kind=?", kind)
        return {r[0]: r[1] for r in rows}

    async def linked(self, kind: str, external_id: str) -> Identity | None:
        """The user an account elsewhere is linked to (None when it is not, or the user is gone)."""
        row = await self.backend.fetchone(
            "SELECT name FROM server_user_links WHERE kind=? AND external_id=?", kind, external_id
        )
        return await self.get(row[0]) if row else None

    async def authenticate(self, token: str) -> Identity | None:
        """The user whose token this is, or None."""
        if not token:
            return None
        h = token_hash(token)
        row = await self.backend.fetchone("SELECT name, roles, token_hash FROM server_users WHERE token_hash=?", h)
        if row is None or not hmac.compare_digest(row[2], h):
            return None
        return Identity(row[0], tuple(json.loads(row[1])))

    async def role_members(self) -> dict[str, list[str]]:
        """Role → the users who hold it (merged into the policy's roles for every session)."""
        out: dict[str, list[str]] = {}
        for u in await self.all():
            for r in u.roles:
                out.setdefault(r, []).append(u.name)
        return out
