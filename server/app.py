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
POST /hooks/alertmanager, /hooks/generic: pages (a pager role's token), see server.hooks.
The browser face (/web, POST /v1/web/links): see server.web.
POST /slack/events: the Slack face (server.slack), signed by Slack; 404 when it is not configured.

A refused credential is audited, one row each, until a client address has failed `auth_limit`
times in a window of `auth_window_s`; then that address is answered 429 with Retry-After, its
tokens not even looked up, until the window ends, and the window's further refusals become one
summarising audit row (written when the window ends, or when the server stops).
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from collections.abc import Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from engine import events as ev
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
    "no-tool": 404,
}
"""HTTP status of each hub error code."""

AUTH_LIMIT = 20
"""Failed authentications from one client address, in one window, before it is answered 429."""
AUTH_WINDOW_S = 60.0
"""The window of AUTH_LIMIT."""
MAX_ADDRESSES = 10_000
"""Client addresses tracked at once; beyond, new ones share one window (a flood from many addresses)."""


class _Window:
    """One client address's failed authentications in the current window."""

    __slots__ = ("failures", "limited", "start")

    def __init__(self, start: float) -> None:
        self.start = start
        self.failures = 0
        """Refused credentials (each audited)."""
        self.limited = 0
        """Requests answered 429 since (audited together)."""


class AuthLimiter:
    """Failed authentications per client address, in fixed windows (see the module's doc)."""

    def __init__(
        self, limit: int = AUTH_LIMIT, window_s: float = AUTH_WINDOW_S, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.limit = limit
        self.window_s = window_s
        self.clock = clock
        self.windows: dict[str, _Window] = {}
        """Each address's current window."""
        self.over: list[tuple[str, _Window]] = []
        """Windows that ended having answered 429, their summary not yet written."""

    def _current(self, addr: str, now: float) -> _Window | None:
        """`addr`'s window, None when it has none open (an ended one is put aside)."""
        key = addr if addr in self.windows or len(self.windows) < MAX_ADDRESSES else "(many addresses)"
        w = self.windows.get(key)
        if w is not None and now >= w.start + self.window_s:
            del self.windows[key]
            if w.limited:
                self.over.append((key, w))
            return None
        return w

    def retry_after(self, addr: str) -> float | None:
        """Seconds until `addr` may try again (and the request is counted), or None: let it through."""
        now = self.clock()
        w = self._current(addr, now)
        if w is None or w.failures < self.limit:
            return None
        w.limited += 1
        return w.start + self.window_s - now

    def failed(self, addr: str) -> float | None:
        """A refused credential from `addr`: None when it is within the limit (the caller audits it
        and answers 401), else the seconds to wait (requests that raced past `retry_after` together)."""
        now = self.clock()
        w = self._current(addr, now)
        if w is None:
            key = addr if len(self.windows) < MAX_ADDRESSES else "(many addresses)"
            w = self.windows.setdefault(key, _Window(now))
        if w.failures >= self.limit:
            w.limited += 1
            return w.start + self.window_s - now
        w.failures += 1
        return None

    def ended(self, *, all_of_them: bool = False) -> list[tuple[str, _Window]]:
        """Windows that are over (every one, when the server stops) and answered 429: to be summarised."""
        now = self.clock()
        for addr in list(self.windows):
            w = self.windows[addr]
            if all_of_them or now >= w.start + self.window_s:
                del self.windows[addr]
                if w.limited:
                    self.over.append((addr, w))
        out, self.over = self.over, []
        return out


def bearer(conn: HTTPConnection) -> str:
    """The token of an `Authorization: Bearer TOKEN` header ('' when none)."""
    scheme, _, token = conn.headers.get("authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


class Server:
    """The routes over one hub; every refused credential is a row of the audit log."""

    def __init__(self, hub: Hub, *, auth_limit: int = AUTH_LIMIT, auth_window_s: float = AUTH_WINDOW_S) -> None:
        self.hub = hub
        self.limiter = AuthLimiter(auth_limit, auth_window_s)
        """Failed authentications per client address."""
        self._sweeper: asyncio.Task[None] | None = None

    async def identify(self, conn: HTTPConnection) -> Identity | JSONResponse:
        """The caller's identity, or the answer that refuses it: 401 (and an audit row saying who
        was refused, from where), or 429 for an address that failed too often in this window."""
        addr = conn.client.host if conn.client else "?"
        wait = self.limiter.retry_after(addr)
        if wait is not None:
            return _too_many(wait)
        token = bearer(conn)
        who = await self.hub.users.authenticate(token)
        if who is None:
            wait = self.limiter.failed(addr)
            if wait is not None:
                return _too_many(wait)
            await self._refused(conn, "no token" if not token else "unknown token")
            return JSONResponse(
                {"error": "unauthorized", "message": "a valid token is required (Authorization: Bearer TOKEN)"},
                status_code=401,
            )
        return who

    async def _refused(self, conn: HTTPConnection, why: str) -> None:
        client = f"{conn.client.host}:{conn.client.port}" if conn.client else "?"
        try:
            await (await self.hub.audit()).append(
                session_id="", user="(unauthenticated)", kind="refusal", tool="server:auth",
                args_json=json.dumps({"path": conn.url.path, "client": client}), call_hash="",
                decision="refused", rule="server:auth", detail=f"request refused: {why}",
            )  # fmt: skip
        except Exception:
            log.exception("could not audit a refused request")

    async def summarise(self, *, all_of_them: bool = False) -> None:
        """One audit row for each window that answered 429 and is over."""
        for addr, w in self.limiter.ended(all_of_them=all_of_them):
            detail = (
                f"{w.limited} more requests from {addr} answered 429 without being authenticated: "
                f"{w.failures} failed authentications within {self.limiter.window_s:g} s"
            )
            try:
                await (await self.hub.audit()).append(
                    session_id="", user="(unauthenticated)", kind="refusal", tool="server:auth",
                    args_json=json.dumps({"client": addr, "refused": w.limited, "failures": w.failures}),
                    call_hash="", decision="refused", rule="server:auth-rate", detail=detail,
                )  # fmt: skip
            except Exception:
                log.exception("could not audit a rate-limited address")

    async def _sweep(self) -> None:
        """Write the summaries of windows as they end."""
        while True:
            await asyncio.sleep(max(0.2, min(self.limiter.window_s / 4, 5.0)))
            await self.summarise()

    # -- REST -----------------------------------------------------------------------------------
    def authed(
        self, handler: Callable[[Request, Identity], Awaitable[Response]]
    ) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            who = await self.identify(request)
            if isinstance(who, Response):
                return who
            try:
                return await handler(request, who)
            except HubError as exc:
                return JSONResponse({"error": exc.code, "message": exc.message}, status_code=STATUS.get(exc.code, 400))

        return endpoint

    async def healthz(self, request: Request) -> Response:
        return JSONResponse({"ok": True})

    async def readyz(self, request: Request) -> Response:
        try:
            await self.hub.store.backend.fetchone("SELECT 1")
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
        session = request.query_params.get("session") or None
        if session:
            session = await self.hub.resolve(session)
        rows = await (await self.hub.audit()).rows(
            session_id=session, limit=_int(request.query_params.get("limit"), 100), newest=True
        )
        return JSONResponse({"rows": [r.__dict__ for r in rows]})

    # -- the WebSocket ----------------------------------------------------------------------------
    async def attach(self, ws: WebSocket) -> None:
        who = await self.identify(ws)
        if isinstance(who, Response):
            await _deny(ws, who)
            return
        try:
            live = await self.hub.get(ws.path_params["sid"])
        except HubError as exc:
            await _deny(ws, _refusal(exc))
            return
        await ws.accept()
        history, face = live.attach(who)
        try:
            await ws.send_text(json.dumps(proto.hello(live.id, who, len(history))))
            for e in history:
                if face.fresh(e):
                    await ws.send_text(ev.to_json(e))
                    if isinstance(e, ev.ApprovalRequested) and e.request_id in live.routes:
                        await ws.send_text(json.dumps(live.route(e.request_id, who)))
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
                elif kind == "apply":  # the inspector's Apply: server/apply.py
                    from server.apply import apply

                    turn = await apply(self.hub, live, who, frame)
                    face.offer({"frame": "accepted", "turn": turn, "id": frame.get("id")})
                elif kind == "fix":  # the answer's offered fix, run as the person's own call
                    turn = await self.hub.run_fix(live, who, frame.get("seq"))
                    face.offer({"frame": "accepted", "turn": turn, "id": frame.get("id")})
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
        from server import hooks  # pages in: /hooks/alertmanager, /hooks/generic

        routes += hooks.routes(self)

        from server.web import WebFace  # the browser face (/web): the console itself, behind the tokens

        routes += WebFace(self).routes()

        @asynccontextmanager
        async def lifespan(app: Starlette) -> Any:
            await self.hub.start()
            self._sweeper = asyncio.create_task(self._sweep(), name="auth-summaries")
            yield
            self._sweeper.cancel()
            await self.summarise(all_of_them=True)
            await self.hub.close()

        return Starlette(routes=routes, lifespan=lifespan, middleware=hooks.middleware(self))


def create_app(hub: Hub, **options: Any) -> Starlette:
    """The ASGI app serving `hub` (`options`: Server's, e.g. auth_limit, auth_window_s)."""
    return Server(hub, **options).app()


def _too_many(wait: float) -> JSONResponse:
    seconds = max(1, math.ceil(wait))
    return JSONResponse(
        {
            "error": "too-many-failures",
            "message": f"too many failed authentications from this address; try again in {seconds} s",
        },
        status_code=429,
        headers={"Retry-After": str(seconds)},
    )


def _refusal(exc: HubError) -> JSONResponse:
    return JSONResponse({"error": "refused", "message": exc.message}, status_code=STATUS.get(exc.code, 400))


async def _deny(ws: WebSocket, response: Response) -> None:
    """Refuse a WebSocket before it opens: the HTTP answer where the server can send one, else a close."""
    try:
        await ws.send_denial_response(response)
    except RuntimeError:
        message = json.loads(bytes(response.body)).get("message", "") if response.body else ""
        await ws.close(code=4000 + response.status_code, reason=str(message)[:120])


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
