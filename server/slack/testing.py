"""Slack on loopback for tests: a stand-in of the Web API that records every call and answers with
Slack's documented response payloads (and its errors), the Events API's documented request payloads
signed with Slack's v0 scheme, and a `lantern serve` with the real Slack face (bolt, the dispatcher,
the policy, the audit) on the scripted model.

Nothing here fakes slack-bolt or slack_sdk: the face's AsyncWebClient talks HTTP to the stand-in
(its base_url), and the test sends HTTP requests to the server's /slack/events as Slack would.
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import hmac
import itertools
import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from server.commands import listen
from server.testing import ServerThread

TOKEN = "xoxb-0000000000-test-token"
SIGNING_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
"""The test app's signing secret (the example value of Slack's request-signing guide)."""
TEAM = "T0LANTERN"
BOT_USER = "U0LANTERN"
CHANNEL = "C0INCIDENT"
SLACK_USERS = {"U0ALICE": "alice", "U0BOB": "bob", "U0CAROL": "carol"}
"""Slack ids of server.testing's users: bob may approve the rollback, carol may not."""


class SlackStandIn:
    """Slack's Web API on 127.0.0.1: `calls` holds every request (method, args), oldest first."""

    def __init__(self, token: str = TOKEN, channels: tuple[str, ...] = (CHANNEL, "C0OTHER")) -> None:
        self.token = token
        self.channels = set(channels)
        self.calls: list[dict[str, Any]] = []
        self.messages: dict[tuple[str, str], dict[str, Any]] = {}
        """(channel, ts) → the message as it stands (after updates)."""
        self.fail: dict[str, str] = {}
        """method → the error its next call answers with (once)."""
        self.expected_errors = 0
        """How many refused calls a test caused on purpose."""
        self.url = ""
        self._ts = itertools.count(1)
        self._lock = threading.Lock()
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def api_url(self) -> str:
        """What the face's AsyncWebClient takes as base_url."""
        return self.url + "/api/"

    def start(self) -> SlackStandIn:
        sock = listen("127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        app = Starlette(routes=[Route("/api/{method}", self._api, methods=["POST", "GET"])])
        self._server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
        server = self._server
        self._thread = threading.Thread(target=lambda: server.run(sockets=[sock]), daemon=True, name="slack-standin")
        self._thread.start()
        deadline = time.monotonic() + 20
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(10)

    # -- what the tests read --------------------------------------------------------------------------
    def of(self, method: str) -> list[dict[str, Any]]:
        """The arguments of every call of `method` so far."""
        with self._lock:
            return [c["args"] for c in self.calls if c["method"] == method]

    def errors(self) -> list[tuple[str, str]]:
        """(method, error) of every call Slack would have refused."""
        with self._lock:
            return [(c["method"], c["answer"].get("error", "")) for c in self.calls if not c["answer"].get("ok")]

    def thread(self, channel: str, thread_ts: str) -> list[dict[str, Any]]:
        """The messages of a thread as they stand now (its first message included), in order: copies,
        so a message kept by a test stays as it was when read (a replayed click replays that)."""
        with self._lock:
            msgs = [copy.deepcopy(m) for (c, _), m in self.messages.items() if c == channel]
        return sorted((m for m in msgs if m["ts"] == thread_ts or m.get("thread_ts") == thread_ts), key=_ts_key)

    async def wait(self, what: Callable[[], Any], timeout: float = 30.0) -> Any:
        """Poll until `what()` is truthy; its value (AssertionError naming the calls when time runs out)."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            got = what()
            if got:
                return got
            await asyncio.sleep(0.05)
        raise AssertionError(f"not seen within {timeout:g}s; Slack got: {[c['method'] for c in self.calls]}")

    # -- the API -------------------------------------------------------------------------------------------
    async def _api(self, request: Request) -> JSONResponse:
        method = request.path_params["method"]
        raw = await request.body()
        if request.headers.get("content-type", "").startswith("application/json"):
            args = json.loads(raw or b"{}")
        else:
            args = dict(parse_qsl(raw.decode())) | dict(request.query_params)
            for k in ("blocks", "attachments"):
                if isinstance(args.get(k), str):
                    args[k] = json.loads(args[k])
        auth = request.headers.get("authorization", "")
        with self._lock:
            if not auth:
                out = {"ok": False, "error": "not_authed"}
            elif auth != f"Bearer {self.token}":
                out = {"ok": False, "error": "invalid_auth"}
            elif method in self.fail:
                out = {"ok": False, "error": self.fail.pop(method)}
            elif method not in _METHODS:
                out = {"ok": False, "error": "unknown_method"}
            else:
                out = _METHODS[method](self, args)
            self.calls.append({"method": method, "args": args, "answer": out})
        return JSONResponse(out)  # Slack answers a failed call with HTTP 200 too: ok false and the error code

    def _next_ts(self) -> str:
        return f"{1700000000 + next(self._ts)}.{next(self._ts):06d}"


def _ts_key(m: dict[str, Any]) -> float:
    return float(m["ts"])


def _blocks_error(args: dict[str, Any]) -> str:
    """The few checks Slack itself makes on a message, answered with its error codes."""
    blocks = args.get("blocks")
    if not args.get("text") and not blocks:
        return "no_text"
    if blocks is not None and (not isinstance(blocks, list) or len(blocks) > 50):
        return "invalid_blocks"
    for b in blocks or []:
        text = b.get("text", {}).get("text", "") if isinstance(b.get("text"), dict) else ""
        if b.get("type") == "section" and len(text) > 3000 or b.get("type") == "header" and len(text) > 150:
            return "invalid_blocks"
    if len(str(args.get("text") or "")) > 40000:
        return "msg_too_long"
    return ""


def _auth_test(s: SlackStandIn, args: dict[str, Any]) -> dict[str, Any]:
    return {
        "ok": True,
        "url": "https://lantern-test.slack.com/",
        "team": "Lantern Test",
        "user": "lantern",
        "team_id": TEAM,
        "user_id": BOT_USER,
        "bot_id": "B0LANTERN",
        "is_enterprise_install": False,
    }


def _post(s: SlackStandIn, args: dict[str, Any]) -> dict[str, Any]:
    channel = str(args.get("channel") or "")
    if channel not in s.channels:
        return {"ok": False, "error": "channel_not_found"}
    bad = _blocks_error(args)
    if bad:
        return {"ok": False, "error": bad}
    ts = s._next_ts()
    msg = {"type": "message", "user": BOT_USER, "bot_id": "B0LANTERN", "ts": ts, "text": args.get("text", "")}
    msg |= {k: args[k] for k in ("blocks", "thread_ts") if k in args}
    s.messages[(channel, ts)] = msg
    return {"ok": True, "channel": channel, "ts": ts, "message": msg}


def _update(s: SlackStandIn, args: dict[str, Any]) -> dict[str, Any]:
    channel, ts = str(args.get("channel") or ""), str(args.get("ts") or "")
    if channel not in s.channels:
        return {"ok": False, "error": "channel_not_found"}
    msg = s.messages.get((channel, ts))
    if msg is None:
        return {"ok": False, "error": "message_not_found"}
    bad = _blocks_error(args)
    if bad:
        return {"ok": False, "error": bad}
    msg |= {k: args[k] for k in ("blocks", "text") if k in args}
    return {"ok": True, "channel": channel, "ts": ts, "text": msg.get("text", ""), "message": msg}


def _ephemeral(s: SlackStandIn, args: dict[str, Any]) -> dict[str, Any]:
    if str(args.get("channel") or "") not in s.channels:
        return {"ok": False, "error": "channel_not_found"}
    if not args.get("user"):
        return {"ok": False, "error": "user_not_in_channel"}
    bad = _blocks_error(args)
    return {"ok": False, "error": bad} if bad else {"ok": True, "message_ts": s._next_ts()}


_METHODS: dict[str, Callable[[SlackStandIn, dict[str, Any]], dict[str, Any]]] = {
    "auth.test": _auth_test,
    "chat.postMessage": _post,
    "chat.update": _update,
    "chat.postEphemeral": _ephemeral,
}


# -- what Slack sends ----------------------------------------------------------------------------------------


def signature(body: str, timestamp: str, secret: str = SIGNING_SECRET) -> str:
    """Slack's v0 request signature: HMAC-SHA256 of `v0:TIMESTAMP:BODY` under the signing secret."""
    digest = hmac.new(secret.encode(), f"v0:{timestamp}:{body}".encode(), hashlib.sha256).hexdigest()
    return f"v0={digest}"


def app_mention(user: str, text: str, channel: str = CHANNEL, thread_ts: str | None = None) -> tuple[str, str]:
    """An Events API event_callback carrying an app_mention (JSON body, its content type)."""
    ts = f"{time.time():.6f}"
    event: dict[str, Any] = {
        "type": "app_mention", "user": user, "text": f"<@{BOT_USER}> {text}", "ts": ts, "channel": channel,
        "event_ts": ts, "team": TEAM,
    }  # fmt: skip
    if thread_ts:
        event["thread_ts"] = thread_ts
    body = {
        "token": "legacy-verification-token", "team_id": TEAM, "api_app_id": "A0LANTERN", "event": event,
        "type": "event_callback", "event_id": f"Ev{int(time.time() * 1e6)}", "event_time": int(time.time()),
        "authorizations": [{"enterprise_id": None, "team_id": TEAM, "user_id": BOT_USER, "is_bot": True,
                            "is_enterprise_install": False}],
        "is_ext_shared_channel": False, "event_context": "4-test",
    }  # fmt: skip
    return json.dumps(body), "application/json"


def slash_command(user: str, text: str, channel: str = CHANNEL, command: str = "/lantern") -> tuple[str, str]:
    """A slash command's form post."""
    form = {
        "token": "legacy-verification-token", "team_id": TEAM, "team_domain": "lantern-test",
        "channel_id": channel, "channel_name": "incidents", "user_id": user, "user_name": user.lower(),
        "command": command, "text": text, "api_app_id": "A0LANTERN", "is_enterprise_install": "false",
        "response_url": "https://hooks.slack.com/commands/T0LANTERN/1/test", "trigger_id": "1.2.test",
    }  # fmt: skip
    return urlencode(form), "application/x-www-form-urlencoded"


def block_actions(user: str, message: dict[str, Any], action_id: str, channel: str = CHANNEL) -> tuple[str, str]:
    """A block_actions interaction (a button click on `message`, as the stand-in keeps it), form-posted
    as `payload=JSON`; the button is found in the message's blocks by its action id."""
    button = next(
        e
        for b in message.get("blocks", [])
        if b.get("type") == "actions"
        for e in b["elements"]
        if e.get("action_id") == action_id
    )
    block = next(b for b in message["blocks"] if b.get("type") == "actions" and button in b["elements"])
    payload = {
        "type": "block_actions",
        "user": {"id": user, "username": user.lower(), "name": user.lower(), "team_id": TEAM},
        "api_app_id": "A0LANTERN", "token": "legacy-verification-token",
        "container": {"type": "message", "message_ts": message["ts"], "channel_id": channel,
                      "is_ephemeral": False, "thread_ts": message.get("thread_ts")},
        "trigger_id": "1.2.click", "team": {"id": TEAM, "domain": "lantern-test"},
        "channel": {"id": channel, "name": "incidents"}, "message": message,
        "response_url": "https://hooks.slack.com/actions/T0LANTERN/1/test",
        "actions": [{"action_id": action_id, "block_id": block.get("block_id", ""), "text": button["text"],
                     "value": button.get("value", ""), "style": button.get("style"), "type": "button",
                     "action_ts": f"{time.time():.6f}"}],
    }  # fmt: skip
    return urlencode({"payload": json.dumps(payload)}), "application/x-www-form-urlencoded"


async def deliver(
    url: str, body_and_type: tuple[str, str], *, secret: str = SIGNING_SECRET, timestamp: str | None = None
) -> httpx.Response:
    """POST a payload to the server's /slack/events, signed as Slack signs it (with `secret`)."""
    body, ctype = body_and_type
    ts = timestamp or str(int(time.time()))
    headers = {"content-type": ctype, "x-slack-request-timestamp": ts, "x-slack-signature": signature(body, ts, secret)}
    async with httpx.AsyncClient(timeout=30, trust_env=False) as http:
        return await http.post(url + "/slack/events", content=body.encode(), headers=headers)


# -- sessions ----------------------------------------------------------------------------------------------------


def slack_sessions(
    executed: list[dict[str, Any]], ttl_s: float = 300.0, script: list[dict[str, Any]] | None = None
) -> Any:
    """server.testing's scripted sessions (the payments incident, the team policy, the real
    dispatcher and audit) with the Kubernetes pack's checks reading the pods, so the thread shows
    findings: `get_pods` answers as the Python-client pack does (a pods list with last_terminated)."""
    from console.testing import INCIDENT_SCRIPT, incident_tools
    from engine import events as ev
    from engine.diagnose import CheckSet
    from engine.dispatch import Dispatcher
    from engine.loop import Session
    from engine.policy.audit import AuditLog
    from engine.testing import ScriptedModel
    from engine.toolbox import Toolbox
    from engine.tools import python_tool
    from server.testing import team_policy
    from skills.kube.checks import KubernetesChecks

    def get_pods(namespace: str) -> dict[str, Any]:
        """List pods in a namespace."""
        return {
            "namespace": namespace,
            "pods": [
                {"name": "api-7d9f8b6c5-x2k4p", "ready": "0/1", "status": "CrashLoopBackOff", "restarts": 37,
                 "last_terminated": "OOMKilled (exit 137)"},
                {"name": "worker-5c6d7e8f9-abcde", "ready": "1/1", "status": "Running", "restarts": 0},
            ],
        }  # fmt: skip

    async def factory(cfg: Any, *, store: Any, approver: Any, session_id: str | None = None) -> Session:
        past = await store.events(session_id) if session_id else []
        dispatcher = Dispatcher(
            team_policy(), await AuditLog.open(store.db), user=cfg.user, kube=lambda: (None, "payments"),
            approval_ttl_s=ttl_s,
        )  # fmt: skip
        tools = [python_tool(get_pods), *(t for t in incident_tools(executed) if t.name != "get_pods")]
        model = ScriptedModel(list(script or INCIDENT_SCRIPT), chunk=12)
        session = Session(
            model, Toolbox(tools, dispatcher=dispatcher), session_id=session_id, sink=store, approver=approver,
            events=past, checks=CheckSet(makers=(KubernetesChecks,)),
        )  # fmt: skip
        await store.create_session(session.id, model=model.name)
        await session.emit(ev.SessionStarted, model=model.name, resumed=bool(past))
        return session

    return factory


# -- the server -------------------------------------------------------------------------------------------------


class SlackServerThread(ServerThread):
    """server.testing's server, with a handle on its event loop to install the Slack face and run the hub."""

    def __init__(self, path: Path, factory: Any) -> None:
        super().__init__(path, factory)
        self.loop: asyncio.AbstractEventLoop | None = None
        self.face: Any = None

    async def _main(self) -> None:
        self.loop = asyncio.get_running_loop()
        await super()._main()

    async def run(self, coro: Any, timeout: float = 60) -> Any:
        """Run `coro` on the server's loop and wait for it from the caller's."""
        assert self.loop is not None
        return await asyncio.wait_for(asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, self.loop)), timeout)

    async def install(self, standin: SlackStandIn, *, users: dict[str, str] | None = None) -> Any:
        """The Slack face, as `lantern serve` installs it, talking to `standin`."""
        from server.slack.face import SlackFace

        async def make() -> Any:
            assert self.hub is not None
            face = SlackFace(
                self.hub, token=standin.token, signing_secret=SIGNING_SECRET, channel=CHANNEL,
                users=SLACK_USERS if users is None else users, api_url=standin.api_url, update_every_s=0,
            )  # fmt: skip
            await face.start()
            self.hub.watchers.append(face)
            return face

        self.face = await self.run(make())
        return self.face
