"""The server's sessions: each live one runs its turns here and fans its events out to every
attached face, after the store has them.

A face that attaches gets the session's events so far, then every later one: the snapshot and
the subscription are taken in one step of the event loop (no gap), and each face is sent an
event only once, in `seq` order (no duplicate).

Several servers on one store (PostgreSQL): each hub follows the store's feed of committed events
and publishes, for the sessions it holds live, the ones another server appended (read from the
store after the last it published, so each once and in order; its own are published as they are
stored). A turn runs in one place at a time (server.turns: a lease row with a heartbeat); a turn
whose server died is closed as interrupted when the session is next held.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from engine import events as ev
from engine.config import Config
from engine.loop import ApprovalAnswer, Approver, Session
from engine.policy.audit import AuditLog
from engine.store import SessionInfo, Store
from server.identity import Identity, Users
from server.pages import Page, PageWatcher
from server.turns import LEASE_TTL_S, Busy, Leases, close_interrupted, server_name, unfinished

log = logging.getLogger("lantern.server")

SessionFactory = Callable[..., Awaitable[Session]]
"""`factory(cfg, *, store, approver, session_id=None) -> Session`, as `wiring.open_session`."""

QUEUE_LIMIT = 20_000
"""Frames a face may fall behind before it is dropped (it can attach again and catch up)."""
MAX_TEXT = 20_000
"""Characters of one user message."""
RELEASE_WAITS = 20
"""Tries (50 ms apart) to take the lease of a turn that finished on another server and is releasing it."""


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

    def __init__(self, hub: Hub, live: LiveSession) -> None:
        self.hub = hub
        self.store = hub.store
        self.live = live

    async def append(self, event: Any) -> Any:
        live = self.live
        live.inflight += 1
        try:
            stored = await self.store.append(event)  # re-stamped if another server took its seq
        finally:
            live.inflight -= 1
        published = live.publish(stored)
        if (not published and stored.seq > live.last_seq) or live.heard > live.last_seq:
            await self.hub.catch_up(live)  # another writer's events came first, or were heard while this one was stored
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
    routes: dict[str, tuple[list[str] | None, bool]] = field(default_factory=dict)
    """Open approval request id → (who may answer it (None: anyone), whether its turn runs here)."""
    claimed: bool = False
    """A turn is being started here (between the request and its task)."""
    inflight: int = 0
    """Appends of this server's own events not yet returned from the store."""
    heard: int = 0
    """The last seq the store's feed named while an own append was in flight (the sink reads up to it)."""
    elsewhere_asked_by: str = ""
    """Who asked the turn that runs on another server (from its lease)."""

    @property
    def id(self) -> str:
        return self.session.id

    @property
    def running(self) -> bool:
        return self.task is not None and not self.task.done()

    @property
    def here(self) -> bool:
        """A turn of this session runs in this server (its events are this server's own)."""
        return self.running or self.session.running

    @property
    def last_seq(self) -> int:
        """The seq of the last event published (faces have been offered everything up to it)."""
        return self.log[-1].seq if self.log else 0

    def publish(self, event: Any) -> bool:
        """Record a stored event and offer it to every attached face, if it is the next one (False:
        already published, or something stored before it is not yet: the caller reads the store)."""
        if event.seq != self.last_seq + 1:
            return False
        self.log.append(event)
        if isinstance(event, ev.ApprovalRequested):
            if self.here:
                self.approver.open_request(event)
            self.routes[event.request_id] = (self._approvers(event), self.here)
        elif isinstance(event, ev.ApprovalResolved):
            self.approver.resolved(event)
            self.routes.pop(event.request_id, None)
        elif isinstance(event, ev.TurnFinished):
            self.routes.clear()
        for face in list(self.faces):
            face.offer(event)
            if isinstance(event, ev.ApprovalRequested):
                face.offer(self.route(event.request_id, face.identity))
        return True

    def _approvers(self, request: ev.ApprovalRequested) -> list[str] | None:
        """Who may answer `request`, as the dispatcher judges it: the rule's approvers (roles
        expanded), else the asker and the `operators` role; None without a dispatcher."""
        dispatcher = getattr(self.session.toolbox, "dispatcher", None)
        if dispatcher is None:
            return None
        roles = dispatcher.policy.org.roles
        for _, rule in dispatcher.policy.ordered():
            if rule.id == request.rule and rule.decision == "approve" and rule.approvers:
                return sorted(_expand(rule.approvers, roles))
        asker = dispatcher.user if self.here else self.elsewhere_asked_by
        return sorted({asker, *roles.get("operators", [])} - {""})

    def route(self, request_id: str, who: Identity) -> dict[str, Any]:
        """The `approvers` frame of an open request for `who`'s face: who may answer it, and whether
        this face may (an approver's face, on the server where the turn runs)."""
        approvers, here = self.routes.get(request_id, (None, False))
        if not here:
            can, why = False, "the turn runs on another server: answer it on a face attached there"
        elif approvers is not None and who.name not in approvers:
            can, why = False, f"only {', '.join(approvers) or 'nobody'} may approve this"
        else:
            can, why = True, ""
        frame = {"frame": "approvers", "request_id": request_id, "approvers": approvers, "can_answer": can}
        return frame | ({"why": why} if why else {})

    def attach(self, identity: Identity) -> tuple[list[Any], Subscriber]:
        """The history so far and a subscription to what follows, taken together (no await between)."""
        face = Subscriber(identity)
        self.faces.add(face)
        return list(self.log), face

    def detach(self, face: Subscriber) -> None:
        self.faces.discard(face)


def _expand(names: list[str], roles: dict[str, list[str]]) -> set[str]:
    """Policy names with `role:NAME` replaced by the role's members."""
    out: set[str] = set()
    for n in names:
        out.update(roles.get(n[5:], []) if n.startswith("role:") else [n])
    return out


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
        self,
        cfg: Config,
        store: Store,
        users: Users,
        factory: SessionFactory | None = None,
        *,
        learn: bool = True,
        lease_s: float = LEASE_TTL_S,
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
        self.me = server_name()
        """This server, as the lease rows and another server's "busy" name it."""
        self.lease_s = lease_s
        """How long a turn's lease lives without a heartbeat (server.turns)."""
        self._leases: Leases | None = None
        self._audit: AuditLog | None = None
        self._follower: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Open the server's tables and follow the store's feed (other servers' events)."""
        await self.leases()
        if self._follower is None:
            self._follower = asyncio.create_task(self._follow(), name="hub:follow")

    async def leases(self) -> Leases:
        """The store's turn leases, held as this server."""
        if self._leases is None:
            self._leases = await Leases.open(self.store, self.me, self.lease_s)
        return self._leases

    async def audit(self) -> AuditLog:
        """The store's audit log."""
        if self._audit is None:
            self._audit = await AuditLog.open(self.store)
        return self._audit

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
        # the log from the store, not the session's copy: another server may have written since it was read
        live = LiveSession(session=session, approver=approver, log=await self.store.events(session.id))
        dispatcher = getattr(session.toolbox, "dispatcher", None)
        if dispatcher is not None:
            live.org_roles = {k: list(v) for k, v in dispatcher.policy.org.roles.items()}
        session.sink = FanoutSink(self, live)
        self.live[session.id] = live
        await self.catch_up(live)  # anything committed while it opened, before the feed could name it
        if sid is not None and unfinished(live.log) is not None:
            await self._settle_if_free(live)
        return live

    async def _settle_if_free(self, live: LiveSession) -> None:
        """A reopened session whose last turn never finished: close it as interrupted, unless that
        turn still runs on another server (its lease is live)."""
        leases = await self.leases()
        try:
            await leases.acquire(live.id, "")
        except Busy:
            return
        try:
            await self._settle(live)
        finally:
            await leases.release(live.id)

    async def _settle(self, live: LiveSession) -> None:
        """Holding the session's lease: take in what other servers wrote, and close a turn a dead server left open."""
        session = live.session
        session.absorb(await self.store.events(live.id, after=session.events[-1].seq if session.events else 0))
        left = unfinished(session.events)
        if left is not None:
            log.warning("session %s: turn %d was interrupted (its server stopped); closing it", live.id, left.turn)
            await close_interrupted(session, left, await self.audit())

    async def catch_up(self, live: LiveSession) -> None:
        """Publish what the store holds after the last event published (another server's, in order)."""
        new = await self.store.events(live.id, after=live.last_seq)
        if any(isinstance(e, ev.ApprovalRequested) for e in new) and not live.here:
            holder = await (await self.leases()).holder(live.id)
            live.elsewhere_asked_by = holder.asked_by if holder else ""
            await self._roles(live)
        for e in new:
            live.publish(e)

    async def _follow(self) -> None:
        """Follow the store's feed for as long as the server runs; listen again, with backoff, when it breaks."""
        delay = 0.2
        while not self.closing:
            try:
                async with self.store.subscribe() as feed:
                    for live in list(self.live.values()):  # what was committed while nobody listened
                        await self.catch_up(live)
                    delay = 0.2
                    async for sid, seq in feed:
                        live = self.live.get(sid)
                        if live is None or seq <= live.last_seq:
                            continue  # not held here, or this server's own event, already published
                        if live.inflight:
                            live.heard = max(live.heard, seq)  # an own append is on the way: the sink reads after it
                            continue
                        await self.catch_up(live)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the feed breaks (the database restarts): listen again
                log.warning("the store's live events stopped (%s); listening again in %.1f s", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)

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

    async def send(
        self,
        live: LiveSession,
        who: Identity,
        text: str,
        face: Subscriber | None = None,
        *,
        call: tuple[str, dict[str, Any]] | None = None,
    ) -> int:
        """Start a turn for `who`; returns its number once its first event is stored. A turn runs
        in one place: here only while no other server holds the session's lease. `call`: the
        person's own call (tool, arguments) instead of a model's turn (the inspector's Apply)."""
        text = text.strip()
        if not text:
            raise HubError("empty", "the message is empty")
        if len(text) > MAX_TEXT:
            raise HubError("too-long", f"the message is {len(text):,} characters; at most {MAX_TEXT:,}")
        if live.claimed or live.running or live.session.running:
            raise HubError(
                "busy",
                f"a turn is already running in this session (asked by {live.asked_by}); wait for it or cancel it",
            )
        live.claimed = True
        try:
            leases = await self.leases()
            await self._acquire(live, who)
            try:
                await self._settle(live)
                await self.as_identity(live, who)
            except BaseException:
                await leases.release(live.id)
                raise
            first: asyncio.Future[int] = asyncio.get_running_loop().create_future()
            live.asked_by = who.name
            live.task = asyncio.create_task(self._turn(live, text, first, call), name=f"turn:{live.id}")
        finally:
            live.claimed = False
        return await first

    async def run_fix(self, live: LiveSession, who: Identity, seq: Any) -> int:
        """Run the fix the session's last answer offered (FixOffered `seq`) as `who`'s own call,
        through the same policy, dry run and approval: a face names an offer, never a tool."""
        offers = [e for e in live.log if isinstance(e, ev.FixOffered)]
        last = offers[-1] if offers else None
        if last is None or last.seq != seq:
            raise HubError("no-fix", "that fix is not the one the session's last answer offered; nothing was run")
        if any(isinstance(e, ev.UserMessage) and e.seq > last.seq for e in live.log):
            raise HubError("no-fix", "a later turn has started since that fix was offered; nothing was run")
        return await self.send(
            live, who, f"run the proposed fix: {last.written}", call=(last.tool, dict(last.arguments))
        )

    async def _acquire(self, live: LiveSession, who: Identity) -> None:
        """Hold the session's lease for a turn of `who`'s, or refuse: busy on another server. A turn
        that has stored its TurnFinished there gives its lease up a moment later: wait for that."""
        leases = await self.leases()
        for _ in range(RELEASE_WAITS):
            try:
                await leases.acquire(live.id, who.name)
                return
            except Busy as busy:
                h = busy.holder
            await self.catch_up(live)
            if unfinished(live.log) is not None:
                break  # its turn runs
            await asyncio.sleep(0.05)
        raise HubError(
            "busy",
            f"a turn is already running in this session on another server ({h.server}, asked by "
            f"{h.asked_by or 'someone'}); wait for it or cancel it there",
        )

    async def _turn(
        self, live: LiveSession, text: str, first: asyncio.Future[int], call: tuple[str, dict[str, Any]] | None = None
    ) -> None:
        beat = asyncio.create_task(self._heartbeat(live), name=f"lease:{live.id}")
        stream = live.session.run_call(text, call[0], call[1]) if call else live.session.run_turn(text)
        try:
            async for e in stream:
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
            beat.cancel()
            live.approver.close_all()
            await self._release(live)
        if self.learn and call is None:  # a person's own call teaches retrieval nothing
            self._chore(self._score(live))

    async def _heartbeat(self, live: LiveSession) -> None:
        """Renew the turn's lease while it runs; a lease lost (this server stalled past its life and
        another took the session) cancels the turn here, so it never runs in two places."""
        leases = await self.leases()
        while True:
            await asyncio.sleep(self.lease_s / 3)
            try:
                held = await leases.renew(live.id)
            except Exception as exc:  # noqa: BLE001 - the store is unreachable for now: try again
                log.warning("session %s: could not renew the turn's lease: %s", live.id, exc)
                continue
            if not held:
                log.error("session %s: the turn's lease was taken by another server; cancelling it here", live.id)
                live.session.cancel()
                return

    async def _release(self, live: LiveSession) -> None:
        try:
            await (await self.leases()).release(live.id)
        except Exception:  # it expires on its own
            log.exception("session %s: could not release the turn's lease", live.id)

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
        """An approval answer from `who` (roles are refreshed before the dispatcher judges it). An
        answer to no open request here (answered, expired, from before a restart, or for a turn
        on another server) is refused and audited."""
        await self._roles(live)
        try:
            live.approver.answer(who, frame, face)
        except HubError as refused:
            rid = str(frame.get("request_id") or "")
            error = refused
            if rid in live.routes and not live.routes[rid][1]:
                error = HubError("no-request", f"request {rid!r} belongs to a turn on another server: answer it there")
            await self._refused_answer(live, who, frame, error.message)
            raise error from None

    async def _refused_answer(self, live: LiveSession, who: Identity, frame: dict[str, Any], why: str) -> None:
        rid = str(frame.get("request_id") or "")
        asked = next((e for e in live.log if isinstance(e, ev.ApprovalRequested) and e.request_id == rid), None)
        said = "approval" if frame.get("approved") is True else "denial"
        try:
            await (await self.audit()).append(
                session_id=live.id, user=who.name, kind="refusal", tool=asked.tool if asked else "",
                args_json=json.dumps(asked.arguments, sort_keys=True) if asked else "{}",
                call_hash=str(frame.get("call_hash") or "")[:128], decision=asked.decision if asked else "",
                rule="server:approval", detail=f"{said} from {who.name} refused: {why}",
            )  # fmt: skip
        except Exception:
            log.exception("could not audit a refused answer in session %s", live.id)

    async def close(self) -> None:
        """Cancel running turns and wait for them (each ends with its TurnFinished stored)."""
        self.closing = True
        for live in self.live.values():
            live.session.cancel()
        tasks = [t for t in (*(lv.task for lv in self.live.values()), *self._chores) if t is not None and not t.done()]
        if tasks:
            await asyncio.wait(tasks, timeout=10)
        if self._follower is not None:  # after the turns: their last events still reach other servers' faces
            self._follower.cancel()
            await asyncio.wait([self._follower], timeout=5)
