"""The kubernetes pack against the real sandbox API server (Kubernetes 1.20) with the node agent.

Needs sandbox (the sandbox helper's part); skips when it or its binaries are missing.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

testing = pytest.importorskip("sandbox.testing", reason="the sandbox (sandbox/testing.py) is not in this tree")

from skills.kube.client import clear_cache  # noqa: E402
from skills.loader import load_packs  # noqa: E402
from skills.registry import pack_tools  # noqa: E402

pytestmark = pytest.mark.sandbox
BAD = "registry.example.com/shop/checkout-api:2.5.0"
GOOD = "registry.example.com/shop/checkout-api:2.4.3"


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    """A running sandbox for this module (its own data directory)."""
    with testing.sandbox_for_tests(tmp_path_factory.mktemp("sandbox"), nodes=2, time_scale=0.3) as info:
        yield info


@pytest.fixture
def tools(sandbox, monkeypatch):
    """Every kubernetes/tls action as a Tool bound to the sandbox context."""
    monkeypatch.setenv("KUBECONFIG", str(sandbox.kubeconfig))
    clear_cache()
    packs = [p for p in load_packs().packs if p.name in ("kubernetes", "tls")]
    yield {t.name: t for t in pack_tools(packs, context=sandbox.context)}
    clear_cache()


async def call(tools, tool_name, /, **args):
    out = await tools[tool_name].handler(args)
    assert out.status in ("ok", "partial"), f"{tool_name}: {out.text}"
    return out


def _apply(sandbox, name):
    from sandbox.scenario import apply_scenario

    return apply_scenario(name, home=sandbox.home)


async def test_bad_deploy_investigation_and_rollout_undo_heals(sandbox, tools):
    _apply(sandbox, "bad-deploy")

    async def crashing():
        out = await tools["kubernetes.list_pods"].handler(
            {"namespace": "shop", "label_selector": "app=checkout-api", "problems_only": True}
        )
        return [p for p in out.data["pods"] if p["restarts"] >= 1]

    import asyncio

    async def wait(what, fn, timeout=90):
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        while loop.time() < end:
            got = await fn()
            if got:
                return got
            await asyncio.sleep(0.5)
        raise AssertionError(f"timed out waiting for {what}")

    bad_pod = (await wait("a restarting 2.5.0 pod", crashing))[0]
    assert bad_pod["status"] in ("CrashLoopBackOff", "Error", "Running")

    desc = await call(tools, "kubernetes.describe_pod", name=bad_pod["name"], namespace="shop")
    (container,) = desc.data["containers"]
    assert container["image"] == BAD and container["last"]["exit_code"] == 1
    logs = await call(tools, "kubernetes.get_pod_logs", name=bad_pod["name"], namespace="shop", previous=True)
    assert "PAYMENTS_TIMEOUT_MS" in logs.text and "previous (terminated) container" in logs.text
    # A workload's name where a pod's is wanted: reads take its first crashing pod (else its first
    # not ready), as `kubectl describe pods PREFIX` and `kubectl logs deploy/NAME` pick one, and say so.
    meant = await call(tools, "kubernetes.describe_pod", name="checkout-api", namespace="shop")
    assert meant.data["name"].startswith("checkout-api-") and meant.data["note"].startswith(
        f'no pod "checkout-api"; this is {meant.data["name"]}, the first crashing'
    )
    logs = await call(tools, "kubernetes.get_pod_logs", name="checkout-api", namespace="shop", previous=True)
    assert (
        "logs of pod/checkout-api-" in logs.text
        and 'no pod "checkout-api"' in logs.text
        and "PAYMENTS_TIMEOUT_MS" in logs.text
    )

    hist = await call(tools, "kubernetes.rollout_history", name="checkout-api", namespace="shop")
    revs = hist.data["revisions"]
    assert [r["revision"] for r in revs] == [1, 2, 3] and revs[-1]["current"] and "2.5.0" in revs[-1]["change_cause"]

    dep = await call(tools, "kubernetes.describe_deployment", name="checkout-api", namespace="shop")
    assert dep.data["revision"] == "3" and len(dep.data["replicasets"]) == 3

    undo = await call(tools, "kubernetes.rollout_undo", name="checkout-api", namespace="shop")
    assert undo.data["rolled_back"] is True and undo.data["to_revision"] == 2 and undo.data["images"] == [GOOD]

    async def healed():
        out = await tools["kubernetes.list_deployments"].handler({"namespace": "shop"})
        row = next(d for d in out.data["deployments"] if d["name"] == "checkout-api")
        pods = (
            await tools["kubernetes.list_pods"].handler({"namespace": "shop", "label_selector": "app=checkout-api"})
        ).data["pods"]
        return (
            row["images"] == GOOD
            and row["ready"] == "3/3"
            and len(pods) == 3
            and all(p["status"] == "Running" for p in pods)
        )

    await wait("checkout-api healthy on 2.4.3", healed)
    after = await call(tools, "kubernetes.rollout_history", name="checkout-api", namespace="shop")
    current = [r for r in after.data["revisions"] if r["current"]]
    assert current[0]["revision"] == 4 and current[0]["images"] == GOOD

    svc = await call(tools, "kubernetes.describe_service", name="checkout-api", namespace="shop")
    assert svc.data["pods_matching_selector"] == 3 and len(svc.data["endpoints_ready"]) == 3

    events = await call(tools, "kubernetes.list_events", namespace="shop", warnings_only=True)
    assert any(e["reason"] == "BackOff" for e in events.data["events"])


async def test_reads_and_writes_on_nodes_and_workloads(sandbox, tools):
    _apply(sandbox, "bad-deploy")
    nodes = (await call(tools, "kubernetes.node_conditions")).data["nodes"]
    assert len(nodes) == 2 and all(n["ready"] == "True" for n in nodes)
    node = nodes[0]["name"]
    version = await call(tools, "kubernetes.cluster_version")
    assert version.data["version"].startswith("1.20")

    cordoned = await call(tools, "kubernetes.cordon_node", node=node)
    assert cordoned.data["unschedulable_now"] is True
    assert (await call(tools, "kubernetes.describe_node", name=node)).data["unschedulable"] is True
    await call(tools, "kubernetes.uncordon_node", node=node)
    assert (await call(tools, "kubernetes.describe_node", name=node)).data["unschedulable"] is False

    scaled = await call(tools, "kubernetes.scale_deployment", name="cart", namespace="shop", replicas=0)
    assert scaled.data["from"] == 2 and scaled.data["to"] == 0
    await call(tools, "kubernetes.scale_deployment", name="cart", namespace="shop", replicas=2)

    restarted = await call(tools, "kubernetes.rollout_restart", name="payments", namespace="shop")
    assert restarted.data["restarted"] == "deployment/payments"

    yaml_out = await call(tools, "kubernetes.get_resource_yaml", kind="cm", name="checkout-config", namespace="shop")
    assert "PAYMENT_TIMEOUT_MS" in yaml_out.text and "managedFields" not in yaml_out.text
    missing = await tools["kubernetes.get_resource_yaml"].handler({"kind": "VolumeSnapshot", "name": "x"})
    assert missing.status == "error" and "not available on this cluster version" in missing.text

    pods = (await call(tools, "kubernetes.list_pods", namespace="shop", label_selector="app=payments")).data["pods"]
    deleted = await call(tools, "kubernetes.delete_pod", name=pods[0]["name"], namespace="shop")
    assert deleted.data["controlled_by"].startswith("ReplicaSet/")

    gone = await tools["kubernetes.describe_pod"].handler({"name": "no-such-pod", "namespace": "shop"})
    assert gone.status == "error" and "NotFound" in gone.text
    # The API server's 404 travels with the error, so the dispatcher reads it as a wrong argument
    # (the model is told to check them), not as an internal failure.
    assert gone.data == {"status_code": 404}
    # A write given a workload's name refuses and names its pods (reads pick one; see above).
    refused = await tools["kubernetes.delete_pod"].handler({"name": "payments", "namespace": "shop"})
    assert refused.status == "error" and refused.data == {"status_code": 404}
    assert "Call again with one of these pod names" in refused.text and "payments-" in refused.text


async def test_drain_evicts_with_the_old_eviction_api(sandbox, tools):
    _apply(sandbox, "bad-deploy")
    nodes = (await call(tools, "kubernetes.node_conditions")).data["nodes"]
    node = nodes[-1]["name"]
    out = await call(tools, "kubernetes.drain_node", node=node, wait_seconds=20)
    assert out.data["cordoned"] is True and "refused" not in out.data
    assert out.data["evicted"], out.text
    await call(tools, "kubernetes.uncordon_node", node=node)


async def test_expired_certificate_in_a_tls_secret(sandbox, tools):
    _apply(sandbox, "expired-cert")
    out = await call(tools, "tls.check_kubernetes_tls_secret", name="gateway-tls", namespace="edge")
    assert out.data["status"] == "expired" and -10 < out.data["days_left"] < -8
    assert out.data["key_matches_certificate"] is True
    assert "api.shop.example" in out.data["chain"][0]["sans"]
    ok = await call(tools, "tls.check_kubernetes_tls_secret", name="internal-tls", namespace="edge")
    assert ok.data["status"] == "valid"


async def test_queue_backlog_seen_through_the_queue_and_prometheus_packs(sandbox, tools, monkeypatch):
    import asyncio

    from sandbox.cluster import info

    _apply(sandbox, "queue-backlog")
    endpoints = info(sandbox.home).endpoints
    monkeypatch.setenv("LANTERN_QUEUE_URL", endpoints["rabbitmq"])
    monkeypatch.setenv("LANTERN_PROMETHEUS_URL", endpoints["prometheus"])
    rest = {t.name: t for t in pack_tools([p for p in load_packs().packs if p.name in ("queue", "prometheus")])}
    queues = await call(rest, "queue.list_queues")
    (orders,) = [q for q in queues.data["items"] if q["name"] == "orders"]
    assert orders["messages"] > 10000 and orders["consumers"] == 0
    testing.require_monitoring()
    loop = asyncio.get_running_loop()
    end = loop.time() + 60
    while "RabbitmqQueueBacklog" not in (alerts := await call(rest, "prometheus.list_alerts")).text:
        assert loop.time() < end, f"RabbitmqQueueBacklog did not fire: {alerts.text}"
        await asyncio.sleep(1)
    assert "orders" in alerts.text

    await call(tools, "kubernetes.scale_deployment", name="order-worker", namespace="fulfillment", replicas=2)
    end = loop.time() + 90
    while loop.time() < end:
        q = (await call(rest, "queue.get_queue", name="orders")).data
        if q["consumers"] > 0:
            break
        await asyncio.sleep(1)
    assert q["consumers"] > 0
