"""The browser face: the console itself in a browser (textual-serve), behind the server's tokens.

    lantern web --server URL [--session ID]
        POST /v1/web/links (Bearer)  ─▶ a one-time link /web/?code=…  (valid LINK_TTL_S, used once)
    GET  /web/?code=…  ─▶ a sign-in held in memory, named by an HttpOnly SameSite=Lax cookie; a
                          redirect to /web/ takes the code out of the address bar and the history
    GET  /web/          ─▶ not signed in: a form that POSTs a token to /web/login (in the body, never in a URL)
                        ─▶ signed in: textual-serve's page, whose terminal opens the WebSocket /web/ws/[SESSION]
    WS   /web/ws/…      ─▶ the cookie, a same-origin `Origin` and a token still valid, then one console
                          process per connection: `lantern --server <this server> [--session ID]`, with
                          the signed-in user's token in its environment (never on a command line)

The console in the browser is the terminal one, attached as that user: its approvals, refusals and
audit rows are that user's. textual-serve has no authentication of its own; only its page template,
its static files and its `AppService` (one process per connection) are used here.
"""

from __future__ import annotations

import contextlib
import html
import json
import os
import re
import secrets
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, quote

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.websockets import WebSocket, WebSocketDisconnect
from textual_serve.app_service import AppService

from server.identity import Identity

if TYPE_CHECKING:
    from server.app import Server

COOKIE = "lantern_web"
"""The sign-in cookie (a random name for a sign-in this process holds; never the token)."""
LINK_TTL_S = 120.0
"""How long a one-time link works."""
SIGNIN_TTL_S = 12 * 3600.0
"""How long a browser stays signed in (a shift)."""
MAX_CONSOLES = 16
"""Console processes the browser face runs at once (each connection is one)."""
SESSION_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
"""What a session id (or prefix) in a web address may be."""
ROOT = Path(__file__).resolve().parent.parent
"""The directory holding the `console` package, for the console processes' PYTHONPATH."""


@dataclass
class SignIn:
    """A browser's sign-in: who, with which token (kept in this process's memory only), until when."""

    identity: Identity
    token: str
    expires: float
    session: str = ""
    """The session a one-time link named ('' for none)."""


def _textual_serve_dir() -> Path:
    import textual_serve

    return Path(textual_serve.__file__).resolve().parent


class WebFace:
    """The `/web` routes over one server: sign-in, the page, the terminal's WebSocket."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.links: dict[str, SignIn] = {}
        self.signins: dict[str, SignIn] = {}
        self.consoles = 0
        """Console processes running now."""

    def routes(self) -> list[BaseRoute]:
        """The routes to add to the server's app."""
        return [
            Route("/v1/web/links", self.server.authed(self.new_link), methods=["POST"]),
            Route("/web", lambda r: RedirectResponse("/web/", status_code=307)),
            Route("/web/", self.page, methods=["GET"]),
            Route("/web/login", self.login, methods=["POST"]),
            Mount("/web/static", StaticFiles(directory=_textual_serve_dir() / "static"), name="web-static"),
            WebSocketRoute("/web/ws/", self.terminal),
            WebSocketRoute("/web/ws/{sid}", self.terminal),
        ]

    # -- signing in -----------------------------------------------------------------------------
    async def new_link(self, request: Request, who: Identity) -> Response:
        """A one-time link for the caller (its bearer token goes with the sign-in it opens)."""
        from server.app import bearer

        session = request.query_params.get("session", "")
        if session and not SESSION_ID.match(session):
            return JSONResponse({"error": "bad-session", "message": f"not a session id: {session!r}"}, 400)
        self._expire()
        code = secrets.token_urlsafe(24)
        self.links[code] = SignIn(who, bearer(request), time.monotonic() + LINK_TTL_S, session)
        return JSONResponse({"path": f"/web/?code={code}", "expires_in": LINK_TTL_S}, status_code=201)

    async def login(self, request: Request) -> Response:
        """The form's POST: a token in the body signs the browser in."""
        form = parse_qs((await request.body()).decode("utf-8", "replace"))
        token = (form.get("token") or [""])[0].strip()
        session = (form.get("session") or [""])[0].strip()
        who = await self.server.hub.users.authenticate(token)
        if who is None:
            await self.server._refused(request, "unknown token (web sign-in)" if token else "no token (web sign-in)")
            return _login_page("That token was refused. Use one from `lantern serve users add`.", session, 401)
        return self._signed_in(SignIn(who, token, time.monotonic() + SIGNIN_TTL_S, session))

    async def page(self, request: Request) -> Response:
        """The console's page when signed in (a one-time code signs in first), else the sign-in form."""
        self._expire()
        code = request.query_params.get("code")
        session = request.query_params.get("session", "")
        if session and not SESSION_ID.match(session):
            return _login_page(f"not a session id: {session!r}", "", 400)
        if code is not None:
            link = self.links.pop(code, None)
            if link is None or await self.server.hub.users.authenticate(link.token) is None:
                await self.server._refused(request, "unknown or used one-time link")
                return _login_page("That link is used or expired: ask `lantern web` for a new one.", session, 401)
            link.expires = time.monotonic() + SIGNIN_TTL_S
            return self._signed_in(link)
        if self._signin(request) is None:
            return _login_page("", session, 200)
        return HTMLResponse(self._terminal_page(request, session))

    def _signed_in(self, signin: SignIn) -> Response:
        cookie = secrets.token_urlsafe(32)
        self.signins[cookie] = signin
        where = "/web/" + (f"?session={quote(signin.session)}" if signin.session else "")
        response = RedirectResponse(where, status_code=303)
        response.set_cookie(
            COOKIE, cookie, max_age=int(SIGNIN_TTL_S), path="/web", httponly=True, samesite="lax", secure=False
        )
        return response

    def _signin(self, conn: Request | WebSocket) -> SignIn | None:
        signin = self.signins.get(conn.cookies.get(COOKIE, ""))
        if signin is None or signin.expires < time.monotonic():
            return None
        return signin

    def _expire(self) -> None:
        now = time.monotonic()
        for table in (self.links, self.signins):
            for key in [k for k, v in table.items() if v.expires < now]:
                del table[key]

    def _terminal_page(self, request: Request, session: str) -> str:
        import jinja2

        env = jinja2.Environment(loader=jinja2.FileSystemLoader(_textual_serve_dir() / "templates"), autoescape=True)
        scheme = "wss" if request.url.scheme == "https" else "ws"
        base = f"{request.url.scheme}://{request.url.netloc}"
        return env.get_template("app_index.html").render(
            font_size=_int(request.query_params.get("fontsize"), 16),
            app_websocket_url=f"{scheme}://{request.url.netloc}/web/ws/{session}",
            config={"static": {"url": f"{base}/web/static/"}},
            application={"name": "Lantern"},
            ping_url="",
        )

    # -- the terminal ---------------------------------------------------------------------------
    async def terminal(self, ws: WebSocket) -> None:
        """One browser terminal: a console process attached to this server as the signed-in user."""
        signin = self._signin(ws)
        origin = ws.headers.get("origin", "")
        if signin is None or origin != f"{'https' if ws.url.scheme == 'wss' else 'http'}://{ws.url.netloc}":
            await self.server._refused(ws, "web terminal without a sign-in" if signin is None else "cross-origin")
            await ws.close(code=4401)
            return
        if await self.server.hub.users.authenticate(signin.token) is None:
            await ws.close(code=4401)
            return
        if self.consoles >= MAX_CONSOLES:
            await ws.close(code=4429, reason="too many browser consoles on this server")
            return
        sid = ws.path_params.get("sid", "")
        if sid and not SESSION_ID.match(sid):
            await ws.close(code=4400)
            return
        await ws.accept()
        self.consoles += 1
        try:
            await self._run_console(ws, signin, sid)
        finally:
            self.consoles -= 1

    async def _run_console(self, ws: WebSocket, signin: SignIn, sid: str) -> None:
        from textual_serve.download_manager import DownloadManager

        # The browser may go at any moment: what the console still writes then is dropped, not raised.
        async def write_bytes(data: bytes) -> None:
            with contextlib.suppress(RuntimeError, WebSocketDisconnect):
                await ws.send_bytes(data)

        async def write_str(text: str) -> None:
            with contextlib.suppress(RuntimeError, WebSocketDisconnect):
                await ws.send_text(text)

        async def close() -> None:
            with contextlib.suppress(RuntimeError, WebSocketDisconnect):
                await ws.close()

        service = ConsoleProcess(
            console_command(_server_url(ws), sid),
            token=signin.token,
            write_bytes=write_bytes,
            write_str=write_str,
            close=close,
            download_manager=DownloadManager(),
        )
        await service.start(_int(ws.query_params.get("width"), 80), _int(ws.query_params.get("height"), 24))
        try:
            await _pump_browser(ws, service)
        except (WebSocketDisconnect, RuntimeError):
            pass
        finally:
            await service.stop()


class ConsoleProcess(AppService):
    """textual-serve's process for one connection, with the user's token in its environment."""

    def __init__(self, command: str, *, token: str, **kw: Any) -> None:
        super().__init__(command, **kw)
        self.token = token

    def _build_environment(self, width: int = 80, height: int = 24) -> dict[str, str]:
        env: dict[str, str] = super()._build_environment(width=width, height=height)
        env["LANTERN_TOKEN"] = self.token
        env.pop("LANTERN_SERVER", None)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
        return env


def console_command(server_url: str, session: str = "") -> str:
    """The shell command textual-serve runs per connection: this Python's console, attached to the server."""
    argv = [sys.executable, "-m", "console.cli", "--server", server_url]
    if session:
        argv += ["--session", session]
    return shlex.join(argv)


async def _pump_browser(ws: WebSocket, service: Any) -> None:
    """The browser's envelopes (textual-serve's protocol) to the console process, until it goes."""
    while True:
        message = await ws.receive()
        if message["type"] == "websocket.disconnect":
            return
        text = message.get("text")
        if not text:
            continue
        try:
            envelope = json.loads(text)
            kind, data = envelope[0], envelope[1] if len(envelope) > 1 else None
        except (ValueError, IndexError, KeyError, TypeError):
            continue
        if kind == "stdin" and isinstance(data, str):
            await service.send_bytes(data.encode("utf-8"))
        elif kind == "resize" and isinstance(data, dict):
            await service.set_terminal_size(_int(str(data.get("width")), 80), _int(str(data.get("height")), 24))
        elif kind == "ping":
            await ws.send_text(json.dumps(["pong", data]))
        elif kind == "blur":
            await service.blur()
        elif kind == "focus":
            await service.focus()


def _server_url(ws: WebSocket) -> str:
    """This server as the console process reaches it: the address the connection came in on."""
    host, port = ws.scope.get("server") or ("127.0.0.1", 0)
    host = f"[{host}]" if ":" in str(host) else host
    return f"http://{host}:{port}"


def _int(value: str | None, default: int) -> int:
    try:
        return max(1, min(1000, int(value))) if value else default
    except ValueError:
        return default


def _login_page(error: str, session: str, status: int) -> HTMLResponse:
    problem = f'<p class="error">{html.escape(error)}</p>' if error else ""
    body = f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Lantern: sign in</title>
<style>
 body {{ background:#0c181f; color:#e6edf3; font-family: monospace; display:flex; justify-content:center; }}
 form {{ margin-top:15vh; width:34em; background:#12232d; padding:2em; }}
 input[type=password] {{ width:100%; padding:.5em; margin:.5em 0 1em; }}
 .error {{ color:#ff7b72; }}
</style></head>
<body><form method="post" action="/web/login">
<h2>◆ Lantern</h2>
<p>Sign in with your token from <code>lantern serve users add</code>, or open a one-time link from
<code>lantern web --server URL</code>.</p>
{problem}
<input type="password" name="token" autocomplete="off" autofocus placeholder="lt_…">
<input type="hidden" name="session" value="{html.escape(session)}">
<button type="submit">Sign in</button>
</form></body></html>"""
    return HTMLResponse(body, status_code=status)
