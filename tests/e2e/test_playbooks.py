"""Each playbook walked against its live sandbox scenario through the real runtime session.

The scripted investigator reads the runbook, runs the playbook's checks in order with arguments
taken from earlier outputs, and proposes the fix when the kubernetes pack has the action; the
test approver approves; then the cluster must really heal and the audit log must hold the rows.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import urllib.request

import pytest
from e2e_support import (
    LONG,
    Investigator,
    TestApprover,
    answer,
    audit_rows,
    audit_verifies,
    call,
    engine_reads,
    executed_tools,
    finished,
    open_real_session,
    rows_of,
    run_turn,
    use_scenario,
)

from engine.policy.audit import AuditLog
from engine.store import Store
from sandbox.testing import k8s_clients, wait_for

pytestmark = pytest.mark.sandbox


def _live(pods):
    return [p for p in pods if not p.metadata.deletion_timestamp]


def _output(events, tool):
    done = finished(events, tool)
    assert done, f"{tool} never finished; ran: {executed_tools(events)}"
    ran = [d for d in done if d.status in ("ok", "partial")]  # a refused repeat points at one of these
    assert ran, f"{tool}: {done[-1].status}: {done[-1].output[:500]}"
    return ran[-1].output


async def _no_writes(session, store, approver, events):
    """Read-only walk: nothing asked, only read calls executed and audited, the chain intact."""
    assert approver.asked == []
    rows = await audit_rows(store, session.id)
    # Besides executions, only refusals of a repeated read (the model asking again for what the
    # engine's follow-up already read).
    assert rows and {r.kind for r in rows} <= {"execution", "refusal"}, {r.kind for r in rows}
    executions = [r for r in rows if r.kind == "execution"]
    assert executions and all(r.decision == "allow" for r in executions), [(r.tool, r.decision) for r in executions]
    assert all(r.rule == "guard:repeat" for r in rows if r.kind == "refusal"), [
        (r.tool, r.rule) for r in rows if r.kind == "refusal"
    ]
    ok, _, why = await (await AuditLog.open(store.db)).verify()
    assert ok, why


# -- bad deploy: rollout_undo, approved, heals -------------------------------------------------------


def _failing_pod(inv: Investigator) -> dict:
    current = [r for r in rows_of(inv.last("kubernetes.rollout_history")) if r.get("current") == "true"][0]
    pods = [r for r in rows_of(inv.last("kubernetes.list_pods")) if r["name"].startswith(current["replicaset"] + "-")]
    failing = [p for p in pods if p["ready"].startswith("0/")]
    assert failing, f"no failing pod of {current['replicaset']} in {pods}"
    return {
        "name": "kubernetes.get_pod_logs",
        "arguments": {"name": failing[0]["name"], "namespace": "shop", "previous": True},
    }


async def test_deployment_regression_is_rolled_back_and_heals(world, monkeypatch, tmp_path):
    si = use_scenario(world, "bad-deploy", monkeypatch, will_change=True)
    api, core, apps = k8s_clients(si)
    bad = "registry.example.com/shop/checkout-api:2.5.0"
    wait_for(
        "a 2.5.0 pod in CrashLoopBackOff",
        lambda: any(
            c.state.waiting and c.state.waiting.reason == "CrashLoopBackOff" and c.restart_count >= 1
            for p in _live(core.list_namespaced_pod("shop", label_selector="app=checkout-api").items)
            if p.spec.containers[0].image == bad
            for c in p.status.container_statuses or []
        ),
        timeout=LONG,
    )

    inv = Investigator(
        [
            call("read_runbook", name="deployment-regression"),
            call("kubernetes.list_pods", namespace="shop"),
            call("kubernetes.rollout_history", name="checkout-api", namespace="shop"),
            _failing_pod,
            call("kubernetes.list_events", namespace="shop", warnings_only=True),
            call("kubernetes.rollout_undo", name="checkout-api", namespace="shop"),
            answer(
                "checkout-api 2.5.0 crash-loops: PAYMENTS_TIMEOUT_MS is not set (renamed from PAYMENT_TIMEOUT_MS). "
                "Rolled back to the previous revision (2.4.3)."
            ),
        ]
    )
    approver = TestApprover(approve=True)
    store = await Store(tmp_path / "store.db").open()
    try:
        session = await open_real_session(si, store, approver, inv.model)
        events = await run_turn(
            session,
            "checkout-api pods in namespace shop are in CrashLoopBackOff since the last deploy; "
            "investigate with the deployment regression runbook and fix it",
        )
        assert events[-1].kind == "turn-finished" and events[-1].reason == "answered", events[-1]
        assert executed_tools(events) == [
            "read_runbook",
            "kubernetes.list_pods",
            "kubernetes.rollout_history",
            "kubernetes.get_pod_logs",
            "kubernetes.list_events",
            "kubernetes.rollout_undo",
        ]
        assert "kubernetes.rollout_undo" in _output(events, "read_runbook")

        history = rows_of(_output(events, "kubernetes.rollout_history"))
        current = [r for r in history if r["current"] == "true"][0]
        assert current["revision"] == "3" and current["images"] == bad
        new_pods = [
            r
            for r in rows_of(_output(events, "kubernetes.list_pods"))
            if r["name"].startswith(current["replicaset"] + "-")
        ]
        assert new_pods and all(p["ready"] == "0/1" and int(p["restarts"]) >= 1 for p in new_pods), new_pods
        assert all(p["status"] == "CrashLoopBackOff" or p.get("last_terminated") == "Error" for p in new_pods), new_pods
        logs = _output(events, "kubernetes.get_pod_logs")
        assert "PAYMENTS_TIMEOUT_MS" in logs and "panic:" in logs
        ev_text = _output(events, "kubernetes.list_events")
        assert "BackOff" in ev_text and current["replicaset"] in ev_text

        (asked,) = approver.asked
        assert asked.tool == "kubernetes.rollout_undo" and asked.risk == "dangerous"
        assert asked.arguments["name"] == "checkout-api" and asked.arguments["namespace"] == "shop"
        undo = _output(events, "kubernetes.rollout_undo")
        assert re.search(r"rolled_back:\s*true", undo, re.I) and "2.4.3" in undo, undo

        def healed():
            d = apps.read_namespaced_deployment("checkout-api", "shop")
            pods = _live(core.list_namespaced_pod("shop", label_selector="app=checkout-api").items)
            return (
                d.spec.template.spec.containers[0].image.endswith(":2.4.3")
                and (d.status.available_replicas or 0) == d.spec.replicas == (d.status.updated_replicas or 0)
                and len(pods) == d.spec.replicas
                and all(
                    p.status.phase == "Running"
                    and p.spec.containers[0].image.endswith(":2.4.3")
                    and all(c.ready for c in p.status.container_statuses or [None] if c)
                    for p in pods
                )
            )

        wait_for("checkout-api back on 2.4.3, every pod Running and Ready", healed, timeout=LONG)

        rows = await audit_rows(store, session.id)
        undo_rows = [r for r in rows if r.tool == "kubernetes.rollout_undo"]
        assert [r.kind for r in undo_rows] == ["approval", "intent", "execution"], [
            (r.kind, r.detail) for r in undo_rows
        ]
        assert undo_rows[0].decision == "approve" and "by tester" in undo_rows[0].detail
        assert undo_rows[2].detail.startswith("ok") and "approved by tester" in undo_rows[2].detail
        assert json.loads(undo_rows[2].args_json)["name"] == "checkout-api"
        assert undo_rows[0].call_hash == undo_rows[1].call_hash == undo_rows[2].call_hash == asked.call_hash
    finally:
        await store.close()
    rc, out = await audit_verifies(tmp_path / "store.db")
    assert rc == 0 and out.startswith("ok"), out


# -- queue backlog: scale the consumer, approved, queue drains ----------------------------------------


def _queue(si) -> dict:
    url = si.endpoints["rabbitmq"] + "/api/queues/%2F/orders"
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.loads(r.read())


async def test_queue_backlog_consumer_is_scaled_up_and_drains(world, monkeypatch, tmp_path):
    si = use_scenario(world, "queue-backlog", monkeypatch, will_change=True)
    api, core, apps = k8s_clients(si)
    inv = Investigator(
        [
            call("read_runbook", name="queue-backlog"),
            call("queue.get_queue", name="orders", vhost="/"),
            call("kubernetes.describe_deployment", name="order-worker", namespace="fulfillment"),
            call("kubernetes.rollout_history", name="order-worker", namespace="fulfillment"),
            call("kubernetes.scale_deployment", name="order-worker", namespace="fulfillment", replicas=2),
            # Right after the write, the model looks at the queue again: the world changed, so must the answer.
            call("queue.get_queue", name="orders", vhost="/"),
            answer(
                "order-worker, the only consumer of orders, was scaled to 0 (CHG-2291) and never scaled back; scaled it to 2."
            ),
        ]
    )
    approver = TestApprover(approve=True)
    store = await Store(tmp_path / "store.db").open()
    try:
        session = await open_real_session(si, store, approver, inv.model)
        events = await run_turn(
            session,
            'RabbitMQ queue "orders" (vhost /) has a growing backlog with no consumers; '
            "namespace fulfillment; follow the queue backlog runbook",
        )
        assert events[-1].reason == "answered", events[-1]
        assert executed_tools(events)[:5] == [
            "read_runbook",
            "queue.get_queue",
            "kubernetes.describe_deployment",
            "kubernetes.rollout_history",
            "kubernetes.scale_deployment",
        ]
        q = finished(events, "queue.get_queue")[0].output
        depth_before = int(re.search(r"^messages_ready: (\d+)", q, re.M).group(1))
        assert depth_before > 10_000 and re.search(r"^consumers: 0$", q, re.M), q
        assert re.search(r"replicas: desired=0\b", _output(events, "kubernetes.describe_deployment"))
        (asked,) = approver.asked
        assert asked.tool == "kubernetes.scale_deployment" and asked.arguments["replicas"] == 2
        scaled = _output(events, "kubernetes.scale_deployment")
        assert re.search(r"^to: 2$", scaled, re.M), scaled

        wait_for(
            "2 order-worker pods ready",
            lambda: (apps.read_namespaced_deployment("order-worker", "fulfillment").status.ready_replicas or 0) == 2,
            timeout=LONG,
        )
        wait_for("the broker to see consumers", lambda: _queue(si).get("consumers", 0) > 0, timeout=LONG)
        first = _queue(si)["messages_ready"]
        wait_for("the orders queue to drain", lambda: _queue(si)["messages_ready"] < first - 100, timeout=LONG)

        # The model checks its fix in the next turn, through the same tool.
        inv.then(
            call("queue.get_queue", name="orders", vhost="/"), answer("Consumers are back and the backlog is draining.")
        )
        events2 = await run_turn(session, "is the orders queue draining now?")
        q2 = _output(events2, "queue.get_queue")
        assert int(re.search(r"^consumers: (\d+)", q2, re.M).group(1)) > 0, q2
        assert int(re.search(r"^messages_ready: (\d+)", q2, re.M).group(1)) < first, q2

        rows = await audit_rows(store, session.id)
        scale_rows = [r for r in rows if r.tool == "kubernetes.scale_deployment"]
        assert [r.kind for r in scale_rows] == ["approval", "intent", "execution"], [
            (r.kind, r.detail) for r in scale_rows
        ]
        assert "approved by tester" in scale_rows[1].detail
        ok, _, why = await (await AuditLog.open(store.db)).verify()
        assert ok, why
        problems = []
        # The undo hint must name the real previous count (0), so a human can scale back.
        if not (re.search(r"^from: 0$", scaled, re.M) and "scale back to 0" in scaled):
            problems.append(f"scale_deployment does not report the previous count 0: {scaled!r}")
        # A read repeated after an approved write is a new question, not a repeat.
        recheck = finished(events, "queue.get_queue")[1]
        if recheck.status != "ok":
            problems.append(f"queue.get_queue after the scale was not run: {recheck.status}: {recheck.output[:200]!r}")
        assert not problems, problems

        # The handoff the next shift reads: the approval, the dry-run diff it showed, the undo recorded.
        from engine import handoff

        md = handoff.markdown(await handoff.load(store, session.id))
        assert "**tester** approved: kubernetes.scale_deployment(" in md, md
        diff = md.split("```diff\n", 1)[1].split("```", 1)[0] if "```diff\n" in md else ""
        assert "ran, approved by tester" in md and "replicas" in diff, md
        assert "undo recorded: scale back to 0" in md, md
    finally:
        await store.close()


# -- OOM: the evidence and the cause; no pack action sets memory limits --------------------------------


async def test_oom_playbook_finds_oomkilled_and_names_the_limit(world, monkeypatch, tmp_path):
    si = use_scenario(world, "oom", monkeypatch, will_change=False)
    api, core, apps = k8s_clients(si)
    wait_for(
        "a report-worker OOMKilled",
        lambda: any(
            c.last_state and c.last_state.terminated and c.last_state.terminated.reason == "OOMKilled"
            for p in _live(core.list_namespaced_pod("analytics", label_selector="app=report-worker").items)
            for c in p.status.container_statuses or []
        ),
        timeout=LONG,
    )

    def restarting(inv):
        pods = [
            r
            for r in rows_of(inv.last("kubernetes.list_pods"))
            if r["name"].startswith("report-worker-")
            and (r["status"] in ("CrashLoopBackOff", "OOMKilled") or r.get("last_terminated") == "OOMKilled")
        ]
        assert pods, inv.last("kubernetes.list_pods")
        # Previous logs exist only for a pod that has already restarted: prefer one the listing
        # shows OOMKilled, and wait until the kubelet endpoint serves its previous container.
        pods.sort(key=lambda r: r.get("last_terminated") != "OOMKilled")
        inv.pod = pods[0]["name"]

        def previous_logs() -> bool:
            try:
                return bool(core.read_namespaced_pod_log(inv.pod, "analytics", previous=True))
            except Exception:  # noqa: BLE001 - not there yet
                return False

        wait_for(f"previous logs of {inv.pod}", previous_logs, timeout=LONG)
        return {"name": "kubernetes.describe_pod", "arguments": {"name": inv.pod, "namespace": "analytics"}}

    inv = Investigator(
        [
            call("read_runbook", name="oom"),
            call("kubernetes.list_pods", namespace="analytics"),
            restarting,
            lambda inv: {
                "name": "kubernetes.get_pod_logs",
                "arguments": {"name": inv.pod, "namespace": "analytics", "previous": True},
            },
            call("kubernetes.rollout_history", name="report-worker", namespace="analytics"),
            answer(
                "report-worker is OOMKilled (exit 137) at its 256Mi memory limit while loading the dataset; no recent deploy. "
                "Raise the memory limit to 512Mi."
            ),
        ]
    )
    approver = TestApprover()
    store = await Store(tmp_path / "store.db").open()
    try:
        session = await open_real_session(si, store, approver, inv.model)
        events = await run_turn(
            session, "report-worker in namespace analytics keeps getting OOMKilled; use the OOM runbook"
        )
        assert events[-1].reason == "answered", events[-1]
        # The restarting pod the listing showed is described by the engine's follow-up read, so
        # the model's own describe_pod of it is answered from that, not run twice.
        assert engine_reads(events) == ["kubernetes.describe_pod", "findings"]
        assert executed_tools(events) == [
            "read_runbook",
            "kubernetes.list_pods",
            "kubernetes.get_pod_logs",
            "kubernetes.rollout_history",
        ]
        assert any(
            e.kind == "tool-call-finished"
            and e.tool == "kubernetes.describe_pod"
            and e.step > 0
            and "Not run again" in e.output
            for e in events
        )
        desc = _output(events, "kubernetes.describe_pod")
        assert "OOMKilled" in desc and "137" in desc and "256Mi" in desc, desc
        assert "close to container limit" in _output(events, "kubernetes.get_pod_logs")
        assert len(rows_of(_output(events, "kubernetes.rollout_history"))) == 1  # no deploy to undo
        text = "".join(e.text for e in events if e.kind == "assistant-message")
        assert "OOMKilled" in text and "memory limit" in text
        await _no_writes(session, store, approver, events)
    finally:
        await store.close()


# -- expired certificate ----------------------------------------------------------------------------


async def test_certificate_expiry_playbook_finds_the_expired_secret(world, monkeypatch, tmp_path):
    si = use_scenario(world, "expired-cert", monkeypatch, will_change=False)
    host, port = si.endpoints["tls"].rsplit(":", 1)
    server_name = si.endpoints["tls-server-name"]

    def tls_port_answers() -> bool:
        # The agent (re)opens its TLS port when the scenario is applied: wait until it serves.
        import socket
        import ssl

        ctx = ssl.create_default_context()
        ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
        try:
            with (
                socket.create_connection((host, int(port)), timeout=5) as sock,
                ctx.wrap_socket(sock, server_hostname=server_name),
            ):
                return True
        except OSError:
            return False

    wait_for("the sandbox's TLS endpoint to serve", tls_port_answers, timeout=LONG)
    _, core, _ = k8s_clients(si)
    wait_for(
        "an x509 warning event in edge",
        lambda: any("x509" in (e.message or "") for e in core.list_namespaced_event("edge").items),
        timeout=LONG,
    )
    inv = Investigator(
        [
            call("read_runbook", name="certificate-expiry"),
            call("tls.check_endpoint_certificate", host=host, port=int(port), server_name=server_name),
            call("tls.check_kubernetes_tls_secret", name="gateway-tls", namespace="edge"),
            call("kubernetes.list_events", namespace="edge", warnings_only=True),
            call("kubernetes.get_resource_yaml", kind="deployment", name="api-gateway", namespace="edge"),
            answer(
                "api-gateway serves gateway-tls, whose certificate expired 9 days ago; it must be renewed and the Secret replaced."
            ),
        ]
    )
    approver = TestApprover()
    store = await Store(tmp_path / "store.db").open()
    try:
        session = await open_real_session(si, store, approver, inv.model)
        events = await run_turn(
            session,
            "https://api.shop.example fails TLS handshakes with x509 certificate has expired; "
            "api-gateway in namespace edge; follow the certificate expiry runbook",
        )
        assert events[-1].reason == "answered", events[-1]
        assert executed_tools(events) == [
            "read_runbook",
            "tls.check_endpoint_certificate",
            "tls.check_kubernetes_tls_secret",
            "kubernetes.list_events",
            "kubernetes.get_resource_yaml",
        ]
        endpoint = _output(events, "tls.check_endpoint_certificate")
        secret = _output(events, "tls.check_kubernetes_tls_secret")
        for text in (endpoint, secret):
            assert "status=expired" in text and "CN=api.shop.example" in text, text
            not_after = dt.datetime.fromisoformat(re.search(r"not_after=(\S+)", text).group(1))
            assert not_after < dt.datetime.now(dt.UTC) and re.search(r"days_left=-\d", text), text
        assert "x509: certificate has expired" in _output(events, "kubernetes.list_events")
        await _no_writes(session, store, approver, events)
        # Which Secret the gateway mounts (the playbook's check 4) must survive output scrubbing.
        assert "secretName: gateway-tls" in _output(events, "kubernetes.get_resource_yaml")
    finally:
        await store.close()


# -- DNS: the app calls a service name that does not exist ----------------------------------------------


async def test_dns_playbook_finds_the_missing_service_name(world, monkeypatch, tmp_path):
    si = use_scenario(world, "dns", monkeypatch, will_change=False)
    api, core, apps = k8s_clients(si)
    wait_for(
        "orders-api pods running but unready",
        lambda: any(
            p.status.phase == "Running"
            for p in _live(core.list_namespaced_pod("shop", label_selector="app=orders-api").items)
        ),
        timeout=LONG,
    )

    def orders_pod(inv):
        pods = [r for r in rows_of(inv.last("kubernetes.list_pods")) if r["name"].startswith("orders-api-")]
        assert pods and all(p["ready"] == "0/1" for p in pods), pods
        return {"name": "kubernetes.get_pod_logs", "arguments": {"name": pods[0]["name"], "namespace": "shop"}}

    # dns.resolve from Lantern is left out: a cluster-internal name, and tests never leave loopback.
    inv = Investigator(
        [
            call("read_runbook", name="dns"),
            call("kubernetes.list_pods", namespace="shop"),
            orders_pod,
            call("kubernetes.describe_service", name="inventory", namespace="shop"),
            call("kubernetes.list_services", namespace="shop"),
            call("kubernetes.get_resource_yaml", kind="configmap", name="orders-api-config", namespace="shop"),
            answer(
                "orders-api calls inventory.shop.svc.cluster.local, but the Service was renamed to inventory-svc: NXDOMAIN "
                "(no such host). Point INVENTORY_URL at inventory-svc or restore a Service named inventory."
            ),
        ]
    )
    approver = TestApprover()
    store = await Store(tmp_path / "store.db").open()
    try:
        session = await open_real_session(si, store, approver, inv.model)
        events = await run_turn(
            session,
            "orders-api in namespace shop logs 'no such host' looking up the inventory service; use the DNS runbook",
        )
        assert events[-1].reason == "answered", events[-1]
        assert executed_tools(events) == [
            "read_runbook",
            "kubernetes.list_pods",
            "kubernetes.get_pod_logs",
            "kubernetes.describe_service",
            "kubernetes.list_services",
            "kubernetes.get_resource_yaml",
        ]
        assert "lookup inventory.shop.svc.cluster.local" in _output(events, "kubernetes.get_pod_logs")
        assert "no such host" in _output(events, "kubernetes.get_pod_logs")
        missing = finished(events, "kubernetes.describe_service")[-1]
        assert "not found" in missing.output.lower(), missing.output
        services = [r["name"] for r in rows_of(_output(events, "kubernetes.list_services"))]
        assert "inventory-svc" in services and "inventory" not in services
        assert "inventory.shop.svc.cluster.local" in _output(events, "kubernetes.get_resource_yaml")
        assert approver.asked == []
    finally:
        await store.close()


def test_every_tool_a_playbook_names_exists():
    """A runbook that names a tool the packs lack sends the model after a tool it cannot call."""
    from engine.config import Config
    from skills.playbooks import load_playbooks
    from skills.registry import tools_for_config

    tools, errors = tools_for_config(Config(model="scripted"))
    names = {t.name for t in tools}
    packs = {n.split(".")[0] for n in names}
    books, _ = load_playbooks()
    missing = sorted(
        {
            (b.name, ref)
            for b in books
            for ref in re.findall(r"`([a-z_]+\.[a-z_]+)`", b.body)
            if ref.split(".")[0] in packs and ref not in names
        }
    )
    assert not missing, f"playbooks name tools that do not exist: {missing}"
