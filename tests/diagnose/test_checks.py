"""The engine's checks read kubectl-style output the way an on-call engineer does."""

from __future__ import annotations

from engine.diagnose import Diagnoser
from skills.kube.checks import KubernetesChecks, quantity, workload_of


def checking(namespace: str = "default") -> Diagnoser:
    """A diagnoser with the Kubernetes checks, as a session with the kubernetes pack has."""
    return Diagnoser([KubernetesChecks()], namespace=namespace)


PODS = """NAME                                READY   STATUS             RESTARTS      AGE
api-7c9f8d6b5d-x2x9q                1/1     Running            0             5m
worker-5f6d7c8b9-abcde              0/1     Pending            0             40s
web-6d8f9c7b5-k2j4h                 0/1     ImagePullBackOff   0             2m
cache-58d9f6c7b8-q1w2e              1/1     Running            3 (20s ago)   6m
"""


def _top(d: Diagnoser) -> tuple[str, str]:
    f = d.ranked()[0]
    return f.cause, f.object


def test_workload_names_lose_their_hashes():
    assert workload_of("redis-cart-5858bb886-24zbs") == "redis-cart"
    assert workload_of("cartservice-9b469fbc4") == "cartservice"
    assert workload_of("frontend-external") == "frontend-external"
    assert quantity("300Mi") == 300 * 1024**2 and quantity("11") == 11 and quantity("abc") is None


def test_unhealthy_pods_are_described_next_worst_first():
    d = checking(namespace="shop")
    assert d.observe("k.get", {"namespace": "shop"}, PODS) == []
    reads = d.next_reads()
    assert [r.intent for r in reads] == ["describe_pod"] * 3
    assert reads[0].arguments() == {"name": "worker-5f6d7c8b9-abcde", "namespace": "shop"}
    assert "Pending" in reads[0].why and {r.arguments()["name"] for r in reads} >= {
        "web-6d8f9c7b5-k2j4h",
        "cache-58d9f6c7b8-q1w2e",
    }
    d.mark_done(reads[0])
    assert reads[0] not in d.next_reads(), "a read that ran is not asked for again"


def test_a_quota_refusal_in_events_names_the_namespace_and_the_resource():
    # Some recorders print events without the header line.
    events = (
        "2m   Normal    ScalingReplicaSet   deployment/api   Scaled up replica set api-7c9f8d6b5d to 2\n"
        '2m   Warning   FailedCreate        replicaset/api-7c9f8d6b5d   Error creating: pods "api-7c9f8d6b5d-zz" is forbidden: '
        "exceeded quota: mem, requested: requests.memory=300Mi, used: requests.memory=1Gi, limited: requests.memory=1Gi\n"
    )
    d = checking(namespace="shop")
    found = d.observe("k.events", {"namespace": "shop"}, events)
    assert [(f.cause, f.object) for f in found] == [("namespace_memory_quota_exceeded", "namespace/shop")]
    assert "exceeded quota" in found[0].evidence
    assert d.observe("k.events", {"namespace": "shop"}, events) == [], "a finding is told once"


DESCRIBE_PENDING = """Name:             worker-5f6d7c8b9-abcde
Namespace:        shop
Node:             <none>
Status:           Pending
Containers:
  worker:
    Image:      registry.example/worker:1.4
    Port:       8080/TCP
Node-Selectors:              disk=ssd
Events:
  Type     Reason            Age   From               Message
  ----     ------            ----  ----               -------
  Warning  FailedScheduling  40s   default-scheduler  0/4 nodes are available: 1 node(s) had untolerated taint {dedicated: gpu}, 1 node(s) were unschedulable, 2 node(s) didn't match Pod's node affinity/selector.
"""


def test_the_scheduler_message_is_read_for_the_blocking_reason():
    d = checking(namespace="shop")
    d.observe("k.describe", {}, DESCRIBE_PENDING)
    ranked = d.ranked()
    assert (ranked[0].cause, ranked[0].object) == ("taint_toleration_mismatch", "service/worker")
    assert ranked[1].cause == "node_selector_mismatch" and ranked[1].weight < ranked[0].weight
    insufficient = DESCRIBE_PENDING.replace(
        "1 node(s) had untolerated taint {dedicated: gpu}, ", "3 Insufficient memory, "
    ).replace(", 2 node(s) didn't match Pod's node affinity/selector", "")
    d2 = checking()
    d2.observe("k.describe", {}, insufficient)
    assert _top(d2) == ("insufficient_node_memory", "service/worker")


def _describe_pull(message: str) -> str:
    return f"""Name:             web-6d8f9c7b5-k2j4h
Namespace:        shop
Node:             node-2/10.0.0.2
Status:           Pending
Containers:
  web:
    Image:          registry.example/web:v2
    Port:           80/TCP
    State:          Waiting
      Reason:       ImagePullBackOff
Events:
  Type     Reason   Age   From     Message
  ----     ------   ----  ----     -------
  Warning  Failed   10s   kubelet  Failed to pull image "registry.example/web:v2": {message}
  Warning  Failed   10s   kubelet  Error: ErrImagePull
"""


def test_image_pull_errors_say_whether_the_tag_the_registry_or_the_credentials_are_wrong():
    cases = {
        "rpc error: code = NotFound desc = failed to pull and unpack image: not found": "incorrect_image_reference",
        "failed to resolve reference: dial tcp: lookup registry.example on 10.96.0.10:53: no such host": "image_registry_dns_failure",
        "failed to authorize: failed to fetch anonymous token: 401 Unauthorized": "missing_image_pull_secret",
    }
    for message, cause in cases.items():
        d = checking()
        d.observe("k.describe", {}, _describe_pull(message))
        assert _top(d) == (cause, "service/web"), message


DESCRIBE_PROBE = """Name:             cache-58d9f6c7b8-q1w2e
Namespace:        shop
Node:             node-1/10.0.0.1
Status:           Running
Containers:
  cache:
    Port:           6379/TCP
    State:          Running
    Last State:     Terminated
      Reason:       Error
      Exit Code:    137
    Liveness:   tcp-socket :6380 delay=5s timeout=1s period=10s #success=1 #failure=3
    Readiness:  tcp-socket :6379 delay=5s timeout=1s period=10s #success=1 #failure=3
Events:
  Type     Reason     Age               From     Message
  ----     ------     ----              ----     -------
  Warning  Unhealthy  3s (x7 over 80s)  kubelet  Liveness probe failed: dial tcp 10.1.0.7:6380: connect: connection refused
"""


def test_a_probe_aimed_at_a_port_the_container_does_not_listen_on():
    d = checking()
    d.observe("k.describe", {}, DESCRIBE_PROBE)
    f = d.ranked()[0]
    assert (f.cause, f.object) == ("liveness_probe_incorrect_port", "service/cache")
    assert "6380" in f.evidence and "6379" in f.evidence


def test_oom_kills_and_dead_node_agents():
    d = checking()
    d.observe(
        "k.describe",
        {},
        DESCRIBE_PROBE.replace("Reason:       Error", "Reason:       OOMKilled")
        .replace(":6380", ":6379")
        .split("Events:")[0],
    )
    assert _top(d) == ("oom_killed", "service/cache")
    agent = "Service: kubelet\nNode: node-3\nStatus: ○ kubelet.service - Kubernetes Kubelet\n     Active: inactive (dead) since Fri 2025-12-05 15:12:29 CST; 2min ago\n"
    d2 = checking()
    d2.observe("node.status", {}, agent)
    assert _top(d2) == ("kubelet_unavailable", "node/node-3")
    running = agent.replace("inactive (dead)", "active (running)").replace("kubelet", "containerd")
    assert d2.observe("node.status", {}, running) == []


def test_a_not_ready_node_asks_for_its_agents():
    nodes = "node_count: 2\nnodes:\n- name: cp-1\n  role: control-plane\n  status: Ready\n- name: node-3\n  status: NotReady\n"
    d = checking()
    d.observe("cluster", {}, nodes)
    assert [(r.intent, r.arguments()["agent"]) for r in d.next_reads()] == [
        ("node_service", "kubelet"),
        ("node_service", "containerd"),
    ]


def test_alerts_point_at_the_saturated_or_slowest_service():
    alerts = """status: has_anomalies
alerts:
- type: Service
  name: gateway
  evidence:
  - 'LATENCY_DEGRADATION [Slow Response] | gateway-p90latency: Normal=30ms -> Current=900ms (+2900.0%)'
- type: Service
  name: ledger
  evidence:
  - 'LATENCY_DEGRADATION [Slow Response] | ledger-p90latency: Normal=4ms -> Current=1700ms (+42400.0%)'
"""
    d = checking()
    d.observe("alerts", {}, alerts)
    assert _top(d) == ("pod_network_delay", "service/ledger")
    cpu = alerts.replace(
        "  - 'LATENCY_DEGRADATION [Slow Response] | gateway",
        "  - 'RESOURCE_SATURATION [cpu core] | Normal=0.02 -> Current=0.4'\n  - 'LATENCY_DEGRADATION [Slow Response] | gateway",
    )
    d2 = checking()
    d2.observe("alerts", {}, cpu)
    assert _top(d2) == ("pod_cpu_overload", "service/gateway")


def test_services_without_endpoints_and_used_up_quotas():
    healthy = PODS.splitlines()[0] + "\n" + PODS.splitlines()[1] + "\n"
    d = checking(namespace="shop")
    d.observe("pods", {}, healthy)
    assert {r.intent for r in d.next_reads()} == {"quota", "endpoints", "services"}, (
        "healthy pods: look at what routes to them"
    )
    d.observe("ep", {}, "NAME   ENDPOINTS         AGE\napi    <none>            5m\nweb    10.1.0.9:8080     5m\n")
    assert _top(d) == ("service_selector_mismatch", "service/api")
    d2 = checking(namespace="shop")
    d2.observe(
        "quota",
        {"namespace": "shop"},
        "NAME            AGE    REQUEST           LIMIT\nsvc-quota       111s   services: 11/11   \nmem   2m   requests.memory: 100Mi/1Gi   \n",
    )
    assert [(f.cause, f.object) for f in d2.ranked()] == [("namespace_service_quota_exceeded", "namespace/shop")]


def test_an_event_about_a_pod_that_is_gone_counts_for_less():
    d = checking(namespace="shop")
    d.observe("pods", {}, PODS)
    old = "37m  Warning  FailedScheduling  pod/web-55f4bdbfc8-q5r4z  0/4 nodes are available: 3 Insufficient cpu.\n"
    d.observe("events", {}, old)
    d.observe("k.describe", {}, _describe_pull("manifest unknown: not found"))
    assert _top(d) == ("incorrect_image_reference", "service/web")
    cpu = next(f for f in d.ranked() if f.cause == "insufficient_node_cpu")
    assert cpu.weight < 0.5


def test_output_that_is_not_kubectl_yields_nothing_and_breaks_nothing():
    d = checking()
    for text in (
        "",
        "   ",
        "{not json",
        "nodes: [unclosed",
        "Name: x\nContainers:\nStatus: Running\n",
        "LAST SEEN TYPE REASON OBJECT MESSAGE\n",
    ):
        assert d.observe("t", {}, text) == []


def test_a_client_packs_structured_pods_events_and_describe_are_read_too():
    d = checking(namespace="shop")
    d.observe(
        "kubernetes.list_pods",
        {},
        "(rendered)",
        {
            "pods": [
                {
                    "name": "api-7c9f8d6b5d-x2x9q",
                    "ready": "0/1",
                    "status": "CrashLoopBackOff",
                    "restarts": 4,
                    "last_terminated": "OOMKilled",
                }
            ]
        },
    )
    assert _top(d) == ("oom_killed", "service/api")
    assert d.next_reads()[0].arguments()["name"] == "api-7c9f8d6b5d-x2x9q"
    d2 = checking(namespace="shop")
    described = {
        "name": "web-6d8f9c7b5-k2j4h",
        "phase": "Pending",
        "containers": [{"name": "web", "current": {"state": "Waiting", "reason": "ImagePullBackOff"}}],
        "events": [
            {
                "type": "Warning",
                "reason": "Failed",
                "message": 'Failed to pull image "r/web:v9": manifest unknown: not found',
            }
        ],
    }
    d2.observe("kubernetes.describe_pod", {"name": "web-6d8f9c7b5-k2j4h"}, "(rendered)", described)
    assert _top(d2) == ("incorrect_image_reference", "service/web")
    d3 = checking(namespace="shop")
    d3.observe(
        "kubernetes.list_events",
        {},
        "",
        {
            "events": [
                {
                    "type": "Warning",
                    "reason": "FailedCreate",
                    "object": "replicaset/api-7c9f8d6b5d",
                    "message": "pods is forbidden: exceeded quota: q, requested: limits.cpu=2",
                }
            ]
        },
    )
    assert _top(d3) == ("namespace_cpu_quota_exceeded", "namespace/shop")


def test_a_backoff_event_on_a_pod_asks_for_its_previous_containers_log():
    # Events alone (no pod list, no describe yet): kubelet's BackOff says the pod keeps restarting
    # a failed container, so the log of that container is the next read, once per workload.
    d = checking(namespace="shop")
    events = {
        "events": [
            {
                "type": "Warning",
                "reason": "BackOff",
                "object": "pod/checkout-api-6f498c5fdc-744lc",
                "message": "Back-off restarting failed container",
            },
            {
                "type": "Warning",
                "reason": "BackOff",
                "object": "pod/checkout-api-6f498c5fdc-x1x2x",
                "message": "Back-off restarting failed container",
            },
            {
                "type": "Warning",
                "reason": "FailedMount",
                "object": "pod/ledger-5d4c3b2a1-qwert",
                "message": "MountVolume.SetUp failed",
            },
        ]
    }
    d.observe("kubernetes.list_events", {"namespace": "shop"}, "(rendered)", events)
    logs = [r for r in d.next_reads() if r.intent == "logs"]
    assert [r.arguments() for r in logs] == [
        {"service": "checkout-api", "pod": "checkout-api-6f498c5fdc-744lc", "namespace": "shop", "previous": True}
    ]
    assert "keeps restarting" in logs[0].why
    d.mark_done(logs[0])
    # once the log is read, no second log read for the workload
    d.observe("kubernetes.get_pod_logs", {"name": "checkout-api-6f498c5fdc-744lc"}, "starting\nready")
    assert not [r for r in d.next_reads() if r.intent == "logs"]


def test_a_crashing_pod_not_yet_restarted_has_its_current_containers_log_read():
    # `logs --previous` needs a restarted container: with 0 restarts the current one holds the log.
    d = checking(namespace="shop")
    rows = "NAME                  READY   STATUS             RESTARTS   AGE\nweb-6d8f9c7b5-k2j4h   0/1     CrashLoopBackOff   0          9s\n"
    d.observe("k.get", {"namespace": "shop"}, rows)
    assert d.checks[0].state.pods["web-6d8f9c7b5-k2j4h"].restarts == 0
    d.observe(
        "kubernetes.describe_pod",
        {},
        "(rendered)",
        {"name": "web-6d8f9c7b5-k2j4h", "containers": [{"name": "web", "current": {"reason": "CrashLoopBackOff"}}]},
    )
    (logs,) = [r for r in d.next_reads() if r.intent == "logs"]
    assert logs.arguments()["previous"] is False
