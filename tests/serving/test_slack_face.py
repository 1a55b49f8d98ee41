"""The Slack face against a loopback stand-in of Slack's Web API, with Slack's documented Events API
payloads signed by a test signing secret: the real bolt app runs in the real server, sessions run the
scripted model through the real dispatcher, policy and audit."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from console.testing import INCIDENT_SCRIPT
from engine import events as ev
from server.identity import Identity
from server.pages import Page
from server.slack import blocks as bk
from server.slack import render
from server.slack.testing import (
    CHANNEL,
    SlackServerThread,
    SlackStandIn,
    app_mention,
    block_actions,
    deliver,
    slack_sessions,
    slash_command,
)

PAGER = Identity("alertmanager", ("pager",))
PAGE = Page(
    source="alertmanager",
    group_key='{}:{alertname="KubeContainerOOMKilled"}',
    status="firing",
    title="KubeContainerOOMKilled: payments/api",
    labels={"alertname": "KubeContainerOOMKilled", "severity": "critical", "namespace": "payments"},
    annotations={"summary": "Container api in payments was OOM killed 37 times in the last hour."},
    runbook_url="https://runbooks.example.org/oom",
)
FOLLOW_UP = {"text": "The api runs on revision 13 again; its pods are Running with 0 restarts since."}


@pytest.fixture
def executed() -> list[dict[str, Any]]:
    return []


@pytest.fixture
def slack():
    s = SlackStandIn().start()
    yield s
    s.stop()
    assert len(s.errors()) == s.expected_errors, s.errors()  # Slack refused nothing the face sent


def _stop(server: SlackServerThread) -> None:
    """Stop the server; every payload its Slack face sent fit Slack's limits."""
    server.stop()
    for p in server.face.sent if server.face is not None else ():
        assert bk.problems(p) == [], (p["method"], bk.problems(p))


def _serve(tmp_path, executed, slack, ttl_s=300.0, script=None):
    script = script or [*INCIDENT_SCRIPT, FOLLOW_UP]
    return SlackServerThread(tmp_path / "server.db", slack_sessions(executed, ttl_s, script)).start()


@pytest.fixture
def server(tmp_path, executed, slack):
    s = _serve(tmp_path, executed, slack)
    yield s
    _stop(s)


async def _page(server: SlackServerThread, slack: SlackStandIn) -> tuple[Any, str]:
    """A page opens a session; the pager starts its first turn. Returns the live session and the thread ts."""
    await server.install(slack)
    hub = server.hub
    assert hub is not None

    async def go() -> Any:
        live = await hub.create()
        await hub.announce(live, PAGE)
        await hub.send(live, PAGER, f"{PAGE.title}: {PAGE.annotations['summary']}")
        return live

    live = await server.run(go())
    root = await slack.wait(lambda: slack.of("chat.postMessage"))
    return live, _ts_of_root(slack, root[0])


def _ts_of_root(slack: SlackStandIn, first: dict[str, Any]) -> str:
    return next(ts for (c, ts), m in slack.messages.items() if c == CHANNEL and m["text"] == first["text"])


def _approval(slack: SlackStandIn, thread: str) -> dict[str, Any] | None:
    return next(
        (m for m in slack.thread(CHANNEL, thread) if any(b.get("type") == "actions" for b in m.get("blocks", []))),
        None,
    )


def _texts(message: dict[str, Any]) -> str:
    out = [message.get("text", "")]
    for b in message.get("blocks", []):
        for t in [b.get("text"), *(b.get("elements") or []), *(b.get("fields") or [])]:
            if isinstance(t, dict) and isinstance(t.get("text"), str):
                out.append(t["text"])
            elif isinstance(t, dict) and isinstance(t.get("text"), dict):
                out.append(t["text"]["text"])
    return "\n".join(out)


async def _audit(server: SlackServerThread, kind: str = "refusal") -> list[Any]:
    from engine.policy.audit import AuditLog

    async def rows() -> list[Any]:
        assert server.hub is not None
        return [r for r in await (await AuditLog.open(server.hub.store)).rows() if r.kind == kind]

    return await server.run(rows())


def _ephemerals(slack: SlackStandIn, user: str) -> list[str]:
    return [a["text"] for a in slack.of("chat.postEphemeral") if a.get("user") == user]


async def _click(server, slack, thread, user, action=render.APPROVE, message=None):
    message = message or await slack.wait(lambda: _approval(slack, thread))
    r = await deliver(server.url, block_actions(user, message, action))
    assert r.status_code == 200, r.text
    return message


async def test_a_page_is_a_thread_with_its_findings_an_approval_by_button_the_answer_and_the_handoff(
    server, slack, executed
):
    live, thread = await _page(server, slack)
    root = slack.messages[(CHANNEL, thread)]
    assert "KubeContainerOOMKilled: payments/api" in _texts(root) and live.id in _texts(root)
    assert "runbooks.example.org/oom" in _texts(root)

    approval = await slack.wait(lambda: _approval(slack, thread))
    text = _texts(approval)
    assert "rollback_deployment" in text and "org/rollback" in text
    assert "-            memory: 128Mi" in text and "+            memory: 512Mi" in text  # the dry-run diff
    assert "rollout undo deployment/api --to-revision=14" in text  # the way back
    status = slack.thread(CHANNEL, thread)[1]
    assert status["thread_ts"] == thread
    st = _texts(status)
    assert "oom_killed" in st and "pod api-7d9f8b6c5-x2k4p: last terminated OOMKilled" in st  # finding + evidence
    steps = [b for b in status["blocks"] if b["type"] == "context" and "get_pods" in b["elements"][0]["text"]]
    assert len(steps) == 1  # one context line for the step, not a message per call
    assert not executed

    await _click(server, slack, thread, "U0BOB", message=approval)
    await slack.wait(lambda: executed)
    assert executed == [{"tool": "rollback_deployment", "name": "api", "namespace": "payments", "revision": 13}]
    answer = await slack.wait(
        lambda: next((m for m in slack.thread(CHANNEL, thread) if "Root cause" in _texts(m)), None)
    )
    assert "*Root cause*" in _texts(answer) and "*128Mi*" in _texts(answer)  # Markdown as mrkdwn
    settled = slack.messages[(CHANNEL, approval["ts"])]
    assert "Approved by *bob*" in _texts(settled) and not any(b["type"] == "actions" for b in settled["blocks"])
    await slack.wait(lambda: "Answered" in _texts(slack.thread(CHANNEL, thread)[1]))
    approvals = [r for r in await _audit(server, "approval") if r.session_id == live.id]
    assert [r.detail for r in approvals] == ["by bob: from Slack (U0BOB)"]

    async def resolve() -> None:
        assert server.hub is not None
        await server.hub.announce(live, Page(**{**PAGE.__dict__, "status": "resolved"}))

    await server.run(resolve())
    handoff = await slack.wait(
        lambda: next((m for m in slack.thread(CHANNEL, thread) if m["text"].startswith("Handoff")), None)
    )
    ht = _texts(handoff)
    assert "ran, approved by bob" in ht and "oom_killed" in ht and f"lantern handoff {live.id}" in ht
    assert "Resolved" in slack.messages[(CHANNEL, thread)]["text"]
    posts = [a for a in slack.of("chat.postMessage") if a.get("thread_ts") == thread]
    assert len(posts) == 4  # status, approval, answer, handoff: the rest are updates in place
    assert {m["thread_ts"] for m in slack.thread(CHANNEL, thread) if m["ts"] != thread} == {thread}


async def test_clicks_that_cannot_count_are_refused_in_the_thread_and_audited(server, slack, executed):
    live, thread = await _page(server, slack)
    approval = await _click(server, slack, thread, "U0CAROL")  # linked, but may not approve the rollback
    said = await slack.wait(lambda: _ephemerals(slack, "U0CAROL"))
    assert "did not count" in said[0] and "carol may not approve this" in said[0]
    await _click(server, slack, thread, "U0NOBODY", message=approval)  # no Lantern user
    said = await slack.wait(lambda: _ephemerals(slack, "U0NOBODY"))
    assert "link-slack NAME U0NOBODY" in said[0]
    assert not executed

    await _click(server, slack, thread, "U0BOB", message=approval)
    await slack.wait(lambda: executed)
    await _click(server, slack, thread, "U0BOB", message=approval)  # a replay of the click that counted
    said = await slack.wait(lambda: _ephemerals(slack, "U0BOB"))
    assert "already approved by bob" in said[0]
    assert len(executed) == 1

    details = [r.detail for r in await _audit(server)]
    assert any("from carol refused: carol may not approve this" in d for d in details)
    assert any("U0NOBODY refused: not linked to a Lantern user" in d for d in details)
    assert any("approval from bob (Slack U0BOB) refused: the request was already approved by bob" in d for d in details)


@pytest.fixture
def expiring(tmp_path, executed, slack):
    s = _serve(tmp_path, executed, slack, ttl_s=1.0)
    yield s
    _stop(s)


async def test_a_click_after_the_request_expired_is_refused_and_audited(expiring, slack, executed):
    live, thread = await _page(expiring, slack)
    approval = await slack.wait(lambda: _approval(slack, thread))
    await slack.wait(lambda: "Denied by *engine*" in _texts(slack.messages[(CHANNEL, approval["ts"])]), 20)
    await _click(expiring, slack, thread, "U0BOB", message=approval)
    said = await slack.wait(lambda: _ephemerals(slack, "U0BOB"))
    assert "expired at" in said[0] and "not run" in said[0]
    assert not executed
    assert any("bob (Slack U0BOB) refused: the request expired" in r.detail for r in await _audit(expiring))


async def test_a_request_with_a_bad_signature_is_refused_and_audited(server, slack):
    await server.install(slack)
    body = app_mention("U0ALICE", "why is checkout failing?")
    r = await deliver(server.url, body, secret="not-the-signing-secret")
    assert r.status_code == 401
    old = str(int(time.time()) - 3600)  # a replay of an old request: its timestamp is too old
    r = await deliver(server.url, body, timestamp=old)
    assert r.status_code == 401
    refused = [r for r in await _audit(server) if r.tool == "slack:request"]
    assert len(refused) == 2 and all("bad or missing Slack signature" in r.detail for r in refused)
    assert not slack.of("chat.postMessage")


async def test_a_mention_in_the_thread_continues_its_session(server, slack, executed):
    live, thread = await _page(server, slack)
    await _click(server, slack, thread, "U0BOB")
    await slack.wait(lambda: any("Root cause" in _texts(m) for m in slack.thread(CHANNEL, thread)))
    await slack.wait(lambda: not live.running)
    r = await deliver(server.url, app_mention("U0ALICE", "is it healthy now?", thread_ts=thread))
    assert r.status_code == 200
    answer = await slack.wait(
        lambda: next((m for m in slack.thread(CHANNEL, thread) if "revision 13 again" in _texts(m)), None)
    )
    assert "turn 2" in _texts(answer)
    asked = [e for e in live.log if isinstance(e, ev.UserMessage)]
    assert [e.text for e in asked][-1] == "is it healthy now?" and live.asked_by == "alice"
    status2 = next(m for m in slack.thread(CHANNEL, thread) if "turn 2" in m["text"])
    assert "asked by alice" in _texts(status2)

    r = await deliver(server.url, app_mention("U0NOBODY", "and now?", thread_ts=thread))
    said = await slack.wait(lambda: _ephemerals(slack, "U0NOBODY"))
    assert "does not know you" in said[0]
    assert any(r.tool == "slack:message" and "U0NOBODY" in r.detail for r in await _audit(server))


async def test_a_thread_keeps_its_session_across_a_restart(tmp_path, executed, slack):
    first = _serve(tmp_path, executed, slack)
    try:
        live, thread = await _page(first, slack)
        await _click(first, slack, thread, "U0BOB")
        await slack.wait(lambda: any("Root cause" in _texts(m) for m in slack.thread(CHANNEL, thread)))
        await slack.wait(lambda: not live.running)
    finally:
        _stop(first)
    again = _serve(tmp_path, executed, slack, script=[FOLLOW_UP])  # a reopened session's model starts afresh
    try:
        await again.install(slack)
        before = len(slack.of("chat.postMessage"))
        r = await deliver(again.url, app_mention("U0ALICE", "is it healthy now?", thread_ts=thread))
        assert r.status_code == 200
        await slack.wait(lambda: any("revision 13 again" in _texts(m) for m in slack.thread(CHANNEL, thread)))
        assert again.hub is not None and list(again.hub.live) == [live.id]  # the same session, reopened
        new = slack.of("chat.postMessage")[before:]
        assert all(a.get("thread_ts") == thread for a in new) and len(new) == 2  # turn 2: status, answer
    finally:
        _stop(again)


async def test_a_slash_command_starts_an_investigation_in_a_new_thread(server, slack):
    await server.install(slack)
    r = await deliver(server.url, slash_command("U0ALICE", "why is the payments api crash-looping?"))
    assert r.status_code == 200 and "Starting an investigation as alice" in r.text
    root = await slack.wait(lambda: slack.of("chat.postMessage"))
    assert "alice asked Lantern" in root[0]["text"] and "thread_ts" not in root[0]
    thread = _ts_of_root(slack, root[0])
    await slack.wait(lambda: _approval(slack, thread))
    assert server.hub is not None
    (live,) = server.hub.live.values()
    assert live.asked_by == "alice"

    r = await deliver(server.url, slash_command("U0NOBODY", "hello"))
    assert r.status_code == 200 and "does not know you" in r.text
    r = await deliver(server.url, slash_command("U0ALICE", "   "))
    assert "Usage" in r.text


async def test_without_the_slack_config_there_is_no_slack_route(tmp_path, executed, slack):
    s = _serve(tmp_path, executed, slack)
    try:
        r = await deliver(s.url, app_mention("U0ALICE", "hi"))
        assert r.status_code == 404 and "no Slack face" in r.json()["message"]
    finally:
        _stop(s)


async def test_the_secrets_come_from_the_credential_store(server, slack, monkeypatch):
    from engine.config import Config, SlackSettings
    from server.slack import SlackSetupError, face_of, install

    cfg = Config(slack=SlackSettings(channel=CHANNEL, api_url=slack.api_url, users={"U0BOB": "bob"}))
    monkeypatch.delenv("LANTERN_CRED_SLACK_BOT_TOKEN", raising=False)
    monkeypatch.delenv("LANTERN_CRED_SLACK_SIGNING_SECRET", raising=False)
    assert server.hub is not None
    with pytest.raises(SlackSetupError, match="lantern creds set slack-bot-token"):
        await server.run(install(server.hub, cfg))
    monkeypatch.setenv("LANTERN_CRED_SLACK_BOT_TOKEN", slack.token)
    monkeypatch.setenv("LANTERN_CRED_SLACK_SIGNING_SECRET", "a-secret")
    line = await server.run(install(server.hub, cfg))
    assert "posting as @lantern in Lantern Test" in line and "/slack/events" in line
    face = face_of(server.hub)
    assert face is not None and face.users == {"U0BOB": "bob"}
    assert await server.run(install(server.hub, Config())) is None  # no `slack:` section, no face
    assert slack.token not in json.dumps(cfg.model_dump())


async def test_links_made_with_the_cli_map_slack_users(server, slack, capsys):
    import argparse

    from server import commands

    p = argparse.ArgumentParser()
    commands.configure(p)
    assert server.hub is not None
    store = str(server.path)

    async def cli(*argv: str) -> int:
        return await commands.run(p.parse_args(["--store", store, "users", *argv]))

    assert await cli("link-slack", "carol", "U0CAROL2") == 0
    assert await cli("link-slack", "nobody", "U0X") == 2
    assert await cli("link-slack", "carol", "not-an-id") == 2
    assert await cli("slack") == 0
    out = capsys.readouterr()
    assert "Slack user U0CAROL2 is carol" in out.out and "no user 'nobody'" in out.err and "U0CAROL2" in out.out
    await server.install(slack, users={})
    who = await server.run(server.face.identify("U0CAROL2"))
    assert who == Identity("carol", ("viewer",))
    assert await cli("unlink-slack", "U0CAROL2") == 0
    assert await server.run(server.face.identify("U0CAROL2")) is None
    assert await cli("unlink-slack", "U0CAROL2") == 2


async def test_a_post_slack_refuses_is_logged_and_the_session_goes_on(server, slack, executed):
    slack.fail["chat.postMessage"] = "not_in_channel"
    await server.install(slack)
    assert server.hub is not None

    async def go() -> Any:
        live = await server.hub.create()
        await server.hub.announce(live, PAGE)  # the page's post fails: no thread, but no failure either
        return live

    live = await server.run(go())
    assert live.id in server.hub.live
    assert slack.errors() == [("chat.postMessage", "not_in_channel")]
    slack.expected_errors = 1


async def test_threads_and_links_live_in_the_team_database(pg_url: str):
    from engine.store import Store
    from server.identity import Users
    from server.slack.threads import Threads

    async with Store(pg_url) as store:
        threads = await Threads.open(store)
        await threads.bind(CHANNEL, "1700000001.000002", "s1")
        await threads.bind(CHANNEL, "1700000001.000002", "s2")  # the thread now carries another session
        assert await threads.session(CHANNEL, "1700000001.000002") == "s2"
        assert await threads.thread("s2") == (CHANNEL, "1700000001.000002")
        assert await threads.session(CHANNEL, "1700000009.000001") is None
        users = await Users.open(store)
        await users.add("bob", ["sre-leads"])
        await users.link("bob", "slack", "U0BOB")
        assert await users.linked("slack", "U0BOB") == Identity("bob", ("sre-leads",))
        await users.remove("bob")  # a removed user's links go with them
        assert await users.links("slack") == {}
