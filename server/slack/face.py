"""The Slack face: a page's investigation in a channel thread, continued by `@lantern …`, started by
`/lantern …`, with approvals answered by buttons through the same bound, expiring, audited path as
every face.

```
Slack ──POST /slack/events──▶ bolt (AsyncApp: signature check, url_verification, ack)
   app_mention ───▶ on_mention ──▶ hub.send(live, linked user, text)      (the thread's session)
   /lantern ──────▶ on_command ──▶ a new thread + session, hub.send
   block_actions ─▶ on_click ────▶ hub.answer(live, linked user, {request_id, call_hash, approved})
                                     └▶ the dispatcher judges it; a refusal comes back to the click
hub.announce(page) ─▶ page_opened ─▶ chat.postMessage (the page) ─▶ ThreadFace: attached to the
                                     session, renders its events into the thread (server.slack.render)
                    page_resolved ─▶ the handoff in the thread
```

Every refusal (an unlinked Slack user, a click the dispatcher refuses, a click on a request that is
already answered or expired, a request with a bad signature) is a row of the audit log and is told
to the clicker in the thread (an ephemeral message, seen by them alone).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import re
from collections import deque
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from engine import events as ev
from engine.policy.audit import AuditLog
from server.hub import Hub, HubError, LiveSession, Subscriber
from server.identity import Identity
from server.pages import Page
from server.slack import blocks as bk
from server.slack import render
from server.slack.threads import Threads

log = logging.getLogger("lantern.slack")

SLACK_API = "https://slack.com/api/"
FACE = Identity("slack-face", ())
"""Who the face attaches as (it only reads; every message and answer carries the Slack user's identity)."""
SENT_KEPT = 500
MENTION = re.compile(r"<@[A-Z0-9]+(?:\|[^>]*)?>\s*")


class SlackFace:
    """The Slack face of one server: the hub's page watcher and the bolt app behind /slack/events."""

    def __init__(
        self,
        hub: Hub,
        *,
        token: str,
        signing_secret: str,
        channel: str,
        users: dict[str, str] | None = None,
        api_url: str | None = None,
        update_every_s: float = 1.0,
    ) -> None:
        from slack_bolt.adapter.starlette.async_handler import AsyncSlackRequestHandler
        from slack_bolt.async_app import AsyncApp
        from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
        from slack_sdk.web.async_client import AsyncWebClient

        self.hub = hub
        self.channel = channel
        """Where pages are posted (a channel id, or a name the bot is in)."""
        self.users = dict(users or {})
        """Slack user id → Lantern user, from the config (links made with `lantern serve users link-slack` win)."""
        self.update_every_s = update_every_s
        """At most one update of a turn's status message this often (the rest are coalesced)."""
        self.client = AsyncWebClient(token=token, base_url=api_url or SLACK_API)
        self.client.retry_handlers.append(AsyncRateLimitErrorRetryHandler(max_retry_count=2))
        self.app = AsyncApp(client=self.client, signing_secret=signing_secret, name="lantern", logger=log)
        self.handler = AsyncSlackRequestHandler(self.app)
        self.app.event("app_mention")(self.on_mention)
        self.app.command("/lantern")(self.on_command)
        self.app.action(render.APPROVE)(self.on_click)
        self.app.action(render.DENY)(self.on_click)
        self.app.error(self.on_error)
        self.faces: dict[str, ThreadFace] = {}
        """Session id → its thread face."""
        self.threads: Threads | None = None
        self.audit: AuditLog | None = None
        self.sent: deque[dict[str, Any]] = deque(maxlen=SENT_KEPT)
        """The latest payloads sent (method and arguments), newest last: what the tests check against the limits."""

    async def start(self) -> str:
        """Open the face's tables; one line saying who the bot is (or why Slack did not say)."""
        self.threads = await Threads.open(self.hub.store)
        self.audit = await AuditLog.open(self.hub.store)
        try:
            me = await self.client.auth_test()
        except Exception as exc:  # noqa: BLE001 - Slack unreachable now is not a reason not to serve
            return f"Slack did not answer auth.test ({type(exc).__name__}: {exc}); pages will be posted when it does"
        return f"Slack: posting as @{me.get('user')} in {me.get('team')}, pages to {self.channel}"

    # -- HTTP ---------------------------------------------------------------------------------------
    async def endpoint(self, request: Request) -> Response:
        """/slack/events: events, slash commands and interactions, through bolt (which checks the
        signature); a request it refuses for its signature is audited here."""
        response = await self.handler.handle(request)
        if response.status_code == 401:
            client = f"{request.client.host}:{request.client.port}" if request.client else "?"
            await self._audit(
                "", "(unauthenticated)", "slack:request", {"path": request.url.path, "client": client}, "",
                "request refused: bad or missing Slack signature (X-Slack-Signature, X-Slack-Request-Timestamp)",
            )  # fmt: skip
        return response

    # -- sending ------------------------------------------------------------------------------------
    async def send(self, method: str, **kw: Any) -> dict[str, Any] | None:
        """Call a Web API method after checking its blocks against Slack's limits; a payload that
        breaks them is sent as text naming the problem (never dropped). None when Slack said no."""
        from slack_sdk.errors import SlackApiError

        found = bk.problems({k: kw[k] for k in ("text", "blocks") if k in kw})
        if found:
            log.error("a %s payload breaks Block Kit limits: %s", method, "; ".join(found))
            kw["blocks"] = [
                bk.section(bk.clip(f"⚠️ This message did not fit Slack's limits ({'; '.join(found)}).", 3000))
            ]
            kw["text"] = bk.clip(str(kw.get("text") or "Lantern"), bk.MESSAGE_TEXT)
        self.sent.append({"method": method, **kw})
        try:
            res = await getattr(self.client, method)(**kw)
        except SlackApiError as exc:
            log.warning("Slack %s failed: %s", method, exc.response.get("error"))
            return None
        except Exception as exc:  # noqa: BLE001 - Slack unreachable: the session goes on without the thread
            log.warning("Slack %s failed: %s: %s", method, type(exc).__name__, exc)
            return None
        return dict(res.data) if isinstance(res.data, dict) else None

    async def tell(self, channel: str, user: str, thread_ts: str | None, text: str) -> None:
        """A message in the thread that only `user` sees."""
        kw: dict[str, Any] = {"channel": channel, "user": user, "text": bk.clip(text, bk.MESSAGE_TEXT)}
        kw["blocks"] = [bk.section(bk.esc(bk.clip(text, 2900)))]
        if thread_ts:
            kw["thread_ts"] = thread_ts
        await self.send("chat_postEphemeral", **kw)

    async def _audit(
        self, session_id: str, user: str, tool: str, args: dict[str, Any], call_hash: str, detail: str
    ) -> None:
        if self.audit is None:
            self.audit = await AuditLog.open(self.hub.store)
        try:
            await self.audit.append(
                session_id=session_id, user=user, kind="refusal", tool=tool, args_json=json.dumps(args, default=str),
                call_hash=call_hash, decision="refused", rule="slack", detail=detail,
            )  # fmt: skip
        except Exception:
            log.exception("could not audit a Slack refusal")

    # -- who ------------------------------------------------------------------------------------------
    async def identify(self, slack_user: str) -> Identity | None:
        """The Lantern user a Slack user is: a link in the store, else the config's map; None for nobody."""
        if not slack_user:
            return None
        who = await self.hub.users.linked("slack", slack_user)
        if who is not None:
            return who
        name = self.users.get(slack_user)
        if not name:
            return None
        return await self.hub.users.get(name) or Identity(name, ())

    async def unknown(self, slack_user: str, channel: str, thread_ts: str | None, what: str, sid: str = "") -> None:
        """Refuse someone the server does not know (audited, told to them alone)."""
        await self._audit(sid, f"slack:{slack_user}", "slack:" + what, {"slack_user": slack_user}, "",
                          f"{what} from Slack user {slack_user} refused: not linked to a Lantern user")  # fmt: skip
        await self.tell(channel, slack_user, thread_ts, unknown_text(slack_user))

    # -- threads ----------------------------------------------------------------------------------------
    def thread_face(self, live: LiveSession, channel: str, thread_ts: str, *, replay: bool) -> ThreadFace:
        """The face rendering `live` into a thread (made and attached on first use)."""
        face = self.faces.get(live.id)
        if face is None or face.live is not live:
            face = ThreadFace(self, live, channel, thread_ts, replay=replay)
            self.faces[live.id] = face
        return face

    async def page_opened(self, live: LiveSession, page: Page) -> None:
        """Post the page to the channel and work in its thread."""
        res = await self.send("chat_postMessage", channel=self.channel, **render.page_message(page, live.id))
        if res is None:
            return
        channel, ts = str(res.get("channel") or self.channel), str(res["ts"])
        assert self.threads is not None
        await self.threads.bind(channel, ts, live.id)
        self.thread_face(live, channel, ts, replay=True)

    async def page_resolved(self, live: LiveSession, page: Page) -> None:
        """Mark the page resolved and post the handoff in its thread."""
        from engine import handoff

        assert self.threads is not None
        face = self.faces.get(live.id)
        where = (face.channel, face.thread_ts) if face else await self.threads.thread(live.id)
        msg = render.page_message(page, live.id, resolved=True)
        if where is None:
            res = await self.send("chat_postMessage", channel=self.channel, **msg)
            if res is None:
                return
            where = (str(res.get("channel") or self.channel), str(res["ts"]))
            await self.threads.bind(*where, live.id)
        else:
            await self.send("chat_update", channel=where[0], ts=where[1], **msg)
        if face is not None:
            await face.settled()
        h = await handoff.load(self.hub.store, live.id)
        await self.send("chat_postMessage", channel=where[0], thread_ts=where[1], **render.handoff_message(h))

    # -- what Slack sends ---------------------------------------------------------------------------------
    async def on_mention(self, event: dict[str, Any]) -> None:
        """`@lantern …`: in a thread that carries a session, continue it; elsewhere, start one
        threaded on the mention."""
        user, channel = str(event.get("user") or ""), str(event.get("channel") or "")
        thread_ts = str(event.get("thread_ts") or event.get("ts") or "")
        text = MENTION.sub("", str(event.get("text") or "")).strip()
        who = await self.identify(user)
        if who is None:
            await self.unknown(user, channel, thread_ts, "message")
            return
        assert self.threads is not None
        sid = await self.threads.session(channel, thread_ts)
        try:
            if sid is None:
                live = await self.hub.create()
                await self.threads.bind(channel, thread_ts, live.id)
                self.thread_face(live, channel, thread_ts, replay=True)
            else:
                live = await self.hub.get(sid)
                self.thread_face(live, channel, thread_ts, replay=False)
            await self.hub.send(live, who, text)
        except HubError as exc:
            await self.tell(channel, user, thread_ts, f"Lantern did not start that: {exc.message}")

    async def on_command(self, ack: Any, command: dict[str, Any]) -> None:
        """`/lantern QUESTION`: a new investigation in a thread of the channel it was typed in."""
        user, channel = str(command.get("user_id") or ""), str(command.get("channel_id") or "")
        text = str(command.get("text") or "").strip()
        who = await self.identify(user)
        if who is None:
            await ack(text=unknown_text(user))
            await self._audit("", f"slack:{user}", "slack:command", {"slack_user": user, "channel": channel}, "",
                              f"/lantern from Slack user {user} refused: not linked to a Lantern user")  # fmt: skip
            return
        if not text:
            await ack(
                text="Usage: `/lantern QUESTION` starts an investigation in a thread here; `@lantern …` in that thread continues it."
            )
            return
        await ack(text=f"Starting an investigation as {who.name}; it is in the thread below.")
        try:
            live = await self.hub.create()
        except HubError as exc:
            await self.tell(channel, user, None, f"Lantern did not start that: {exc.message}")
            return
        res = await self.send("chat_postMessage", channel=channel, **render.started_message(who.name, text, live.id))
        if res is None:
            return
        ts = str(res["ts"])
        assert self.threads is not None
        await self.threads.bind(str(res.get("channel") or channel), ts, live.id)
        self.thread_face(live, str(res.get("channel") or channel), ts, replay=True)
        try:
            await self.hub.send(live, who, text)
        except HubError as exc:
            await self.tell(channel, user, ts, f"Lantern did not start that: {exc.message}")

    async def on_click(self, ack: Any, body: dict[str, Any], action: dict[str, Any]) -> None:
        """Approve / Deny: the clicker's linked identity answers the request the button is bound to."""
        await ack()
        click = Click.of(body, action)
        who = await self.identify(click.user)
        if who is None:
            await self.unknown(click.user, click.channel, click.thread_ts, "approval", click.session)
            return
        live = self.hub.live.get(click.session)
        request = _request(live, click.request_id)
        if live is None or request is None:
            await self.refuse(click, who, None, "no such approval request is open on this server")
            return
        frame = {"request_id": click.request_id, "call_hash": click.call_hash, "approved": click.approved,
                 "reason": f"from Slack ({click.user})"}  # fmt: skip
        clicker = Subscriber(who)
        try:
            await self.hub.answer(live, who, frame, clicker)
        except HubError as exc:
            await self.refuse(click, who, request, closed_why(live, request) or exc.message)
            return
        face = self.faces.get(live.id)
        if face is not None:
            face.watch_click(click, clicker)

    async def refuse(self, click: Click, who: Identity | None, request: ev.ApprovalRequested | None, why: str) -> None:
        """A click that cannot count: audited, and told to the clicker."""
        verb = "approval" if click.approved else "denial"
        tool = request.tool if request else "slack:approval"
        args = dict(request.arguments) if request else {"request_id": click.request_id}
        name = who.name if who else f"slack:{click.user}"
        await self._audit(click.session, name, tool, args, click.call_hash,
                          f"{verb} from {name} (Slack {click.user}) refused: {why}")  # fmt: skip
        await self.tell(click.channel, click.user, click.thread_ts, f"Your {verb} did not count: {why}")

    async def on_error(self, error: Exception, body: dict[str, Any]) -> None:
        log.error("the Slack face failed on a %s: %s: %s", body.get("type"), type(error).__name__, error)


def unknown_text(slack_user: str) -> str:
    return (
        f"Lantern does not know you (Slack user {slack_user}): an admin links you with "
        f"`lantern serve users link-slack NAME {slack_user}`."
    )


class Click:
    """One button click, as Slack's block_actions payload carries it."""

    def __init__(self, user: str, channel: str, thread_ts: str, action_id: str, value: str) -> None:
        self.user, self.channel, self.thread_ts = user, channel, thread_ts
        self.approved = action_id == render.APPROVE
        try:
            bound = json.loads(value)
            self.session, self.request_id, self.call_hash = str(bound["s"]), str(bound["r"]), str(bound["h"])
        except (ValueError, TypeError, KeyError):
            self.session = self.request_id = self.call_hash = ""

    @classmethod
    def of(cls, body: dict[str, Any], action: dict[str, Any]) -> Click:
        message = body.get("message") or {}
        container = body.get("container") or {}
        channel = (body.get("channel") or {}).get("id") or container.get("channel_id") or ""
        thread = message.get("thread_ts") or container.get("thread_ts") or container.get("message_ts") or ""
        user = (body.get("user") or {}).get("id") or ""
        return cls(str(user), str(channel), str(thread), str(action.get("action_id")), str(action.get("value") or ""))


def _request(live: LiveSession | None, request_id: str) -> ev.ApprovalRequested | None:
    if live is None or not request_id:
        return None
    return next((e for e in live.log if isinstance(e, ev.ApprovalRequested) and e.request_id == request_id), None)


def closed_why(live: LiveSession, request: ev.ApprovalRequested) -> str:
    """Why a request takes no more answers: already answered (by whom), or expired ('' if neither shows)."""
    done = next(
        (e for e in live.log if isinstance(e, ev.ApprovalResolved) and e.request_id == request.request_id), None
    )
    expired = request.expires_at is not None and ev.utcnow() > request.expires_at
    when = f"{request.expires_at.astimezone(dt.UTC):%H:%M:%S} UTC" if request.expires_at else ""
    if done is not None and done.by != "engine":
        return f"the request was already {'approved' if done.approved else 'denied'} by {done.by}"
    if expired or (done is not None and done.reason == "no answer"):
        return f"the request expired at {when} unanswered, so the call was not run"
    if done is not None:
        return f"the request was already closed: {done.reason or 'denied'}"
    return ""


class ThreadFace:
    """One session rendered into one thread: attached to the session like any face, it posts a
    status message per turn (updated in place, at most every `update_every_s`), each approval
    request with its buttons, and each answer."""

    def __init__(self, face: SlackFace, live: LiveSession, channel: str, thread_ts: str, *, replay: bool) -> None:
        self.face, self.live, self.channel, self.thread_ts = face, live, channel, thread_ts
        history, self.sub = live.attach(FACE)
        if not replay and history:
            self.sub.last_seq = history[-1].seq  # a thread that already showed these: only what follows
        self.history = history if replay else []
        self.turns: dict[int, render.TurnView] = {}
        self.status: dict[int, str] = {}
        """turn → ts of its status message."""
        self.dirty: set[int] = set()
        self.approvals: dict[str, tuple[str, ev.ApprovalRequested]] = {}
        """request id → (ts of its message, the request)."""
        self.clicks: dict[str, list[Subscriber]] = {}
        self.idle = asyncio.Event()
        self.task = asyncio.create_task(self.run(), name=f"slack:{live.id}")

    async def settled(self, timeout: float = 10.0) -> None:
        """Wait until everything the session emitted so far is in the thread."""
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        while not (self.sub.queue.empty() and self.idle.is_set()) and loop.time() < end:
            await asyncio.sleep(0.02)

    async def run(self) -> None:
        try:
            await self._run()
        except Exception:
            log.exception("the Slack thread of session %s stopped", self.live.id)
            self.live.detach(self.sub)

    async def _run(self) -> None:
        for e in self.history:
            if self.sub.fresh(e):
                await self._see(e)
        await self._flush()
        while True:
            if self.sub.queue.empty():
                self.idle.set()
            item = await self.sub.queue.get()
            self.idle.clear()
            batch = [item]
            while not self.sub.queue.empty():
                batch.append(self.sub.queue.get_nowait())
            for it in batch:
                if it is None:  # fell too far behind: attach again, catching up from the log
                    self.live.detach(self.sub)
                    last = self.sub.last_seq
                    history, self.sub = self.live.attach(FACE)
                    self.sub.last_seq = last
                    for e in history:
                        if self.sub.fresh(e):
                            await self._see(e)
                elif not isinstance(it, dict) and self.sub.fresh(it):
                    await self._see(it)
            await self._flush()
            if self.face.update_every_s > 0:
                await asyncio.sleep(self.face.update_every_s)

    async def _see(self, e: Any) -> None:
        try:
            await self.see(e)
        except Exception:
            log.exception("the Slack thread of session %s could not show a %s", self.live.id, type(e).__name__)

    async def see(self, e: Any) -> None:
        """Render one event into the thread."""
        turn = getattr(e, "turn", 0)
        if not turn:
            return
        view = self.turns.get(turn)
        if view is None:
            view = self.turns[turn] = render.TurnView(self.live.id, turn, asked_by=self.live.asked_by)
        if view.see(e):
            self.dirty.add(turn)
        if isinstance(e, ev.ApprovalRequested):
            await self._flush()
            res = await self.post(render.approval_message(e))
            if res is not None:
                self.approvals[e.request_id] = (str(res["ts"]), e)
        elif isinstance(e, ev.ApprovalResolved):
            ts, req = self.approvals.get(e.request_id, ("", None))
            if req is not None:
                await self.face.send("chat_update", channel=self.channel, ts=ts, **render.approval_message(req, e))
            self._settle(e.request_id)
        elif isinstance(e, ev.AssistantMessage) and not e.tool_calls and e.text.strip():
            await self._flush()
            await self.post(render.answer_message(e.text, self.live.id, turn))
        elif isinstance(e, ev.TurnFinished):
            for rid in list(self.clicks):
                self._settle(rid)

    async def post(self, msg: dict[str, Any]) -> dict[str, Any] | None:
        return await self.face.send("chat_postMessage", channel=self.channel, thread_ts=self.thread_ts, **msg)

    async def _flush(self) -> None:
        """Post or update the status message of every turn that changed."""
        for turn in sorted(self.dirty):
            msg = self.turns[turn].message()
            ts = self.status.get(turn)
            if ts is None:
                res = await self.post(msg)
                if res is not None:
                    self.status[turn] = str(res["ts"])
            else:
                await self.face.send("chat_update", channel=self.channel, ts=ts, **msg)
        self.dirty.clear()

    # -- clicks ---------------------------------------------------------------------------------------
    def watch_click(self, click: Click, clicker: Subscriber) -> None:
        """Tell the clicker if the dispatcher refuses their answer (it has audited it)."""
        self.clicks.setdefault(click.request_id, []).append(clicker)
        asyncio.create_task(self._click_outcome(click, clicker), name=f"slack-click:{click.request_id}")

    def _settle(self, request_id: str) -> None:
        for clicker in self.clicks.pop(request_id, []):
            clicker.offer({"frame": "settled"})

    async def _click_outcome(self, click: Click, clicker: Subscriber) -> None:
        item = await clicker.queue.get()
        if not isinstance(item, dict) or item.get("frame") != "refused":
            return
        why = str(item.get("reason") or "refused")
        verb = "approval" if click.approved else "denial"
        if why.startswith("already "):
            # an answer still queued when another settled the request: the dispatcher never judged it
            req = _request(self.live, click.request_id)
            await self.face.refuse(click, clicker.identity, req, f"the request was {why}")
            return
        await self.face.tell(click.channel, click.user, click.thread_ts, f"Your {verb} did not count: {why}")
