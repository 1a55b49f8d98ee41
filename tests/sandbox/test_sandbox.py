"""The sandbox against its real parts: API server, controllers, scheduler and the node agent."""

from __future__ import annotations

import base64
import datetime as dt
import json
import shutil
import subprocess
import time
import urllib.request

import pytest

from sandbox import cluster, monitoring, pki
from sandbox.scenario import ENDPOINTS_CONFIGMAP, ScenarioError, apply_scenario
from sandbox.testing import k8s_clients, require_monitoring, wait_for

pytestmark = pytest.mark.sandbox


def _pods(core, ns: str, app: str) -> list:
    return [
        p for p in core.list_namespaced_pod(ns, label_selector=f"app={app}").items if not p.metadata.deletion_timestamp
    ]


def _available(apps, ns: str, name: str, image: str | None = None) -> bool:
    d = apps.read_namespaced_deployment(name, ns)
    want = d.spec.replicas
    st = d.status
    ok = (
        (st.observed_generation or 0) >= d.metadata.generation
        and (st.updated_replicas or 0) == want
        and (st.available_replicas or 0) == want
        and (st.replicas or 0) == want
    )
    return ok and (image is None or d.spec.template.spec.containers[0].image == image)


def _rollout_undo(apps, ns: str, name: str) -> None:
    """What `kubectl rollout undo` does: copy the previous revision's pod template into the Deployment."""
    d = apps.read_namespaced_deployment(name, ns)
    rss = [
        rs
        for rs in apps.list_namespaced_replica_set(ns).items
        if any(o.kind == "Deployment" and o.name == name for o in rs.metadata.owner_references or [])
    ]
    by_rev = sorted(rss, key=lambda rs: int(rs.metadata.annotations["deployment.kubernetes.io/revision"]))
    current = int(d.metadata.annotations["deployment.kubernetes.io/revision"])
    prev = [rs for rs in by_rev if int(rs.metadata.annotations["deployment.kubernetes.io/revision"]) < current][-1]
    api = apps.api_client
    tmpl = api.sanitize_for_serialization(prev.spec.template)
    tmpl["metadata"]["labels"].pop("pod-template-hash", None)
    apps.replace_namespaced_deployment(
        name,
        ns,
        {**api.sanitize_for_serialization(d), "spec": {**api.sanitize_for_serialization(d.spec), "template": tmpl}},
    )


def test_nodes_register_ready_and_untainted(sandbox):
    api, core, _ = k8s_clients(sandbox)
    nodes = [n for n in core.list_node(label_selector="lantern.dev/sandbox=true").items]
    assert sorted(n.metadata.name for n in nodes) == ["sandbox-node-1", "sandbox-node-2"]
    for n in nodes:
        ready = [c for c in n.status.conditions if c.type == "Ready"][0]
        assert ready.status == "True"
        assert not n.spec.taints
        assert (
            n.status.daemon_endpoints.kubelet_endpoint.port
            == json.loads((sandbox.home / "state.json").read_text())["ports"]["kubelet"]
        )
    st = cluster.status(sandbox.home)
    assert st["ready"] and all(p["alive"] for p in st["processes"])
    assert st["rss_mb_total"] > 50
    assert sandbox.kubeconfig.is_file() and sandbox.context == "lantern-sandbox"


def test_up_is_idempotent(sandbox):
    before = cluster.status(sandbox.home)["processes"]
    cluster.up(sandbox.home, nodes=2)
    after = cluster.status(sandbox.home)["processes"]
    assert [p["pid"] for p in before] == [p["pid"] for p in after]


def test_unknown_scenario_is_a_clear_error(sandbox):
    with pytest.raises(ScenarioError, match="no scenario 'nope'.*bad-deploy"):
        apply_scenario("nope", home=sandbox.home)


def test_bad_deploy_crashloops_and_rollout_undo_heals(sandbox):
    api, core, apps = k8s_clients(sandbox)
    sc = apply_scenario("bad-deploy", home=sandbox.home)
    assert cluster.info(sandbox.home).symptom == sc.symptom
    bad = "registry.example.com/shop/checkout-api:2.5.0"

    def crashed():
        out = []
        for p in _pods(core, "shop", "checkout-api"):
            cs = (p.status.container_statuses or [None])[0]
            if p.spec.containers[0].image == bad and cs and cs.restart_count >= 1 and cs.last_state.terminated:
                out.append((p, cs))
        return out

    pod, cs = wait_for("a 2.5.0 pod with a restart", crashed, timeout=60)[0]
    assert cs.last_state.terminated.exit_code == 1
    assert cs.last_state.terminated.reason == "Error"
    assert not cs.ready
    # The back-off shows as CrashLoopBackOff between runs.
    wait_for(
        "CrashLoopBackOff",
        lambda: any(
            c.state.waiting and c.state.waiting.reason == "CrashLoopBackOff"
            for p in _pods(core, "shop", "checkout-api")
            if p.spec.containers[0].image == bad
            for c in p.status.container_statuses or []
        ),
        timeout=40,
    )

    name = pod.metadata.name
    prev = core.read_namespaced_pod_log(name, "shop", container="api", previous=True)
    assert "PAYMENTS_TIMEOUT_MS" in prev and "panic:" in prev
    assert "checkout-api 2.5.0 starting" in prev
    tail = core.read_namespaced_pod_log(name, "shop", container="api", previous=True, tail_lines=2, timestamps=True)
    assert len(tail.strip().splitlines()) == 2 and tail[:4].isdigit()
    healthy = [p for p in _pods(core, "shop", "checkout-api") if p.spec.containers[0].image.endswith(":2.4.3")]
    assert healthy and all(c.ready for p in healthy for c in p.status.container_statuses or [])
    with pytest.raises(Exception) as err:
        core.read_namespaced_pod_log(healthy[0].metadata.name, "shop", container="api", previous=True)
    assert "previous terminated container" in str(err.value)

    events = core.list_namespaced_event("shop", field_selector=f"involvedObject.name={name}").items
    reasons = {e.reason for e in events}
    assert {"Pulling", "Created", "Started", "BackOff"} <= reasons
    backoff = [e for e in events if e.reason == "BackOff"][0]
    assert backoff.type == "Warning" and backoff.source.component == "kubelet"

    rss = [rs for rs in apps.list_namespaced_replica_set("shop").items if rs.metadata.name.startswith("checkout-api-")]
    causes = {rs.metadata.annotations.get("kubernetes.io/change-cause") for rs in rss}
    assert any("2.5.0" in (c or "") for c in causes) and len(rss) == 3

    _rollout_undo(apps, "shop", "checkout-api")
    wait_for(
        "checkout-api healthy on 2.4.3",
        lambda: _available(apps, "shop", "checkout-api", "registry.example.com/shop/checkout-api:2.4.3"),
        timeout=60,
    )
    pods = wait_for(
        "old pods gone", lambda: (lambda ps: ps if len(ps) == 3 else None)(_pods(core, "shop", "checkout-api"))
    )
    assert all(p.status.container_statuses[0].ready for p in pods)
    eps = core.read_namespaced_endpoints("checkout-api", "shop")
    assert sum(len(s.addresses or []) for s in eps.subsets or []) == 3
    wait_for(
        "start-up lines",
        lambda: "listening on :8080" in core.read_namespaced_pod_log(pods[0].metadata.name, "shop", container="api"),
        timeout=5,
    )


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl not installed")
def test_kubectl_logs_previous_and_describe(sandbox):
    apply_scenario("oom", home=sandbox.home)
    _, core, _ = k8s_clients(sandbox)
    pod = wait_for(
        "an OOMKilled restart",
        lambda: next(
            (
                p
                for p in _pods(core, "analytics", "report-worker")
                if (p.status.container_statuses or [None])[0] and p.status.container_statuses[0].restart_count >= 1
            ),
            None,
        ),
        timeout=60,
    )
    kc = ["kubectl", "--kubeconfig", str(sandbox.kubeconfig), "--context", sandbox.context, "-n", "analytics"]
    out = subprocess.run([*kc, "logs", pod.metadata.name, "--previous"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert "close to container limit" in out.stdout
    desc = subprocess.run([*kc, "describe", "pod", pod.metadata.name], capture_output=True, text=True, timeout=30)
    assert "OOMKilled" in desc.stdout and "137" in desc.stdout


def test_oom_then_raising_the_limit_fixes_it(sandbox):
    api, core, apps = k8s_clients(sandbox)
    apply_scenario("oom", home=sandbox.home)
    cs = wait_for(
        "OOMKilled lastState",
        lambda: next(
            (
                c
                for p in _pods(core, "analytics", "report-worker")
                for c in p.status.container_statuses or []
                if c.last_state.terminated and c.last_state.terminated.reason == "OOMKilled"
            ),
            None,
        ),
        timeout=60,
    )
    assert cs.last_state.terminated.exit_code == 137
    node_events = core.list_namespaced_event("default", field_selector="reason=SystemOOM").items
    assert node_events and node_events[0].involved_object.kind == "Node"
    assert _available(apps, "analytics", "report-api")
    apps.patch_namespaced_deployment(
        "report-worker",
        "analytics",
        {
            "spec": {
                "template": {"spec": {"containers": [{"name": "worker", "resources": {"limits": {"memory": "768Mi"}}}]}}
            }
        },
    )
    wait_for("report-worker available", lambda: _available(apps, "analytics", "report-worker"), timeout=60)
    time.sleep(12 * 0.3 + 1)  # longer than an OOM run would take: the new pods must still be up
    for p in _pods(core, "analytics", "report-worker"):
        c = p.status.container_statuses[0]
        assert c.ready and c.restart_count == 0 and c.state.running
    log = core.read_namespaced_pod_log(_pods(core, "analytics", "report-worker")[0].metadata.name, "analytics")
    assert "memory limit 768Mi" in log and "all 8 shards loaded" in log  # the run above took seconds, lines are out


def _served_not_after(endpoint: str, server_name: str) -> dt.datetime:
    """notAfter of the certificate a TLS port presents (no verification: we want to see it, expired or not)."""
    import socket
    import ssl

    from cryptography import x509

    host, port = endpoint.rsplit(":", 1)
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with (
        socket.create_connection((host, int(port)), timeout=5) as raw,
        ctx.wrap_socket(raw, server_hostname=server_name) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    return x509.load_der_x509_certificate(der).not_valid_after_utc


def test_expired_cert_secret_is_really_expired_and_replacing_it_heals(sandbox):
    api, core, apps = k8s_clients(sandbox)
    apply_scenario("expired-cert", home=sandbox.home)
    eps = core.read_namespaced_config_map(ENDPOINTS_CONFIGMAP, "kube-system").data
    assert eps["tls-server-name"] == "api.shop.example"

    def served_or_none():
        try:
            return _served_not_after(eps["tls"], "api.shop.example")
        except OSError:  # the agent picks the new scenario up on its next tick
            return None

    served = wait_for("the gateway port serving", served_or_none, timeout=10)
    assert served < dt.datetime.now(dt.UTC)
    sec = core.read_namespaced_secret("gateway-tls", "edge")
    crt = base64.b64decode(sec.data["tls.crt"])
    assert pki.not_after(crt) < dt.datetime.now(dt.UTC) - dt.timedelta(days=8)
    wait_for(
        "Unhealthy x509 events",
        lambda: [
            e
            for e in core.list_namespaced_event("edge", field_selector="reason=Unhealthy").items
            if "x509" in e.message
        ],
        timeout=40,
    )
    assert not any(c.ready for p in _pods(core, "edge", "api-gateway") for c in p.status.container_statuses or [])
    now = dt.datetime.now(dt.UTC)
    new_crt, new_key = pki.self_signed(
        "api.shop.example", ["api.shop.example"], now - dt.timedelta(hours=1), now + dt.timedelta(days=90)
    )
    core.patch_namespaced_secret(
        "gateway-tls",
        "edge",
        {"data": {"tls.crt": base64.b64encode(new_crt).decode(), "tls.key": base64.b64encode(new_key).decode()}},
    )
    wait_for("gateway ready after the new certificate", lambda: _available(apps, "edge", "api-gateway"), timeout=40)
    assert _served_not_after(eps["tls"], "api.shop.example") > dt.datetime.now(dt.UTC) + dt.timedelta(days=80)
    gw = _pods(core, "edge", "api-gateway")[0].metadata.name
    wait_for(
        "the reload in the log", lambda: "certificate reloaded" in core.read_namespaced_pod_log(gw, "edge"), timeout=10
    )


def test_dns_wrong_service_name_then_service_created(sandbox):
    api, core, apps = k8s_clients(sandbox)
    apply_scenario("dns", home=sandbox.home)
    wait_for(
        "orders-api pods running",
        lambda: (
            len(
                [
                    p
                    for p in _pods(core, "shop", "orders-api")
                    if p.status.container_statuses and p.status.container_statuses[0].state.running
                ]
            )
            == 3
        ),
    )
    assert not _available(apps, "shop", "orders-api")
    pod = _pods(core, "shop", "orders-api")[0]
    log = wait_for(
        "the lookup error in the log",
        lambda: (lambda t: t if "no such host" in t else None)(core.read_namespaced_pod_log(pod.metadata.name, "shop")),
        timeout=10,
    )
    assert "inventory.shop.svc.cluster.local" in log
    core.create_namespaced_service(
        "shop",
        {
            "metadata": {"name": "inventory"},
            "spec": {"selector": {"app": "inventory"}, "ports": [{"port": 8080, "targetPort": "http"}]},
        },
    )
    wait_for("orders-api ready", lambda: _available(apps, "shop", "orders-api"), timeout=40)


def _get_json(url: str):
    with urllib.request.urlopen(url, timeout=5) as r:
        return json.loads(r.read())


def test_queue_backlog_grows_without_consumers_and_drains_when_scaled(sandbox):
    api, core, apps = k8s_clients(sandbox)
    apply_scenario("queue-backlog", home=sandbox.home)  # asks for 3 nodes: the agent adds one
    assert len(core.list_node(label_selector="lantern.dev/sandbox=true").items) == 3
    eps = core.read_namespaced_config_map(ENDPOINTS_CONFIGMAP, "kube-system").data
    rabbit, prom = eps["rabbitmq"], eps.get("prometheus")
    wait_for("producers ready", lambda: _available(apps, "fulfillment", "orders-api"), timeout=40)
    time.sleep(1)  # the agent reads Deployment status on its next tick
    q1 = _get_json(f"{rabbit}/api/queues/%2F/orders")
    assert q1["consumers"] == 0 and q1["messages"] > 10000
    time.sleep(1.5)
    q2 = _get_json(f"{rabbit}/api/queues/%2F/orders")
    assert q2["messages"] > q1["messages"]
    # Prometheus scrapes the queue's depth and fires both queue alerts
    require_monitoring()
    growth = wait_for(
        "the backlog's growth rate in Prometheus",
        lambda: _get_json(
            f"{prom}/api/v1/query?query=deriv%28rabbitmq_queue_messages%7Bqueue%3D%22orders%22%7D%5B10s%5D%29"
        )["data"]["result"],
        timeout=30,
    )
    assert float(growth[0]["value"][1]) > 0
    wait_for(
        "RabbitmqQueueBacklog and RabbitmqNoConsumer firing",
        lambda: (
            {"RabbitmqQueueBacklog", "RabbitmqNoConsumer"}
            <= {a["labels"]["alertname"] for a in monitoring.alerts(prom, "fulfillment")}
        ),
        timeout=60,
    )
    apps.patch_namespaced_deployment_scale("order-worker", "fulfillment", {"spec": {"replicas": 2}})
    wait_for("order-worker available", lambda: _available(apps, "fulfillment", "order-worker"), timeout=40)
    q3 = _get_json(f"{rabbit}/api/queues/%2F/orders")
    time.sleep(1.5)
    q4 = _get_json(f"{rabbit}/api/queues/%2F/orders")
    assert q4["consumers"] == 2 and q4["messages"] < q3["messages"]
    bad = urllib.request.Request(f"{prom}/api/v1/query?query=sum(rate(x%5B5m%5D)")
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(bad, timeout=5)
    assert err.value.code == 400 and "parse error" in json.loads(err.value.read())["error"]


def _running_since(core) -> dict:
    return {
        (p.metadata.namespace, p.metadata.name): (c.restart_count, c.state.running.started_at)
        for p in core.list_pod_for_all_namespaces().items
        for c in p.status.container_statuses or []
        if c.state.running and c.ready
    }


def test_down_then_up_again_keeps_state(sandbox):
    _, core, _ = k8s_clients(sandbox)
    if not _running_since(core):
        apply_scenario("dns", home=sandbox.home)
        wait_for("healthy pods", lambda: _running_since(core), timeout=40)
    before = {ns.metadata.name for ns in core.list_namespace().items}
    healthy = _running_since(core)
    assert cluster.down(sandbox.home)
    st = cluster.status(sandbox.home)
    assert not any(p["alive"] for p in st["processes"])
    assert not cluster.down(sandbox.home)
    si = cluster.up(sandbox.home, nodes=2)
    _, core, _ = k8s_clients(si)
    assert len(core.list_node(label_selector="lantern.dev/sandbox=true").items) == 2
    assert before <= {ns.metadata.name for ns in core.list_namespace().items}
    # Like a restarted kubelet, the agent adopts running containers instead of restarting them.
    time.sleep(2)
    after = _running_since(core)
    kept = {k: v for k, v in healthy.items() if k in after}
    assert kept and {k: after[k] for k in kept} == kept
    assert cluster.status(sandbox.home)["ready"]


def test_default_world_without_kubeconfig_uses_the_running_sandbox(sandbox, tmp_path, monkeypatch):
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    kc, ctx, symptom = cluster.default_world(home=sandbox.home)
    assert kc == sandbox.kubeconfig and ctx == "lantern-sandbox"
    current = cluster.info(sandbox.home)
    assert current.scenario and symptom == current.symptom
    assert not (tmp_path / ".kube").exists()


def test_image_pull_backoff_then_fixing_the_tag(sandbox):
    api, core, apps = k8s_clients(sandbox)
    apply_scenario("image-pull", home=sandbox.home)
    bad = "registry.example.com/search/search-api:3.10"
    wait_for(
        "ImagePullBackOff",
        lambda: [
            p
            for p in _pods(core, "search", "search-api")
            if p.spec.containers[0].image == bad
            and p.status.phase == "Pending"
            and p.status.container_statuses
            and p.status.container_statuses[0].state.waiting
            and p.status.container_statuses[0].state.waiting.reason == "ImagePullBackOff"
        ],
        timeout=40,
    )
    failed = core.list_namespaced_event("search", field_selector="reason=Failed").items
    assert any("Failed to pull image" in e.message and bad in e.message for e in failed)
    pod = next(p for p in _pods(core, "search", "search-api") if p.spec.containers[0].image == bad)
    with pytest.raises(Exception) as err:
        core.read_namespaced_pod_log(pod.metadata.name, "search")
    assert "waiting to start" in str(err.value)
    apps.patch_namespaced_deployment(
        "search-api",
        "search",
        {
            "spec": {
                "template": {
                    "spec": {"containers": [{"name": "api", "image": "registry.example.com/search/search-api:3.1.0"}]}
                }
            }
        },
    )
    wait_for(
        "search-api on 3.1.0",
        lambda: _available(apps, "search", "search-api", "registry.example.com/search/search-api:3.1.0"),
        timeout=60,
    )


def test_cli_status_and_scenarios(sandbox, capsys):
    from console.cli import main

    assert main(["sandbox", "--home", str(sandbox.home), "status", "--json"]) == 0
    st = json.loads(capsys.readouterr().out)
    assert st["ready"] and st["context"] == "lantern-sandbox" and st["rss_mb_total"] > 0
    assert main(["sandbox", "scenario", "list"]) == 0
    listed = capsys.readouterr().out
    assert "bad-deploy" in listed and "queue-backlog" in listed
    assert main(["sandbox", "--home", str(sandbox.home), "scenario", "no-such"]) == 1
    assert "no scenario 'no-such'" in capsys.readouterr().out
    assert main(["sandbox", "--home", str(sandbox.home), "up"]) == 0
    out = capsys.readouterr().out
    assert str(sandbox.kubeconfig) in out and "~/.kube/config is untouched" in out


def test_logs_follow_streams_new_lines_through_the_api_server(sandbox):
    _, core, apps = k8s_clients(sandbox)
    apply_scenario("queue-backlog", home=sandbox.home)
    wait_for("producers ready", lambda: _available(apps, "fulfillment", "orders-api"), timeout=40)
    pod = _pods(core, "fulfillment", "orders-api")[0].metadata.name
    resp = core.read_namespaced_pod_log(pod, "fulfillment", follow=True, tail_lines=0, _preload_content=False)
    got = b""
    deadline = time.monotonic() + 20
    for chunk in resp.stream(64):
        got += chunk
        if got.count(b"published order confirmation batch") >= 2 or time.monotonic() > deadline:
            break
    resp.release_conn()
    # tailLines=0: nothing was there when the stream opened, so these lines arrived while following.
    assert got.count(b"published order confirmation batch") >= 2
