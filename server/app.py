"""The HTTP and WebSocket face of the hub (Starlette).

REST (JSON; every route but the probes needs `Authorization: Bearer TOKEN`):
  GET  /healthz                       the process answers
  GET  /readyz                        the store is open and sessions can start (503 otherwise)
  GET  /v1/whoami                     the identity the token stands for
  GET  /v1/sessions[?limit=N]         sessions, newest first (live, running, faces attached)
  POST /v1/sessions                   a new session, held open by the server
  GET  /v1/sessions/{id}              one session's row
  GET  /v1/sessions/{id}/events[?after=SEQ]   its events, one JSON line each (NDJSON)
  GET  /v1/audit[?session=ID&limit=N] audit rows, newest first
WebSocket /v1/sessions/{id}/attach: see server.protocol.
POST /slack/events: the Slack face (server.slack), signed by Slack; 404 when it is not configured.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from engine import events as ev
from engine.policy.audit import AuditLog
from server import protocol as proto
from server.hub import Hub, HubError, LiveSession, Subscriber
from server.identity import Identity
from server.slack import PATH as SLACK_PATH
from server.slack import endpoint as slack_endpoint

log = logging.getLogger("lantern.server")

STATUS = {
    "not-found": 404,
    "busy": 409,
    "closing": 503,
    "empty": 400,
    "too-long": 413,
    "no-request": 409,
    "bad-frame": 400,
}
"""HTTP status of each hub error code."""


def bearer(conn: HTTPConnection) -> str:
    """The token of an `Authorization: Bearer TOKEN` header ('' when none)."""
    scheme, _, token = conn.headers.get("authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


class Server:
    """The routes over one hub; every refused credential is a row of the audit log."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.audit: AuditLog | None = None

    async def identify(self, conn: HTTPConnection) -> Identity | None:
        """The caller's identity, or None (and an audit row saying who was refused, from where)."""
        token = bearer(conn)
        who = await self.hub.users.authenticate(token)
        if who is None:
            await self._refused(conn, "no token" if not token else "unknown token")
        return who

    async def _refused(self, conn: HTTPConnection, why: str) -> None:
        if self.audit is None:
            self.audit = await AuditLog.open(self.hub.store.db)
        client = f"{conn.client.host}:{conn.client.port}" if conn.client else "?"
        try:
            await self.audit.append(
                session_id="", user="(unauthenticated)", kind="refusal", tool="server:auth",
                args_json=json.dumps({"path": conn.url.path, "client": client}), call_hash="",
                decision="refused", rule="server:auth", detail=f"request refused: {why}",
            )  # fmt: skip
        except Exception:
            log.exception("could not audit a refused request")

    # -- REST -----------------------------------------------------------------------------------
    def authed(
        self, handler: Callable[[Request, Identity], Awaitable[Response]]
    ) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            who = await self.identify(request)
            if who is None:
                return JSONResponse(
                    {"error": "unauthorized", "message": "a valid token is required (Authorization: Bearer TOKEN)"},
                    status_code=401,
                )
            try:
                return await handler(request, who)
            except HubError as exc:
                return JSONResponse({"error": exc.code, "message": exc.message}, status_code=STATUS.get(exc.code, 400))

        return endpoint

    async def healthz(self, request: Request) -> Response:
        return JSONResponse({"ok": True})

    async def readyz(self, request: Request) -> Response:
        try:
            async with self.hub.store.db.execute("SELECT 1") as cur:
                await cur.fetchone()
        except Exception as exc:  # noqa: BLE001 - not ready, say why
            return JSONResponse({"ready": False, "why": f"store: {type(exc).__name__}"}, status_code=503)
        if self.hub.closing:
            return JSONResponse({"ready": False, "why": "shutting down"}, status_code=503)
        return JSONResponse({"ready": True, "live": len(self.hub.live), "protocol": ev.PROTOCOL_VERSION})

    async def whoami(self, request: Request, who: Identity) -> Response:
        return JSONResponse({"user": who.name, "roles": list(who.roles)})

    async def list_sessions(self, request: Request, who: Identity) -> Response:
        limit = _int(request.query_params.get("limit"), 50)
        return JSONResponse({"sessions": await self.hub.sessions(limit=limit)})

    async def create_session(self, request: Request, who: Identity) -> Response:
        live = await self.hub.create()
        return JSONResponse({"id": live.id}, status_code=201)

    async def one_session(self, request: Request, who: Identity) -> Response:
        sid = await self.hub.resolve(request.path_params["sid"])
        row = next((r for r in await self.hub.sessions(limit=10_000) if r["id"] == sid), None)
        return JSONResponse(row or {"id": sid})

    async def session_events(self, request: Request, who: Identity) -> Response:
        sid = await self.hub.resolve(request.path_params["sid"])
        after = _int(request.query_params.get("after"), 0)
        lines = [ev.to_json(e) for e in await self.hub.store.events(sid) if e.seq > after]
        return Response("".join(line + "\n" for line in lines), media_type="application/x-ndjson")

    async def audit_rows(self, request: Request, who: Identity) -> Response:
        if self.audit is None:
            self.audit = await AuditLog.open(self.hub.store.db)
        session = request.query_params.get("session") or None
        if session:
            session = await self.hub.resolve(session)
        rows = await self.audit.rows(
            session_id=session, limit=_int(request.query_params.get("limit"), 100), newest=True
        )
        return JSONResponse({"rows": [r.__dict__ for r in rows]})

    # -- the WebSocket ----------------------------------------------------------------------------
    async def attach(self, ws: WebSocket) -> None:
        who = await self.identify(ws)
        if who is None:
            await _deny(ws, 401, "a valid token is required (Authorization: Bearer TOKEN)")
            return
        try:
            live = await self.hub.get(ws.path_params["sid"])
        except HubError as exc:
            await _deny(ws, STATUS.get(exc.code, 400), exc.message)
            return
        await ws.accept()
        history, face = live.attach(who)
        try:
            await ws.send_text(json.dumps(proto.hello(live.id, who, len(history))))
            for e in history:
                if face.fresh(e):
                    await ws.send_text(ev.to_json(e))
            await ws.send_text(json.dumps({"frame": "live", "seq": face.last_seq, "running": live.running}))
            await _both(self._send(ws, face), self._receive(ws, live, who, face))
        except WebSocketDisconnect:
            pass
        finally:
            live.detach(face)

    async def _send(self, ws: WebSocket, face: Subscriber) -> None:
        while True:
            item = await face.queue.get()
            if item is None:
                await ws.close(code=1013, reason="this face fell too far behind; attach again to catch up")
                return
            if isinstance(item, dict):
                await ws.send_text(json.dumps(item))
            elif face.fresh(item):
                await ws.send_text(ev.to_json(item))

    async def _receive(self, ws: WebSocket, live: LiveSession, who: Identity, face: Subscriber) -> None:
        while True:
            raw = await ws.receive_text()
            try:
                frame = proto.parse_client(raw)
                kind = frame["frame"]
                if kind == "message":
                    turn = await self.hub.send(live, who, str(frame.get("text") or ""), face)
                    face.offer({"frame": "accepted", "turn": turn, "id": frame.get("id")})
                elif kind == "cancel":
                    face.offer({"frame": "cancelling" if self.hub.cancel(live) else "idle", "id": frame.get("id")})
                elif kind == "approval":
                    await self.hub.answer(live, who, frame, face)
                elif kind == "ping":
                    face.offer({"frame": "pong", "id": frame.get("id")})
            except HubError as exc:
                face.offer({"frame": "error", "code": exc.code, "message": exc.message, "id": _id(raw)})

    def app(self) -> Starlette:
        routes = [
            Route("/healthz", self.healthz),
            Route("/readyz", self.readyz),
            Route("/v1/whoami", self.authed(self.whoami)),
            Route("/v1/sessions", self.authed(self.list_sessions), methods=["GET"]),
            Route("/v1/sessions", self.authed(self.create_session), methods=["POST"]),
            Route("/v1/sessions/{sid}", self.authed(self.one_session)),
            Route("/v1/sessions/{sid}/events", self.authed(self.session_events)),
            Route("/v1/audit", self.authed(self.audit_rows)),
            WebSocketRoute("/v1/sessions/{sid}/attach", self.attach),
            Route(SLACK_PATH, slack_endpoint(self.hub), methods=["POST"]),  # the Slack face, when configured
        ]

        @asynccontextmanager
        async def lifespan(app: Starlette) -> Any:
            yield
            await self.hub.close()

        return Starlette(routes=routes, lifespan=lifespan)


def create_app(hub: Hub) -> Starlette:
    """The ASGI app serving `hub`."""
    return Server(hub).app()


async def _deny(ws: WebSocket, status: int, message: str) -> None:
    """Refuse a WebSocket before it opens: an HTTP answer where the server can send one, else a close."""
    try:
        await ws.send_denial_response(JSONResponse({"error": "refused", "message": message}, status_code=status))
    except RuntimeError:
        await ws.close(code=4000 + status, reason=message[:120])


async def _both(*coros: Awaitable[None]) -> None:
    """Run until the first finishes (the face left, or must go), then stop the other."""
    tasks = [asyncio.ensure_future(c) for c in coros]
    try:
        done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in tasks:
            t.cancel()
    for t in done:
        exc = t.exception()
        if exc is not None and not isinstance(exc, WebSocketDisconnect):
            raise exc


def _int(value: str | None, default: int) -> int:
    try:
        return max(0, int(value)) if value is not None else default
    except ValueError:
        return default


def _id(raw: str) -> Any:
    try:
        data = json.loads(raw)
        return data.get("id") if isinstance(data, dict) else None
    except ValueError:
        return None
