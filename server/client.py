"""A face's side of `lantern serve`: REST calls and one attachment per session, every failure
one line (`RemoteError`): server unreachable, bad URL, refused token, session not found.

Faces import this module (it needs httpx and websockets, not Starlette or the engine's loop).
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from engine import events as ev

TOKEN_ENV = "LANTERN_TOKEN"
"""Where a face reads its token first; then the keyring (`lantern creds set server-token`)."""
KEYRING_NAME = "server-token"


class RemoteError(Exception):
    """Talking to the server failed; the message is the one line to show."""


def token_for(explicit: str | None = None) -> str:
    """The face's token: given, $LANTERN_TOKEN, else the keyring's `server-token`."""
    if explicit:
        return explicit
    if os.environ.get(TOKEN_ENV):
        return os.environ[TOKEN_ENV].strip()
    try:
        import keyring

        got = keyring.get_password("lantern", KEYRING_NAME)
    except Exception:  # noqa: BLE001 - no keyring backend is the same as no token there
        got = None
    if got:
        return got.strip()
    raise RemoteError(
        f"no token for the server: set {TOKEN_ENV} (or `lantern creds set {KEYRING_NAME}`) to a token from `lantern serve users add`"
    )


def base_url(url: str) -> str:
    """http(s)://host:port of a server URL (ws:// and wss:// are taken too); a bad URL is a RemoteError."""
    raw = url.strip()
    if "://" not in raw:
        raw = "http://" + raw
    parts = urlsplit(raw)
    scheme = {"ws": "http", "wss": "https"}.get(parts.scheme, parts.scheme)
    if scheme not in ("http", "https") or not parts.hostname:
        raise RemoteError(f"not a server URL: {url!r} (expected http://HOST:PORT)")
    try:
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError:
        raise RemoteError(f"not a server URL: {url!r} (the port is not a number)") from None
    return urlunsplit((scheme, parts.netloc, parts.path.rstrip("/"), "", ""))


class Remote:
    """One server, as a face's user sees it."""

    def __init__(self, url: str, token: str | None = None, *, timeout: float = 30.0) -> None:
        self.url = base_url(url)
        """The server's base URL."""
        self.token = token_for(token)
        self.timeout = timeout

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    async def request(self, method: str, path: str, **kw: Any) -> httpx.Response:
        """One REST call; errors become one line."""
        try:
            async with httpx.AsyncClient(timeout=self.timeout, trust_env=False) as http:
                r = await http.request(method, self.url + path, headers=self.headers, **kw)
        except httpx.TimeoutException:
            raise RemoteError(f"the server at {self.url} did not answer within {self.timeout:g}s") from None
        except httpx.HTTPError as exc:
            raise RemoteError(f"cannot reach the server at {self.url}: {_why(exc)}") from None
        if r.status_code >= 400:
            raise RemoteError(_refusal(r.status_code, _message(r), self.url))
        return r

    async def json(self, method: str, path: str, **kw: Any) -> Any:
        r = await self.request(method, path, **kw)
        try:
            return r.json()
        except ValueError:
            raise RemoteError(
                f"{self.url} answered {path} with something that is not JSON: is it a Lantern server?"
            ) from None

    async def sessions(self, limit: int = 30) -> list[dict[str, Any]]:
        """Sessions on the server, newest first."""
        return list((await self.json("GET", f"/v1/sessions?limit={limit}"))["sessions"])

    async def create(self) -> str:
        """A new session on the server; its id."""
        return str((await self.json("POST", "/v1/sessions"))["id"])

    async def events(self, session: str, after: int = 0) -> list[Any]:
        """A session's stored events."""
        r = await self.request("GET", f"/v1/sessions/{session}/events?after={after}")
        return [ev.from_json(line) for line in r.text.splitlines() if line.strip()]

    async def audit(self, session: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """Audit rows, newest first."""
        q = f"?limit={limit}" + (f"&session={session}" if session else "")
        return list((await self.json("GET", "/v1/audit" + q))["rows"])

    def attach(self, session: str) -> Attachment:
        """An attachment to `session` (use with `async with`)."""
        return Attachment(self, session)


class Attachment:
    """One face attached to one session: the hello, then events and control frames as they come."""

    def __init__(self, remote: Remote, session: str) -> None:
        self.remote = remote
        self.session = session
        self.hello: dict[str, Any] = {}
        """The server's first frame (protocol, session_id, user, roles)."""
        self._ws: Any = None

    async def __aenter__(self) -> Attachment:
        from websockets.asyncio.client import connect
        from websockets.exceptions import InvalidHandshake, InvalidStatus

        url = "ws" + self.remote.url[4:] + f"/v1/sessions/{self.session}/attach"
        try:
            self._ws = await connect(
                url,
                additional_headers=self.remote.headers,
                open_timeout=self.remote.timeout,
                max_size=2**24,
                proxy=None,
            )
        except InvalidStatus as exc:
            body = exc.response.body.decode("utf-8", "replace") if exc.response.body else ""
            raise RemoteError(_refusal(exc.response.status_code, _message_text(body), self.remote.url)) from None
        except (OSError, InvalidHandshake, TimeoutError) as exc:
            raise RemoteError(f"cannot reach the server at {self.remote.url}: {_why(exc)}") from None
        first = json.loads(await self._ws.recv())
        if first.get("frame") != "hello":
            raise RemoteError(f"{self.remote.url} did not greet this face (got {str(first)[:80]})")
        if first.get("protocol", 0) > ev.PROTOCOL_VERSION:
            # events of a newer protocol may have changed shape; unknown kinds are kept as UnknownEvent
            pass
        self.hello = first
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._ws is not None:
            await self._ws.close()

    async def frames(self) -> AsyncIterator[Any]:
        """Events (parsed) and control frames (dicts with `frame`), in the order sent; ends when the server closes."""
        from websockets.exceptions import ConnectionClosed

        try:
            async for raw in self._ws:
                data = json.loads(raw)
                yield data if "frame" in data else ev.from_json(raw)
        except ConnectionClosed as exc:
            if exc.rcvd is not None and exc.rcvd.code not in (1000, 1001):
                raise RemoteError(
                    f"the server closed this face's connection: {exc.rcvd.reason or exc.rcvd.code}"
                ) from None

    async def send(self, frame: dict[str, Any]) -> None:
        """Send one frame."""
        await self._ws.send(json.dumps(frame))

    async def message(self, text: str) -> None:
        """Ask: start a turn (the server answers `accepted` with its number, or `error`)."""
        await self.send({"frame": "message", "text": text})

    async def cancel(self) -> None:
        """Cancel the running turn."""
        await self.send({"frame": "cancel"})

    async def apply(self, manifest: str, namespace: str = "default") -> None:
        """The inspector's Apply: the server runs kubernetes.apply_manifest through its policy and approval."""
        await self.send({"frame": "apply", "manifest": manifest, "namespace": namespace})

    async def fix(self, seq: int) -> None:
        """Run the fix the session's last answer offered (its FixOffered event's seq)."""
        await self.send({"frame": "fix", "seq": seq})

    async def answer(self, request: Any, approved: bool, reason: str = "") -> None:
        """Answer an approval request, bound to its call hash and request id."""
        await self.send(
            {
                "frame": "approval",
                "request_id": request.request_id,
                "call_hash": request.call_hash,
                "approved": approved,
                "reason": reason,
            }
        )


def _why(exc: BaseException) -> str:
    """The cause in a few words: the innermost error of the chain (httpx wraps the socket's)."""
    inner: BaseException | None = exc
    while inner is not None:
        if isinstance(inner, ConnectionRefusedError) or "refused" in str(inner).lower():
            return "connection refused (is `lantern serve` running there?)"
        if isinstance(inner, OSError) and inner.strerror:
            return inner.strerror
        inner = inner.__cause__ or inner.__context__
    text = str(exc) or type(exc).__name__
    return text.splitlines()[0][:160]


def _message(r: httpx.Response) -> str:
    return _message_text(r.text)


def _message_text(body: str) -> str:
    try:
        data = json.loads(body)
        return str(data.get("message") or data.get("error") or "") if isinstance(data, dict) else ""
    except ValueError:
        return body.strip().splitlines()[0][:160] if body.strip() else ""


def _refusal(status: int, message: str, url: str) -> str:
    if status == 401:
        return f"the server at {url} refused the token (401): use a token from `lantern serve users add` in {TOKEN_ENV}"
    if status == 404:
        return message or f"not found on {url} (404)"
    return f"the server at {url} answered {status}" + (f": {message}" if message else "")
