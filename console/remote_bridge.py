"""The console's link to a session held by `lantern serve`: the remote `EngineLink`.

    start ─▶ Remote(URL, token) ─▶ the session (--session ID, --continue: the newest, else a new one)
          ─▶ attach: hello (user, roles), the history, `live` ─▶ EngineReady (the history replays)
          ─▶ each later event ─▶ the messages the local Bridge posts (EngineEvent, AnswerStreamed,
             TurnStateChanged), whoever's turn it is
             ApprovalRequested ─▶ the same modal (one worker per request) ─▶ an `approval` frame bound
             to the request id and call hash; ApprovalResolved by another face ─▶ the modal closes, saying who
          ─▶ the connection drops ─▶ attach again with a growing pause; events already shown are
             skipped by `seq`, the ones missed meanwhile render
    typing ─▶ `message`; ctrl+c / :cancel ─▶ `cancel`; the inspector's Apply ─▶ `apply` (server/apply.py)

Nothing here runs the engine: the server's dispatcher, policy and audit decide, for the identity of
the token, never for a name this face claims.
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from textual.message import Message

from console.bridge import (
    AnswerStreamed,
    ConsoleApprover,
    EngineEvent,
    EngineFailed,
    EngineReady,
    EngineStarting,
    TurnStateChanged,
)
from engine import events as ev

if TYPE_CHECKING:
    from textual.app import App

    from engine.config import Config


class ServerAttached(Message):
    """The console is attached to a server's session, as `user`."""

    def __init__(self, server: str, user: str, *, caught_up: int = 0, reconnected: bool = False) -> None:
        super().__init__()
        self.server = server
        """host:port of the server."""
        self.user = user
        """The identity the server gave this face's token."""
        self.caught_up = caught_up
        """Events missed while the connection was down (a reconnect)."""
        self.reconnected = reconnected
        """True when this attachment replaces one that dropped."""


class ConnectionLost(Message):
    """The attachment dropped; the bridge attaches again after `retry_s`."""

    def __init__(self, why: str, retry_s: float, first: bool) -> None:
        super().__init__()
        self.why = why
        """What happened, in one line."""
        self.retry_s = retry_s
        """Seconds before the next try."""
        self.first = first
        """True for the first failed try of an outage (the console says it once)."""


class RemoteSession:
    """What the console holds of a served session: its id, the events streamed so far, whether a turn runs."""

    opening: str | None = None
    """Never an automatic opening turn: the server's session already has its start."""

    def __init__(self, session_id: str, events: list[Any], running: bool) -> None:
        self.id = session_id
        """The session's id on the server."""
        self.events = events
        """Every event received, in `seq` order."""
        self.running = running
        """True while a turn runs on the server (anyone's)."""
        self.clock: Any = None
        """Unused: the server stamps the events."""


class RemoteBridge:
    """A session on `lantern serve`, driven through the attach protocol (server/protocol.py)."""

    def __init__(
        self,
        app: App[Any],
        cfg: Config,
        *,
        server: str,
        approver: ConsoleApprover,
        token: str | None = None,
        retry_s: float = 0.25,
        retry_max_s: float = 5.0,
    ) -> None:
        self.app = app
        """The app messages are posted to."""
        self.cfg = cfg
        """The face's configuration (theme, keymap); the session's own lives on the server."""
        self.server = server
        """The server URL as given."""
        self.approver = approver
        """Shows approval requests (the same modal as a local session's)."""
        self.token = token
        """The token (None: $LANTERN_TOKEN, else the keyring)."""
        self.retry_s = retry_s
        """First pause before attaching again after a drop."""
        self.retry_max_s = retry_max_s
        """Longest pause between tries."""
        self.remote: Any = None
        """The server's client (server.client.Remote), once the token is found."""
        self.store: Any = None
        """None: the server holds the store."""
        self.session: RemoteSession | None = None
        """The attached session, once the history arrived."""
        self.user = ""
        """Who the server says this face is."""
        self.error = ""
        """Why nothing can be sent now (no server, connection lost), else ''."""
        self._face: Any = None
        self._last_seq = 0
        self._stream: dict[tuple[int, int], str] = {}
        self._open: dict[str, ev.ApprovalRequested] = {}
        self._answered: set[str] = set()
        self._chores: set[asyncio.Task[Any]] = set()

    # -- state ------------------------------------------------------------------------------------
    @property
    def ready(self) -> bool:
        """True while attached."""
        return self.session is not None and self._face is not None

    @property
    def running(self) -> bool:
        """True while a turn runs in the session (this face's or another's)."""
        return self.session is not None and self.session.running

    @property
    def where(self) -> str:
        """host:port of the server."""
        url = self.remote.url if self.remote is not None else self.server
        return urlsplit(url if "://" in url else "http://" + url).netloc or url

    # -- start and follow -------------------------------------------------------------------------
    async def start(self, *, session_id: str | None = None, latest: bool = False) -> None:
        """Attach to the session and follow it until the worker is cancelled (reattaching after drops)."""
        from server.client import Remote, RemoteError

        self.session, self._face, self._last_seq = None, None, 0
        self._open.clear()
        self.app.post_message(EngineStarting(f"on {self.server}"))
        try:
            self.remote = Remote(self.server, self.token)
            sid = await self._pick(session_id, latest)
        except RemoteError as exc:
            self._fail(str(exc))
            return
        await self._follow(sid, resumed=session_id is not None or latest)

    async def _pick(self, session_id: str | None, latest: bool) -> str:
        if session_id:
            return session_id  # the server resolves a prefix; its hello names the whole id
        if latest:
            rows = await self.remote.sessions(limit=1)
            if rows:
                return str(rows[0]["id"])
            self.app.post_message(
                EngineFailed(
                    f"there is no earlier session on {self.where} to continue; starting a new one", code="no-session"
                )
            )
        return str(await self.remote.create())

    async def _follow(self, sid: str, *, resumed: bool) -> None:
        from server.client import RemoteError

        pause, first_try = self.retry_s, True
        while True:
            try:
                async with self.remote.attach(sid) as face:
                    frames = face.frames()
                    await self._attached(face, frames, resumed)
                    pause, first_try = self.retry_s, True
                    await self._live(frames)
                why = "the server closed the connection"
            except (RemoteError, OSError) as exc:
                if self.session is None:  # never attached: a failed start, said once
                    self._fail(str(exc))
                    return
                why = str(exc)
            finally:
                self._face = None
            self.error = f"the connection to {self.where} is lost ({why}); reconnecting"
            self.app.post_message(ConnectionLost(why, pause, first_try))
            first_try = False
            await asyncio.sleep(pause)
            pause = min(pause * 2, self.retry_max_s)

    async def _attached(self, face: Any, frames: Any, resumed: bool) -> None:
        """Read the history up to `live`; the first time it opens the session, later it catches up."""
        history: list[Any] = []
        running = False
        async for item in frames:
            if isinstance(item, dict):
                if item.get("frame") == "live":
                    running = bool(item.get("running"))
                    break
                continue
            history.append(item)
        self.user = str(face.hello.get("user") or "")
        self.approver.user = self.user
        self._face, self.error = face, ""
        if self.session is not None:
            missed = [e for e in history if e.seq > self._last_seq]
            for e in missed:
                self._event(e)
            self.session.running = running
            self.app.post_message(TurnStateChanged(running))
            self.app.post_message(ServerAttached(self.where, self.user, caught_up=len(missed), reconnected=True))
            return
        self.session = RemoteSession(str(face.hello.get("session_id") or ""), history, running)
        self._last_seq = max((e.seq for e in history), default=0)
        started = [e for e in history if isinstance(e, ev.SessionStarted)]
        self.app.post_message(ServerAttached(self.where, self.user))
        self.app.post_message(EngineReady(self.session, resumed=resumed, model=started[-1].model if started else ""))
        if running:
            for request in _waiting(history):
                self._ask(request)

    async def _live(self, frames: Any) -> None:
        async for item in frames:
            if isinstance(item, dict):
                self._control(item)
            else:
                self._event(item)

    def _event(self, e: Any) -> None:
        """One streamed event, as the local bridge posts it (each `seq` once)."""
        session = self.session
        if session is None or (e.seq and e.seq <= self._last_seq):
            return
        self._last_seq = max(self._last_seq, e.seq)
        session.events.append(e)
        if isinstance(e, ev.AssistantDelta):
            key = (e.turn, e.step)
            self._stream[key] = self._stream.get(key, "") + e.text
            self.app.post_message(AnswerStreamed(e.turn, e.step, self._stream[key]))
            return
        if isinstance(e, ev.AssistantMessage):
            self._stream.pop((e.turn, e.step), None)
        if isinstance(e, ev.UserMessage) and not session.running:
            session.running = True
            self.app.post_message(TurnStateChanged(True))
        self.app.post_message(EngineEvent(e))
        if isinstance(e, ev.FixOffered):
            self.last_fix = e
        if isinstance(e, ev.ApprovalRequested):
            self._open[e.request_id] = e
            self._ask(e)
        elif isinstance(e, ev.ApprovalResolved):
            self._resolved(e)
        elif isinstance(e, ev.TurnFinished):
            session.running = False
            self._stream.clear()
            for rid in list(self._open):  # the server closes every request of a finished turn
                self._open.pop(rid)
                self.approver.withdraw(rid, "the turn ended")
            self.app.post_message(TurnStateChanged(False))

    def _control(self, frame: dict[str, Any]) -> None:
        kind = frame.get("frame")
        if kind == "error":
            self.app.notify(f"the server: {frame.get('message') or frame.get('code')}", severity="warning", timeout=8)
        elif kind == "refused":
            self._answered.discard(str(frame.get("request_id") or ""))
            self.app.notify(f"Your answer did not count: {frame.get('reason')}", severity="warning", timeout=10)

    # -- approvals --------------------------------------------------------------------------------
    def _ask(self, request: ev.ApprovalRequested) -> None:
        self._open[request.request_id] = request
        self.app.run_worker(self._answer(request), group="approvals", name=f"approval-{request.request_id}")

    async def _answer(self, request: ev.ApprovalRequested) -> None:
        """The modal, then the answer as a frame (unless another face settled it meanwhile)."""
        answer = await self.approver.ask(request)
        rid = request.request_id
        if rid in self.approver.withdrawn or rid not in self._open:
            return
        face = self._face
        if face is None:
            self.app.notify("Not connected to the server: your answer was not sent.", severity="error", timeout=10)
            return
        self._answered.add(rid)
        try:
            await face.answer(request, answer.approved, answer.reason)
        except Exception as exc:  # noqa: BLE001 - a dropped connection is reported; the request stays open there
            self._answered.discard(rid)
            self.app.notify(f"Your answer was not sent: {exc}", severity="error", timeout=10)

    def _resolved(self, e: ev.ApprovalResolved) -> None:
        request = self._open.pop(e.request_id, None)
        if e.request_id in self._answered and e.by == self.user:
            return
        waiting = any(r.request_id == e.request_id for r in self.approver.pending)
        verdict = "approved" if e.approved else "denied"
        self.approver.withdraw(e.request_id, f"{verdict} by {e.by} on another face")
        if waiting:
            tool = request.tool if request is not None else "the call"
            self.app.notify(f"{tool} was {verdict} by {e.by} on another face.", timeout=10)

    # -- what the app asks ------------------------------------------------------------------------
    async def run_turn(self, text: str) -> None:
        """Send a user message; the turn's events arrive on the stream like anyone's."""
        face = self._face
        if face is None:
            self.app.notify(f"Not sent: {self.error or 'not attached to the server'}", severity="error")
            return
        await face.message(text)

    async def run_call(self, text: str, tool: str, arguments: dict[str, Any]) -> None:
        """The inspector's Apply, as an `apply` frame (the server runs that one call; a face never names a tool)."""
        face = self._face
        offer = getattr(self, "last_fix", None)
        if face is not None and offer is not None and (offer.tool, dict(offer.arguments)) == (tool, arguments):
            await face.fix(offer.seq)  # the answer's fix: the server runs the offer it recorded, by its seq
        elif tool != "kubernetes.apply_manifest":
            self.app.notify(f"{tool} cannot be asked for over the server; ask the agent instead.", severity="warning")
        elif face is None:
            self.app.notify(f"Not sent: {self.error or 'not attached to the server'}", severity="error")
        else:
            await face.apply(str(arguments.get("manifest") or ""), str(arguments.get("namespace") or "default"))

    def cancel(self) -> bool:
        """Ask the server to cancel the running turn; False when none runs."""
        face = self._face
        if face is None or not self.running:
            return False
        task = asyncio.ensure_future(face.cancel())
        self._chores.add(task)
        task.add_done_callback(self._chores.discard)
        return True

    async def blob(self, ref: str) -> str | None:
        """Whole outputs stay on the server (the trimmed one is in the event)."""
        return None

    async def sessions(self, limit: int = 200) -> list[Any]:
        """The server's sessions, newest first, shaped as the store's rows."""
        if self.remote is None:
            return []
        rows = await self.remote.sessions(limit=limit)
        return [
            SimpleNamespace(
                id=r["id"], updated_at=str(r.get("updated_at") or ""), title=r.get("title"), events=r.get("events", 0)
            )
            for r in rows
        ]

    async def close(self) -> None:
        """Nothing to close: the attachment ends with the worker that follows it."""

    def _fail(self, message: str) -> None:
        self.session, self.error = None, message
        self.app.post_message(EngineFailed(message, code="server"))


def _waiting(events: list[Any]) -> list[ev.ApprovalRequested]:
    """Requests of the running turn that nobody has answered yet."""
    turn = max((e.turn for e in events if isinstance(e, ev.UserMessage)), default=0)
    resolved = {e.request_id for e in events if isinstance(e, ev.ApprovalResolved)}
    return [
        e for e in events if isinstance(e, ev.ApprovalRequested) and e.turn == turn and e.request_id not in resolved
    ]
