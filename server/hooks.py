"""Pages in: the webhooks a pager posts to, and the fence that keeps a pager's token to them.

  POST /hooks/alertmanager   Alertmanager's webhook (v4 JSON), as its `webhook_config` sends it
  POST /hooks/generic        the generic JSON page (server.paging.GenericBody)

Both need `Authorization: Bearer TOKEN` of a user with the `pager` role (Alertmanager's
`http_config.authorization` sends exactly that): no token or an unknown one is 401, a user
without the role 403. A user whose only role is `pager` may call nothing under /v1/ but
`/v1/whoami` (403). A body over MAX_BODY is 413; one that is not UTF-8, not JSON, holds a lone
surrogate or does not have the documented shape is 400 with the field named. Every page and what
it did (opened, deduplicated, rate-limited, resolved, ...) and every refusal is an audit row;
what a page starts is server.paging's.
"""

from __future__ import annotations

import hashlib
import json
import logging
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ValidationError
from starlette.middleware import Middleware
from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from engine.policy.audit import AuditLog
from server.hub import HubError
from server.identity import Identity
from server.pages import Page
from server.paging import AlertmanagerBody, GenericBody, Outcome, PageDesk, from_alertmanager, from_generic

if TYPE_CHECKING:
    from server.app import Server

log = logging.getLogger("lantern.server")

PAGER = "pager"
"""The role that may post pages (`lantern serve users add alertmanager --role pager`)."""
MAX_BODY = 1 << 20
"""Bytes of one notification (Alertmanager's `max_alerts` keeps a big group under it)."""
PAGER_MAY = frozenset({"/v1/whoami"})
"""What a pager-only token may call under /v1/ (to check that it works)."""


class BodyError(Exception):
    """A body the hook refuses: its HTTP status, a code and one line naming what is wrong."""

    def __init__(self, status: int, code: str, message: str, where: str = "") -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.where = status, code, message, where


def is_pager(who: Identity) -> bool:
    return PAGER in who.roles


def pager_only(who: Identity) -> bool:
    """A user that holds the pager role and no other: it posts pages and does nothing else."""
    return bool(who.roles) and set(who.roles) <= {PAGER}


class Hooks:
    """The two webhooks over one server's hub, and their audit rows."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.desk = PageDesk(server.hub)
        """Opens, finds and resolves each group's investigation."""
        self._audit: AuditLog | None = None

    async def audit(self, **row: Any) -> None:
        """One audit row (`kind` page or refusal); a failure to write it is logged, never raised."""
        if self._audit is None:
            self._audit = await AuditLog.open(self.server.hub.store)
        try:
            await self._audit.append(call_hash=row.pop("call_hash", ""), **row)
        except Exception:
            log.exception("could not audit a page")

    async def refuse(
        self, conn: HTTPConnection, user: str, rule: str, why: str, status: int, code: str, **extra: Any
    ) -> Response:
        """Refuse a request: an audit row (who, from where, why; `extra` too) and the sender's answer."""
        field = extra.get("field")
        await self.audit(
            session_id="", user=user, kind="refusal", tool=f"server:{conn.url.path.strip('/')}",
            args_json=json.dumps({"path": conn.url.path, "client": _client(conn), "code": code, **extra}),
            decision="refused", rule=rule, detail=f"request refused ({status}): {why}",
        )  # fmt: skip
        body = {"error": code, "message": why, **({"field": field} if field else {})}
        return JSONResponse(body, status_code=status)

    async def alertmanager(self, request: Request) -> Response:
        return await self._page(request, AlertmanagerBody, from_alertmanager)

    async def generic(self, request: Request) -> Response:
        return await self._page(request, GenericBody, from_generic)

    async def _page(self, request: Request, shape: type[BaseModel], to_page: Any) -> Response:
        who = await self.server.identify(request)  # audits a missing or unknown token (401), or 429
        if isinstance(who, Response):
            return who
        if not is_pager(who):
            why = f"{who.name} has no {PAGER} role: only a pager's token may post pages"
            return await self.refuse(request, who.name, "server:hooks", why, 403, "forbidden")
        raw = b""
        try:
            raw = await read_body(request)
            page = to_page(parse(raw, shape))
        except BodyError as exc:
            extra = {"field": exc.where} if exc.where else {}
            return await self.refuse(
                request, who.name, "server:hooks", exc.message, exc.status, exc.code, bytes=len(raw),
                sha256=hashlib.sha256(raw).hexdigest(), **extra,
            )  # fmt: skip
        try:
            outcome = await self.desk.receive(page, who)
        except Exception as exc:  # noqa: BLE001 - the sender retries; the audit says what failed
            return await self._failed(request, who, page, raw, exc)
        await self._audit_page(request, who, page, raw, outcome)
        return JSONResponse({**outcome.json(), "group_key": page.group_key}, status_code=outcome.http_status)

    async def _failed(self, request: Request, who: Identity, page: Page, raw: bytes, exc: Exception) -> Response:
        if not isinstance(exc, HubError):
            log.exception("page %s failed", page.group_key)
        why = exc.message if isinstance(exc, HubError) else f"{type(exc).__name__}: {exc}"
        await self._audit_page(request, who, page, raw, Outcome("failed", "", f"the page could not be handled: {why}"))
        return JSONResponse(
            {"error": "failed", "message": f"the page could not be handled (send it again): {why}"}, status_code=503
        )

    async def _audit_page(self, request: Request, who: Identity, page: Page, raw: bytes, outcome: Outcome) -> None:
        args = {
            "source": page.source,
            "group_key": page.group_key,
            "status": page.status,
            "title": page.title,
            "alerts": len(page.alerts),
            "labels": page.labels,
            "client": _client(request),
        }
        if outcome.outcome == "opened":
            args |= {"playbook": outcome.playbook, "reads": [r["name"] for r in outcome.reads]}
        await self.audit(
            session_id=outcome.session_id, user=who.name, kind="page", tool=f"server:hooks/{page.source}",
            args_json=json.dumps(args)[:8_000], call_hash=hashlib.sha256(raw).hexdigest(),
            decision=outcome.outcome, rule="server:pages", detail=f"page {page.status}: {page.title}: {outcome.message}",
        )  # fmt: skip


async def read_body(request: Request) -> bytes:
    """The request's body, refused (413) as soon as it passes MAX_BODY."""
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > MAX_BODY:
        raise BodyError(413, "too-large", f"the body is {int(length):,} bytes; at most {MAX_BODY:,}")
    chunks, n = [], 0
    async for chunk in request.stream():
        n += len(chunk)
        if n > MAX_BODY:
            raise BodyError(413, "too-large", f"the body is over {MAX_BODY:,} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def parse(raw: bytes, shape: type[BaseModel]) -> Any:
    """The body as `shape`: UTF-8, JSON, valid Unicode, the documented fields (400 naming the first wrong one)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BodyError(
            400, "bad-unicode", f"the body is not UTF-8: byte 0x{raw[exc.start]:02x} at offset {exc.start}"
        ) from None
    if not text.strip():
        raise BodyError(400, "empty", "the body is empty; send the notification's JSON")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BodyError(
            400, "bad-json", f"the body is not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    except RecursionError:
        raise BodyError(400, "bad-json", "the body is not JSON this server reads: nested too deeply") from None
    where = _surrogate(data)
    if where is not None:
        raise BodyError(
            400, "bad-unicode", f"{where or '(body)'}: a lone surrogate (\\ud800-\\udfff) is not a character", where
        )
    try:
        return shape.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise BodyError(400, "bad-body", f"{where or '(body)'}: {first['msg']}{more}", where or "(body)") from None


def _surrogate(value: Any, where: str = "") -> str | None:
    """Where in the parsed body a string (or key) holds a lone surrogate, else None."""
    if isinstance(value, str):
        return where if any(0xD800 <= ord(c) <= 0xDFFF for c in value) else None
    items: list[tuple[Any, Any]] = []
    if isinstance(value, dict):
        items = list(value.items())
    elif isinstance(value, list):
        items = list(enumerate(value))
    for k, v in items:
        path = f"{where}.{k}" if where else str(k)
        if isinstance(k, str) and _surrogate(k, path) is not None:
            return path
        found = _surrogate(v, path)
        if found is not None:
            return found
    return None


def _client(conn: HTTPConnection) -> str:
    return f"{conn.client.host}:{conn.client.port}" if conn.client else "?"


class PagerFence:
    """ASGI middleware: a token whose user holds only the pager role is refused (403, audited) on
    everything under /v1/ but PAGER_MAY; the hooks themselves check their own role."""

    def __init__(self, app: ASGIApp, hooks: Hooks) -> None:
        self.app = app
        self.hooks = hooks

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] in ("http", "websocket") and path.startswith("/v1/") and path not in PAGER_MAY:
            from server.app import bearer

            conn = HTTPConnection(scope)
            who = await self.hooks.server.hub.users.authenticate(bearer(conn))
            if who is not None and pager_only(who):
                why = f"{who.name} holds only the {PAGER} role: it may post pages (/hooks/...), nothing else"
                response = await self.hooks.refuse(conn, who.name, "server:pager", why, 403, "forbidden")
                await _send_refusal(scope, receive, send, response)
                return
        await self.app(scope, receive, send)


async def _send_refusal(scope: Scope, receive: Receive, send: Send, response: Response) -> None:
    if scope["type"] == "http":
        await response(scope, receive, send)
        return
    from starlette.websockets import WebSocket

    from server.app import _deny

    await _deny(WebSocket(scope, receive, send), response)


def routes(server: Server) -> list[Route]:
    """The webhooks' routes; `server.hooks` keeps their state (the page desk)."""
    hooks = Hooks(server)
    server.hooks = hooks  # type: ignore[attr-defined]
    return [
        Route("/hooks/alertmanager", hooks.alertmanager, methods=["POST"]),
        Route("/hooks/generic", hooks.generic, methods=["POST"]),
    ]


def middleware(server: Server) -> list[Middleware]:
    """The pager fence (call after `routes`)."""
    return [Middleware(PagerFence, hooks=server.hooks)]  # type: ignore[attr-defined]
