"""Pages in, on a real `lantern serve` on loopback: Alertmanager's webhook and the generic one open
one investigation per alert group (with the alert and its playbook's first reads), find it again,
resolve it and tell the watchers; bad tokens, roles and bodies are refused and audited."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from console.testing import incident_tools
from engine import events as ev
from engine.config import Config
from engine.dispatch import Dispatcher
from engine.loop import Session
from engine.policy.audit import AuditLog
from engine.store import Store
from engine.testing import ScriptedModel
from engine.toolbox import Toolbox
from engine.tools import ToolOutput
from server.client import Remote, RemoteError
from server.pages import Page
from server.paging import match_playbook, opening_text, triage_reads
from server.testing import USERS, ServerThread, team_policy
from skills.loader import load_pack_file
from skills.playbooks import load_playbooks
from skills.registry import pack_tools

ROOT = Path(__file__).resolve().parents[2]
POD = "api-7d9f8b6c5-x2k4p"
KEY = '{}/{severity="critical"}:{alertname="KubeContainerOOMKilled", namespace="shop"}'
ANSWER = "The api container in shop is OOMKilled at its 128Mi limit; rollback_deployment(name=api, namespace=shop, revision=13) restores 512Mi."
CANNED = {
    "kubernetes.list_pods": f"NAME {POD} STATUS CrashLoopBackOff RESTARTS 37 REASON OOMKilled",
    "kubernetes.describe_pod": "Last State: Terminated, Reason: OOMKilled, Exit Code: 137; Limits: memory 128Mi",
    "kubernetes.get_pod_logs": "allocating cache ... killed",
    "kubernetes.rollout_history": "REVISION 13 image api:2.4.1\nREVISION 14 limits.memory 512Mi -> 128Mi",
}


def kube_reads(calls: list[dict[str, Any]]) -> list[Any]:
    """The kubernetes pack's read actions as the pack declares them, answering from CANNED (no cluster)."""
    pack, err = load_pack_file(ROOT / "skills" / "packs" / "kubernetes.yaml")
    assert pack is not None, err

    def canned(name: str) -> Any:
        async def handler(args: dict[str, Any]) -> ToolOutput:
            calls.append({"tool": name, **args})
            return ToolOutput(text=CANNED[name])

        return handler

    return [replace(t, handler=canned(t.name)) for t in pack_tools([pack]) if t.name in CANNED]


def page_sessions(calls: list[dict[str, Any]]) -> Any:
    """Sessions on the scripted model, the incident's tools and the kubernetes pack's reads, behind
    the real dispatcher, policy and audit."""

    async def factory(cfg: Config, *, store: Store, approver: Any, session_id: str | None = None) -> Session:
        past = await store.events(session_id) if session_id else []
        dispatcher = Dispatcher(team_policy(), await AuditLog.open(store), user=cfg.user, kube=lambda: (None, "shop"))
        model = ScriptedModel([], responder=lambda messages, tools: {"text": ANSWER})
        session = Session(
            model,
            Toolbox([*incident_tools([]), *kube_reads(calls)], dispatcher=dispatcher),
            session_id=session_id,
            sink=store,
            approver=approver,
            events=past,
        )
        await store.create_session(session.id, model=model.name)
        await session.emit(ev.SessionStarted, model=model.name, resumed=bool(past))
        return session

    return factory


class Watcher:
    """A face that hears of pages: what it was told, and what the session held at that moment."""

    def __init__(self) -> None:
        self.told: list[tuple[str, str, Page, list[str]]] = []

    async def page_opened(self, live: Any, page: Page) -> None:
        self.told.append(("opened", live.id, page, [e.kind for e in live.log]))

    async def page_resolved(self, live: Any, page: Page) -> None:
        self.told.append(("resolved", live.id, page, [e.kind for e in live.log]))


PAGERS = {**USERS, "alertmanager": ["pager"]}


@pytest.fixture
def calls() -> list[dict[str, Any]]:
    return []


@pytest.fixture
def server(tmp_path, calls):
    s = ServerThread(tmp_path / "server.db", page_sessions(calls), users=PAGERS).start()
    s.watcher = Watcher()  # type: ignore[attr-defined]
    s.hub.watchers.append(s.watcher)  # type: ignore[union-attr, attr-defined]
    yield s
    s.stop()


def notification(status: str = "firing", key: str = KEY, pods: tuple[str, ...] = (POD,)) -> dict[str, Any]:
    """Alertmanager's webhook body (v4), as its notify/webhook sends it."""
    common = {"alertname": "KubeContainerOOMKilled", "namespace": "shop", "severity": "critical", "container": "api"}
    return {
        "receiver": "lantern",
        "status": status,
        "alerts": [
            {
                "status": status,
                "labels": {**common, "pod": pod},
                "annotations": {"summary": f"Container api in pod shop/{pod} was OOMKilled."},
                "startsAt": "2026-12-05T03:40:00.000Z",
                "endsAt": "0001-01-01T00:00:00Z" if status == "firing" else "2026-12-05T03:55:00.000Z",
                "generatorURL": "http://127.0.0.1:9090/graph?g0.expr=increase%28kube_pod_container_status_restarts_total%5B5m%5D%29+%3E+0&g0.tab=1",
                "fingerprint": f"fp-{pod}",
            }
            for pod in pods
        ],
        "groupLabels": {"alertname": "KubeContainerOOMKilled", "namespace": "shop"},
        "commonLabels": common | ({"pod": pods[0]} if len(pods) == 1 else {}),
        "commonAnnotations": {
            "summary": "A container in shop was OOMKilled.",
            "description": "Container api restarts after running out of memory.",
            "runbook_url": "https://runbooks.example/oom",
        },
        "externalURL": "http://127.0.0.1:9093",
        "version": "4",
        "groupKey": key,
        "truncatedAlerts": 0,
    }


async def post(server: Any, path: str, body: Any, token: str | None = "alertmanager", **kw: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {server.tokens[token]}"} if token else {}
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    async with httpx.AsyncClient(trust_env=False, timeout=30) as http:
        return await http.post(server.url + path, content=content, headers={**headers, **kw.get("headers", {})})


async def turn_end(remote: Remote, sid: str) -> list[Any]:
    for _ in range(400):
        events = await remote.events(sid)
        if any(isinstance(e, ev.TurnFinished) for e in events):
            return events
        await asyncio.sleep(0.05)
    raise AssertionError(f"session {sid}'s first turn did not finish")


async def audit(server: Any, **where: Any) -> list[dict[str, Any]]:
    rows = await Remote(server.url, server.tokens["bob"]).audit()
    return [r for r in rows if all(r[k] == v for k, v in where.items())]


async def test_a_firing_page_opens_one_investigation_with_the_alert_and_its_playbooks_reads(server, calls):
    r = await post(server, "/hooks/alertmanager", notification())
    assert r.status_code == 201, r.text
    body = r.json()
    sid = body["session"]
    assert body["outcome"] == "opened" and body["playbook"] == "oom" and body["group_key"] == KEY
    assert body["reads"] == ["kubernetes.list_pods", "kubernetes.describe_pod", "kubernetes.get_pod_logs"]

    events = await turn_end(Remote(server.url, server.tokens["bob"]), sid)
    first = next(e for e in events if isinstance(e, ev.UserMessage))
    assert first.text.startswith(
        "PAGE from Alertmanager, receiver lantern: KubeContainerOOMKilled: A container in shop"
    )
    for text in ("FIRING", "severity=critical", "namespace=shop", "Runbook: https://runbooks.example/oom",
                 "Description: Container api restarts", f"pod={POD}", "Playbook: oom"):  # fmt: skip
        assert text in first.text
    opening = next(e for e in events if isinstance(e, ev.AssistantMessage) and e.step == 0)
    assert [(c["name"], c["arguments"]) for c in opening.tool_calls] == [
        ("kubernetes.list_pods", {"namespace": "shop"}),
        ("kubernetes.describe_pod", {"name": POD, "namespace": "shop"}),
        ("kubernetes.get_pod_logs", {"name": POD, "namespace": "shop", "container": "api", "previous": True}),
    ]
    assert [c["tool"] for c in calls] == body["reads"]  # the reads ran, before the model's first step
    assert events[-1].reason == "answered"

    # watchers were told after the session opened and before its first turn began
    (what, told_sid, page, kinds) = server.watcher.told[0]
    assert (what, told_sid, page.status, page.group_key) == ("opened", sid, "firing", KEY)
    assert page.runbook_url == "https://runbooks.example/oom" and page.labels["severity"] == "critical"
    assert "session-started" in kinds and "user-message" not in kinds

    hub = server.hub
    assert hub.live[sid].asked_by == "alertmanager"  # the turn ran as the pager
    rows = await audit(server, kind="page")
    assert [(r["decision"], r["session_id"], r["user"]) for r in rows] == [("opened", sid, "alertmanager")]
    assert json.loads(rows[0]["args_json"])["reads"] == body["reads"]


async def test_the_same_group_again_is_deduplicated_and_new_alerts_are_noted(server):
    sid = (await post(server, "/hooks/alertmanager", notification())).json()["session"]
    bob = Remote(server.url, server.tokens["bob"])
    await turn_end(bob, sid)
    again = await post(server, "/hooks/alertmanager", notification())  # Alertmanager's repeat_interval
    assert again.status_code == 200 and again.json()["outcome"] == "deduplicated" and again.json()["session"] == sid
    more = await post(server, "/hooks/alertmanager", notification(pods=(POD, "api-7d9f8b6c5-q8w1z")))
    assert more.json()["session"] == sid and "1 new alerts noted" in more.json()["message"]
    notes = [e.text for e in await bob.events(sid) if isinstance(e, ev.Notice) and e.topic == "page"]
    assert len(notes) == 1 and "1 new alert in the group" in notes[0] and "pod=api-7d9f8b6c5-q8w1z" in notes[0]
    assert len(server.watcher.told) == 1  # one investigation, announced once
    assert [r["decision"] for r in await audit(server, kind="page")] == ["opened", "deduplicated", "deduplicated"]


async def test_resolved_marks_the_session_resolved_and_tells_the_watchers_and_a_flap_attaches(server):
    store_path = server.path
    sid = (await post(server, "/hooks/alertmanager", notification())).json()["session"]
    await turn_end(Remote(server.url, server.tokens["bob"]), sid)
    r = await post(server, "/hooks/alertmanager", notification("resolved"))
    assert r.json()["outcome"] == "resolved" and r.json()["session"] == sid
    assert [t[:2] for t in server.watcher.told] == [("opened", sid), ("resolved", sid)]
    assert server.watcher.told[1][2].status == "resolved"
    assert (await post(server, "/hooks/alertmanager", notification("resolved"))).json()["outcome"] == "already-resolved"

    # it fires again within the window: no new session, attached to the last one
    flap = await post(server, "/hooks/alertmanager", notification())
    assert flap.status_code == 200 and flap.json()["outcome"] == "rate-limited" and flap.json()["session"] == sid
    assert "at most one new session per alert group every 15 minutes" in flap.json()["message"]
    await post(server, "/hooks/alertmanager", notification("resolved"))
    assert len([t for t in server.watcher.told if t[0] == "opened"]) == 1
    rows = await audit(server, kind="page")
    assert [r["decision"] for r in rows] == ["opened", "resolved", "already-resolved", "rate-limited", "resolved"]
    assert "attached to" in rows[3]["detail"]
    server.stop()

    # after a restart the group is found again; once the window has passed, a new firing opens a new session
    async with Store(store_path) as store:
        assert (await store.get_status(sid))[0] == "resolved"  # type: ignore[index]
        group = await store.page_group(KEY)
        assert group is not None and group.session_id == sid and group.status == "resolved"
        group.opened_at = "2026-01-01T00:00:00+00:00"
        await store.put_page_group(group)
    s2 = ServerThread(store_path, page_sessions([]), users=PAGERS).start()
    try:
        r = await post(s2, "/hooks/alertmanager", notification())
        assert r.status_code == 201 and r.json()["session"] != sid
        assert f"the group's last session, {sid}, was resolved" in r.json()["message"]
        assert (await post(s2, "/hooks/alertmanager", notification())).json()["session"] == r.json()["session"]
    finally:
        s2.stop()


async def test_a_restarted_server_deduplicates_an_open_group(tmp_path):
    path = tmp_path / "restart.db"
    s1 = ServerThread(path, page_sessions([]), users=PAGERS).start()
    try:
        sid = (await post(s1, "/hooks/alertmanager", notification())).json()["session"]
        await turn_end(Remote(s1.url, s1.tokens["bob"]), sid)
    finally:
        s1.stop()
    s2 = ServerThread(path, page_sessions([]), users=PAGERS).start()
    try:
        r = await post(s2, "/hooks/alertmanager", notification(pods=(POD, "api-7d9f8b6c5-q8w1z")))
        assert r.json()["outcome"] == "deduplicated" and r.json()["session"] == sid
        r = await post(s2, "/hooks/alertmanager", notification("resolved"))
        assert r.json()["outcome"] == "resolved" and r.json()["session"] == sid
    finally:
        s2.stop()


async def test_a_wrong_or_missing_token_is_401_and_another_role_403_all_audited(server):
    assert (await post(server, "/hooks/alertmanager", notification(), token=None)).status_code == 401
    r = await post(server, "/hooks/alertmanager", notification(), token=None, headers={"Authorization": "Bearer lt_x"})
    assert r.status_code == 401
    r = await post(server, "/hooks/alertmanager", notification(), token="alice")
    assert r.status_code == 403 and "alice has no pager role" in r.json()["message"]
    assert (await post(server, "/hooks/generic", {"key": "k", "title": "t"}, token="bob")).status_code == 403
    assert not server.hub.live and not server.watcher.told
    auth = await audit(server, rule="server:auth")
    assert [(json.loads(r["args_json"])["path"], r["detail"]) for r in auth] == [
        ("/hooks/alertmanager", "request refused: no token"),
        ("/hooks/alertmanager", "request refused: unknown token"),
    ]
    roles = await audit(server, rule="server:hooks")
    assert [(r["user"], r["kind"], r["decision"]) for r in roles] == [
        ("alice", "refusal", "refused"),
        ("bob", "refusal", "refused"),
    ]


async def test_a_pager_token_posts_pages_and_nothing_else(server):
    pager = Remote(server.url, server.tokens["alertmanager"])
    async with httpx.AsyncClient(trust_env=False) as http:
        who = await http.get(
            server.url + "/v1/whoami", headers={"Authorization": f"Bearer {server.tokens['alertmanager']}"}
        )
    assert who.json() == {"user": "alertmanager", "roles": ["pager"]}
    with pytest.raises(RemoteError, match="403"):
        await pager.sessions()
    with pytest.raises(RemoteError, match="403"):
        await pager.create()
    sid = (await post(server, "/hooks/alertmanager", notification())).json()["session"]
    with pytest.raises(RemoteError):
        async with pager.attach(sid):
            pass
    fenced = await audit(server, rule="server:pager")
    assert len(fenced) == 3 and {r["user"] for r in fenced} == {"alertmanager"}
    assert "holds only the pager role" in fenced[0]["detail"]


async def test_the_generic_webhook_opens_and_resolves_and_names_a_bad_field(server):
    page = {
        "key": "db-disk-96",
        "status": "firing",
        "title": "orders-db disk at 96%",
        "labels": {"namespace": "shop", "service": "orders-db", "severity": "page"},
        "annotations": {"description": "the volume fills at 2%/h"},
        "runbook_url": "https://runbooks.example/disk",
        "source": "pagerduty",
    }
    r = await post(server, "/hooks/generic", page)
    assert r.status_code == 201 and r.json()["group_key"] == "generic:db-disk-96"
    sid = r.json()["session"]
    events = await turn_end(Remote(server.url, server.tokens["bob"]), sid)
    text = next(e.text for e in events if isinstance(e, ev.UserMessage))
    assert (
        text.startswith("PAGE from pagerduty: orders-db disk at 96%")
        and "Runbook: https://runbooks.example/disk" in text
    )
    assert (await post(server, "/hooks/generic", page)).json()["outcome"] == "deduplicated"
    assert (await post(server, "/hooks/generic", {**page, "status": "resolved"})).json()["outcome"] == "resolved"
    assert server.watcher.told[-1][0] == "resolved"

    for bad, field, words in [
        ({k: v for k, v in page.items() if k != "title"}, "title", "Field required"),
        ({**page, "titel": "x"}, "titel", "Extra inputs are not permitted"),
        ({**page, "status": "acknowledged"}, "status", "'firing' or 'resolved'"),
        ({**page, "labels": {"n": 1}}, "labels.n", "valid string"),
        ([page], "(body)", "valid dictionary"),
    ]:
        r = await post(server, "/hooks/generic", bad)
        assert r.status_code == 400 and r.json()["error"] == "bad-body" and r.json()["field"] == field, r.text
        assert r.json()["message"].startswith(f"{field}: ") and words in r.json()["message"]


async def test_bad_bodies_get_a_clear_4xx_and_are_audited_and_nothing_is_lost(server):
    good = notification()
    cases = [
        (b"x" * (1 << 20) + b"x", 413, "too-large", "at most 1,048,576"),
        (b'{"version": "4", ', 400, "bad-json", "the body is not JSON"),
        (b"", 400, "empty", "the body is empty"),
        (json.dumps(good).encode().replace(b"lantern", b"lan\xfftern"), 400, "bad-unicode", "byte 0xff at offset"),
        (json.dumps(good).replace("shop", "sh\\ud800op").encode(), 400, "bad-unicode", "lone surrogate"),
        (json.dumps({**good, "version": "3"}).encode(), 400, "bad-body", "version: Input should be '4'"),
        (json.dumps({**good, "alerts": []}).encode(), 400, "bad-body", "alerts: List should have at least 1 item"),
        (json.dumps({**good, "status": None}).encode(), 400, "bad-body", "status: "),
    ]
    for raw, status, code, words in cases:
        r = await post(server, "/hooks/alertmanager", raw)
        assert (r.status_code, r.json()["error"]) == (status, code), r.text
        assert words in r.json()["message"] and "\n" not in r.json()["message"]
    assert (await post(server, "/hooks/alertmanager", good)).status_code == 201  # the server still takes pages
    refused = await audit(server, kind="refusal", rule="server:hooks")
    assert len(refused) == len(cases) and {r["user"] for r in refused} == {"alertmanager"}
    assert all(json.loads(r["args_json"])["sha256"] for r in refused)
    assert "lone surrogate" in refused[4]["detail"] and json.loads(refused[4]["args_json"])["field"].startswith(
        "alerts.0"
    )


def test_an_alert_finds_its_playbook_and_the_labels_fill_its_reads():
    books, errors = load_playbooks()
    assert not errors

    def book(alertname: str, summary: str = "", **labels: str) -> str | None:
        page = Page("alertmanager", "k", "firing", alertname, {"alertname": alertname, **labels}, {"summary": summary})
        found = match_playbook(page, books)
        return found.name if found else None

    assert book("KubeContainerOOMKilled") == "oom"
    assert book("KubePodCrashLooping", "Pod shop/api is restarting after the new deploy") == "deployment-regression"
    assert book("HighErrorRatio", "5xx ratio of checkout above 5%") == "service-errors"
    assert book("CheckoutLatencyHigh", "p99 latency above 2s") == "service-errors"
    assert book("QueueBacklogGrowing", "orders queue depth growing, consumers 0") == "queue-backlog"
    assert book("CertificateExpiringSoon", "TLS certificate of shop.example expires in 3 days") == "certificate-expiry"
    assert book("Watchdog", "An alert that should always be firing") is None
    assert book("Watchdog", playbook="dns") == "dns"

    pack, _ = load_pack_file(ROOT / "skills" / "packs" / "kubernetes.yaml")
    tools = {t.name: t for t in pack_tools([pack])}  # type: ignore[list-item]
    page = Page(
        "alertmanager", "k", "firing", "KubeContainerOOMKilled", {"namespace": "shop", "pod": POD, "container": "api"}
    )
    reads = triage_reads(page, next(b for b in books if b.name == "oom"), tools)
    assert reads[2] == {
        "name": "kubernetes.get_pod_logs",
        "arguments": {"name": POD, "namespace": "shop", "container": "api", "previous": True},
    }
    regression = triage_reads(page, next(b for b in books if b.name == "deployment-regression"), tools)
    assert regression[1] == {"name": "kubernetes.rollout_history", "arguments": {"name": "api", "namespace": "shop"}}
    bare = Page("alertmanager", "k", "firing", "KubeContainerOOMKilled", {})
    assert [r["name"] for r in triage_reads(bare, next(b for b in books if b.name == "oom"), tools)] == [
        "kubernetes.list_pods"
    ]
    text = opening_text(Page("generic", "generic:k", "firing", "t\x1b[2J", {"a": "b\x07"}), None)
    assert "\x1b" not in text and "\x07" not in text and text.startswith("PAGE from a pager: t")
