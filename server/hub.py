"""The server's sessions: each live one runs its turns here and fans its events out to every
attached face, after the store has them.

A face that attaches gets the session's events so far, then every later one: the snapshot and
the subscription are taken in one step of the event loop (no gap), and each face is sent an
event only once, in `seq` order (no duplicate).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from engine import events as ev
from engine.config import Config
from engine.loop import ApprovalAnswer, Approver, Session
from engine.store import SessionInfo, Store
from server.identity import Identity, Users
from server.pages import Page, PageWatcher

log = logging.getLogger("lantern.server")

SessionFactory = Callable[..., Awaitable[Session]]
"""`factory(cfg, *, store, approver, session_id=None) -> Session`, as `wiring.open_session`."""

QUEUE_LIMIT = 20_000
"""Frames a face may fall behind before it is dropped (it can attach again and catch up)."""
MAX_TEXT = 20_000
"""Characters of one user message."""


class HubError(Exception):
    """A request the hub refuses, with a code for the face and one line for the user."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


class Subscriber:
    """One attached face: the frames waiting for it and the last event it was sent."""

    def __init__(self, identity: Identity) -> None:
        self.identity = identity
        """Who is attached."""
        self.queue: asyncio.Queue[Any] = asyncio.Queue()
        """Events and control frames (dicts), in order; None: the face fell too far behind."""
        self.last_seq = 0
        """The seq of the last event sent (later duplicates are skipped)."""
        self.dropped = False

    def offer(self, item: Any) -> None:
        """Queue an event or a control frame; a face that falls too far behind is dropped."""
        if self.dropped:
            return
        if self.queue.qsize() >= QUEUE_LIMIT:
            self.dropped = True
            self.queue.put_nowait(None)
            return
        self.queue.put_nowait(item)

    def fresh(self, event: Any) -> bool:
        """True when `event` comes after everything this face was sent (and marks it sent)."""
        if event.seq <= self.last_seq:
            return False
        self.last_seq = event.seq
        return True


class RemoteApprover:
    """The approver of a served session: every attached face sees the request (it is an event);
    answers carry the identity of the connection that sent them, and the dispatcher takes the
    first valid one (engine.dispatch.SharedApprover); the rest are told it was answered."""

    def __init__(self) -> None:
        self._open: dict[str, asyncio.Queue[tuple[ApprovalAnswer, Subscriber | None]]] = {}
        self._sender: dict[str, Subscriber | None] = {}

    def open_request(self, request: ev.ApprovalRequested) -> None:
        """Accept answers for `request` from now on (called when the request is published)."""
        self._open.setdefault(request.request_id, asyncio.Queue())

    async def ask(self, request: ev.ApprovalRequested) -> ApprovalAnswer | None:
        """The next answer from a face; None once the request expires unanswered (the call is denied),
        so a turn whose faces all left does not wait for ever."""
        q = self._open.setdefault(request.request_id, asyncio.Queue())
        wait = None if request.expires_at is None else max(0.0, (request.expires_at - ev.utcnow()).total_seconds())
        try:
            answer, sender = await asyncio.wait_for(q.get(), wait)
        except TimeoutError:
            return None
        self._sender[request.request_id] = sender
        return answer

    def refused(self, request: ev.ApprovalRequested, answer: ApprovalAnswer, reason: str) -> None:
        sender = self._sender.pop(request.request_id, None)
        if sender is not None:
            sender.offer({"frame": "refused", "request_id": request.request_id, "reason": reason})

    def answer(self, identity: Identity, frame: dict[str, Any], sender: Subscriber | None = None) -> None:
        """An answer from an attached face: `by` is the connection's identity, never the frame's."""
        rid = str(frame.get("request_id") or "")
        q = self._open.get(rid)
        if q is None:
            raise HubError(
                "no-request", f"no open approval request {rid!r} in this session (answered, expired or unknown)"
            )
        answer = ApprovalAnswer(
            approved=frame.get("approved") is True,
            by=identity.name,
            reason=str(frame.get("reason") or "")[:500],
            call_hash=str(frame.get("call_hash") or ""),
            request_id=rid,
        )
        q.put_nowait((answer, sender))

    def resolved(self, e: ev.ApprovalResolved) -> None:
        """The request is settled: answers still waiting are told who settled it."""
        q = self._open.pop(e.request_id, None)
        self._sender.pop(e.request_id, None)
        while q is not None and not q.empty():
            late, sender = q.get_nowait()
            if sender is not None:
                sender.offer(
                    {
                        "frame": "refused",
                        "request_id": e.request_id,
                        "reason": f"already {'approved' if e.approved else 'denied'} by {e.by}",
                    }
                )

    def close_all(self) -> None:
        """The turn ended: no request is open any more."""
        self._open.clear()
        self._sender.clear()


class FanoutSink:
    """The session's sink: the store first (durable before any face sees it), then every face."""

    def __init__(self, store: Store, live: LiveSession) -> None:
        self.store = store
        self.live = live

    async def append(self, event: Any) -> Any:
        stored = await self.store.append(event)  # re-stamped if another server took its seq
        self.live.publish(stored)
        return stored

    async def put_blob(self, ref: str, session_id: str, text: str) -> None:
        await self.store.put_blob(ref, session_id, text)


@dataclass
class LiveSession:
    """A session the server holds open: its events, its faces, its turn."""

    session: Session
    approver: RemoteApprover
    log: list[Any] = field(default_factory=list)
    """Every event the store has, in order (what a late face is sent first)."""
    faces: set[Subscriber] = field(default_factory=set)
    task: asyncio.Task[None] | None = None
    """The running turn."""
    asked_by: str = ""
    """Who started the running (or last) turn."""
    org_roles: dict[str, list[str]] = field(default_factory=dict)
    """The policy file's own roles (the server's users' roles are merged over them)."""

    @property
    def id(self) -> str:
        return self.session.id

    @property
    def running(self) -> bool:
        return self.task is not None and not self.task.done()

    def publish(self, event: Any) -> None:
        """Record a stored event and offer it to every attached face."""
        self.log.append(event)
        if isinstance(event, ev.ApprovalRequested):
            self.approver.open_request(event)
        elif isinstance(event, ev.ApprovalResolved):
            self.approver.resolved(event)
        for face in list(self.faces):
            face.offer(event)

    def attach(self, identity: Identity) -> tuple[list[Any], Subscriber]:
        """The history so far and a subscription to what follows, taken together (no await between)."""
        face = Subscriber(identity)
        self.faces.add(face)
        return list(self.log), face

    def detach(self, face: Subscriber) -> None:
        self.faces.discard(face)


async def open_wired(cfg: Config, *, store: Store, approver: Approver, session_id: str | None = None) -> Session:
    """The product's session (wiring.open_session), with the heavy parts built off the event loop
    the faces share: the model and the toolbox (packs, retrieval index) in a worker thread."""
    from engine.config import resolve_model
    from wiring import make_model, make_toolbox, open_session

    model = await asyncio.to_thread(make_model, resolve_model(cfg), cfg)
    toolbox = await asyncio.to_thread(make_toolbox, cfg)
    return await open_session(cfg, store=store, approver=approver, session_id=session_id, model=model, toolbox=toolbox)


class Hub:
    """Every session the server holds open, and the way faces reach them."""

    def __init__(
        self, cfg: Config, store: Store, users: Users, factory: SessionFactory | None = None, *, learn: bool = True
    ) -> None:
        self.cfg = cfg
        """The server's config (model, context, the org policy's home)."""
        self.store = store
        self.users = users
        self.factory = factory or open_wired
        self.learn = learn
        """Score each finished turn's session and teach retrieval (the product); off in tests."""
        self.live: dict[str, LiveSession] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._chores: set[asyncio.Task[Any]] = set()
        self.closing = False
        self.watchers: list[PageWatcher] = []
        """Faces told of every page (server/pages.py); the chat face registers here."""

    # -- sessions -----------------------------------------------------------------------------
    async def create(self) -> LiveSession:
        """A new session, held open."""
        return await self._open(None)

    async def resolve(self, ref: str) -> str:
        """A session id from an id or unique prefix (live or stored)."""
        if ref in self.live:
            return ref
        sid = await self.store.find(ref)
        if sid is None:
            raise HubError("not-found", f"no session matches {ref!r}")
        return sid

    async def get(self, ref: str) -> LiveSession:
        """The live session `ref` names, reopening a stored one (as --continue does)."""
        sid = await self.resolve(ref)
        if sid in self.live:
            return self.live[sid]
        lock = self._locks.setdefault(sid, asyncio.Lock())
        async with lock:
            if sid in self.live:
                return self.live[sid]
            return await self._open(sid)

    async def _open(self, sid: str | None) -> LiveSession:
        if self.closing:
            raise HubError("closing", "the server is shutting down")
        approver = RemoteApprover()
        session = await self.factory(self.cfg, store=self.store, approver=approver, session_id=sid)
        live = LiveSession(session=session, approver=approver, log=list(session.events))
        dispatcher = getattr(session.toolbox, "dispatcher", None)
        if dispatcher is not None:
            live.org_roles = {k: list(v) for k, v in dispatcher.policy.org.roles.items()}
        session.sink = FanoutSink(self.store, live)
        self.live[session.id] = live
        return live

    async def sessions(self, limit: int = 50) -> list[dict[str, Any]]:
        """Stored sessions, newest first, with what the server holds of each."""
        rows: list[SessionInfo] = await self.store.sessions(limit=limit)
        out = []
        for r in rows:
            live = self.live.get(r.id)
            out.append(
                {
                    **r.__dict__,
                    "live": live is not None,
                    "running": bool(live and live.running),
                    "faces": len(live.faces) if live else 0,
                }
            )
        return out

    async def announce(self, live: LiveSession, page: Page) -> None:
        """Tell every watcher that `page` opened (firing) or closed (resolved) `live`; a watcher
        that fails is logged and the others are still told."""
        for watcher in list(self.watchers):
            try:
                if page.status == "resolved":
                    await watcher.page_resolved(live, page)
                else:
                    await watcher.page_opened(live, page)
            except Exception:
                log.exception("page watcher %r failed on session %s", watcher, live.id)

    # -- what faces send ------------------------------------------------------------------------
    async def as_identity(self, live: LiveSession, who: Identity) -> None:
        """Make `who` the user the session's dispatcher sees: policy users and approvers match the
        authenticated name, and `role:NAME` expands to the server's users holding that role."""
        dispatcher = getattr(live.session.toolbox, "dispatcher", None)
        if dispatcher is None:
            return
        await self._roles(live)
        dispatcher.user = who.name

    async def _roles(self, live: LiveSession) -> None:
        """The policy's roles with the server's users merged in (a role given since counts at once)."""
        dispatcher = getattr(live.session.toolbox, "dispatcher", None)
        if dispatcher is None:
            return
        roles = {k: list(v) for k, v in live.org_roles.items()}
        for role, names in (await self.users.role_members()).items():
            roles[role] = sorted({*roles.get(role, []), *names})
        dispatcher.policy.org.roles = roles

    async def send(self, live: LiveSession, who: Identity, text: str, face: Subscriber | None = None) -> int:
        """Start a turn for `who`; returns its number once its first event is stored."""
        text = text.strip()
        if not text:
            raise HubError("empty", "the message is empty")
        if len(text) > MAX_TEXT:
            raise HubError("too-long", f"the message is {len(text):,} characters; at most {MAX_TEXT:,}")
        if live.running or live.session.running:
            raise HubError(
                "busy",
                f"a turn is already running in this session (asked by {live.asked_by}); wait for it or cancel it",
            )
        await self.as_identity(live, who)
        first: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        live.asked_by = who.name
        live.task = asyncio.create_task(self._turn(live, text, first), name=f"turn:{live.id}")
        return await first

    async def _turn(self, live: LiveSession, text: str, first: asyncio.Future[int]) -> None:
        try:
            async for e in live.session.run_turn(text):
                if not first.done():
                    first.set_result(e.turn)
        except Exception as exc:
            log.exception("turn failed in session %s", live.id)
            if not first.done():
                first.set_exception(HubError("turn-failed", f"the turn failed: {type(exc).__name__}: {exc}"))
            else:
                await live.session.emit(
                    ev.ErrorEvent, code="server", message=f"the turn failed on the server: {type(exc).__name__}: {exc}"
                )
        finally:
            live.approver.close_all()
        if self.learn:
            self._chore(self._score(live))

    async def _score(self, live: LiveSession) -> None:
        from wiring import score_and_learn

        try:
            await score_and_learn(self.store, live.id, live.session.toolbox)
        except Exception:
            log.exception("scoring session %s failed", live.id)

    def _chore(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._chores.add(task)
        task.add_done_callback(self._chores.discard)

    def cancel(self, live: LiveSession) -> bool:
        """Cancel the running turn (it ends with TurnFinished(reason='cancelled')); False when none runs."""
        if not live.session.running:
            return False
        live.session.cancel()
        return True

    async def answer(
        self, live: LiveSession, who: Identity, frame: dict[str, Any], face: Subscriber | None = None
    ) -> None:
        """An approval answer from `who` (roles are refreshed before the dispatcher judges it)."""
        await self._roles(live)
        live.approver.answer(who, frame, face)

    async def close(self) -> None:
        """Cancel running turns and wait for them (each ends with its TurnFinished stored)."""
        self.closing = True
        for live in self.live.values():
            live.session.cancel()
        tasks = [t for t in (*(lv.task for lv in self.live.values()), *self._chores) if t is not None and not t.done()]
        if tasks:
            await asyncio.wait(tasks, timeout=10)
