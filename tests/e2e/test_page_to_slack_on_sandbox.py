"""End to end, from a page to a healed cluster with the team told, on the real parts: the sandbox's
oom scenario → Debian's Prometheus fires KubeContainerOOMKilled → its Alertmanager posts the v4
webhook, with the pager's bearer token, to `lantern serve`'s /hooks/alertmanager → an investigation
starts with the alert and the oom playbook's reads (the product session: packs, retrieval, the
dispatcher, policy and audit; the oom drill's reference fix plays the model) → its first message and
findings reach Slack (a loopback stand-in of the Web API) in one thread → the approval of the fix,
with the API server's dry-run diff, arrives in the thread → a signed click by a user who may not
approve is refused, one by an operator approves → the workload heals → the alert resolves → the
handoff is posted in the thread. Each hop's latency is printed (`pytest -s`)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from e2e_support import use_scenario

from engine import events as ev
from engine.config import Config
from sandbox import cluster, monitoring
from sandbox.drill import unhealthy
from sandbox.scenario import load_scenario
from sandbox.testing import require_monitoring
from server.slack import render
from server.slack.testing import CHANNEL, SlackServerThread, SlackStandIn, block_actions, deliver

pytestmark = pytest.mark.sandbox

USERS = {"alertmanager": ["pager"], "bob": ["operators"], "carol": ["viewer"]}
"""The pager posts pages; bob (an operator) may approve a write; carol may only watch."""
ALERT = "KubeContainerOOMKilled"
WAIT = 240.0


def reference_sessions(context: str, sc: Any) -> Any:
    """The product's session on the sandbox (wiring.open_session with the real toolbox), the oom
    drill's reference fix as its model."""
    from console.commands.drill import _reference_model

    async def factory(cfg: Any, *, store: Any, approver: Any, session_id: str | None = None) -> Any:
        from wiring import build_toolbox, open_session

        c = Config(model="scripted", context=context, namespace=sc.namespace, user=cfg.user)
        toolbox = await asyncio.to_thread(build_toolbox, c)
        model = _reference_model(sc)
        return await open_session(
            c, store=store, approver=approver, session_id=session_id, model=model, toolbox=toolbox
        )

    return factory


def _texts(message: dict[str, Any]) -> str:
    out = [message.get("text", "")]
    for b in message.get("blocks", []):
        for t in [b.get("text"), *(b.get("elements") or []), *(b.get("fields") or [])]:
            if isinstance(t, dict) and isinstance(t.get("text"), str):
                out.append(t["text"])
    return "\n".join(out)


class Clock:
    """When each hop was first seen, from the scenario's start."""

    def __init__(self) -> None:
        self.t0 = time.monotonic()
        self.at: dict[str, float] = {}

    def mark(self, hop: str) -> None:
        self.at.setdefault(hop, time.monotonic() - self.t0)

    def report(self) -> str:
        lines, last = [], 0.0
        for hop, t in self.at.items():
            lines.append(f"  {hop:<44} {t:7.1f} s  (+{t - last:.1f} s)")
            last = t
        return "\n".join(lines)


async def _until(what: str, check: Any, timeout: float = WAIT) -> Any:
    end = time.monotonic() + timeout
    while True:
        got = await asyncio.to_thread(check) if not asyncio.iscoroutinefunction(check) else await check()
        if got:
            return got
        assert time.monotonic() < end, f"timed out waiting for {what}"
        await asyncio.sleep(0.5)


async def test_a_page_investigated_in_slack_approved_by_a_click_heals_the_cluster(world, monkeypatch, tmp_path):
    require_monitoring()
    sc = load_scenario("oom")
    si = use_scenario(world, "oom", monkeypatch, will_change=True)
    clock = Clock()
    prom = si.endpoints["prometheus"]
    slack = SlackStandIn().start()
    server = SlackServerThread(tmp_path / "server.db", reference_sessions(si.context, sc))
    server.users = USERS
    server.start()
    try:
        await server.install(slack)
        cluster.set_alert_webhook(f"{server.url}/hooks/alertmanager", server.tokens["alertmanager"], world.home)

        await _until(
            f"{ALERT} firing",
            lambda: [a for a in monitoring.alerts(prom, sc.namespace) if a["labels"]["alertname"] == ALERT],
        )
        clock.mark("Prometheus fires the alert")

        def root() -> dict[str, Any] | None:
            return next(
                (
                    m
                    for (c, ts), m in list(slack.messages.items())
                    if c == CHANNEL and "thread_ts" not in m and ALERT in _texts(m)
                ),
                None,
            )

        first = await _until("the page's first message in Slack", root)
        clock.mark("the page's first message is in Slack")
        thread = first["ts"]
        sid = next(s for s in server.hub.live if s in _texts(first))  # the root names its session
        live = server.hub.live[sid]
        opening = [e for e in live.log if isinstance(e, ev.UserMessage)]
        assert opening and opening[0].text.startswith("PAGE from Alertmanager") and ALERT in opening[0].text

        def findings() -> Any:
            return next((m for m in slack.thread(CHANNEL, thread)[1:] if "oom_killed" in _texts(m)), None)

        status = await _until("the findings in the thread", findings)
        clock.mark("its findings are in the thread")
        assert "OOMKilled" in _texts(status)

        def approval() -> Any:
            return next(
                (
                    m
                    for m in slack.thread(CHANNEL, thread)
                    if any(b.get("type") == "actions" for b in m.get("blocks", []))
                ),
                None,
            )

        asked = await _until("the approval in the thread", approval)
        clock.mark("the approval (with its diff) is in the thread")
        text = _texts(asked)
        assert "set_resources" in text and "memory" in text and "+" in text  # the API server's dry-run diff
        assert not [e for e in live.log if isinstance(e, ev.ToolCallFinished) and e.tool.endswith("set_resources")]

        r = await deliver(server.url, block_actions("U0CAROL", asked, render.APPROVE))
        assert r.status_code == 200
        await slack.wait(lambda: [a for a in slack.of("chat.postEphemeral") if a.get("user") == "U0CAROL"])
        assert not [e for e in live.log if isinstance(e, ev.ApprovalResolved)], "carol's click counts for nothing"

        r = await deliver(server.url, block_actions("U0BOB", asked, render.APPROVE))
        assert r.status_code == 200
        clock.mark("bob clicks Approve")

        def ran() -> Any:
            return [
                e
                for e in live.log
                if isinstance(e, ev.ToolCallFinished) and e.tool.endswith("set_resources") and e.status == "ok"
            ]

        await _until("the fix to run", ran)
        clock.mark("the fix ran on the cluster")
        resolved = [e for e in live.log if isinstance(e, ev.ApprovalResolved)]
        assert [(e.approved, e.by) for e in resolved] == [(True, "bob")]

        await _until("the workload to heal", lambda: not unhealthy(sc, world.home))
        clock.mark("the workload is healthy")
        await _until(
            f"{ALERT} to resolve",
            lambda: not [a for a in monitoring.alerts(prom, sc.namespace) if a["labels"]["alertname"] == ALERT],
        )
        clock.mark("Prometheus no longer fires it")

        def handoff() -> Any:
            return next((m for m in slack.thread(CHANNEL, thread) if m["text"].startswith("Handoff")), None)

        posted = await _until("the handoff in the thread", handoff)
        clock.mark("Alertmanager's resolved page → the handoff in Slack")
        assert "approved by bob" in _texts(posted)
        assert "Resolved" in slack.messages[(CHANNEL, thread)]["text"]
        print(f"\npage → fix → handoff on the sandbox, from the scenario's start:\n{clock.report()}")
    finally:
        cluster.set_alert_webhook(None, home=world.home)
        server.stop()
        slack.stop()
