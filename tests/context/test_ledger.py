"""The fact ledger pulls identifiers, error codes, metrics and times out of real-looking kubectl and log text."""

from __future__ import annotations

from engine.context.ledger import Ledger, extract_facts

GET_PODS = """NAME                                READY   STATUS             RESTARTS        AGE   IP            NODE
checkout-7d9f8c4b6-xk2p9            0/1     CrashLoopBackOff   14 (2m ago)     41m   10.42.0.17    worker-02
checkout-7d9f8c4b6-zm4k7            1/1     Running            0               41m   10.42.0.18    worker-01
redis-cart-0                        1/1     Running            0               3d    10.42.0.9     worker-01
"""

DESCRIBE = """Name:             checkout-7d9f8c4b6-xk2p9
Namespace:        shop
Node:             worker-02/192.168.0.53
Controlled By:    ReplicaSet/checkout-7d9f8c4b6
Containers:
  server:
    Image:          ghcr.io/acme/checkout:v2.3.1-abc123f
    Last State:     Terminated
      Reason:       OOMKilled
      Exit Code:    137
      Started:      Wed, 08 Oct 2025 14:15:00 +0000
      Finished:     Wed, 08 Oct 2025 14:17:42 +0000
    Limits:
      memory:  512Mi
Events:
  Type     Reason     Age                 From     Message
  ----     ------     ----                ----     -------
  Warning  BackOff    2m (x14 over 41m)   kubelet  Back-off restarting failed container server
"""

LOGS = """2025-10-08 12:51:24.101 INFO  [main] c.p.Payment - Started PaymentApplication in 3.2 seconds
2025-10-08 12:51:24.856 ERROR [http-nio-8080-exec-20] c.p.Repo - java.sql.SQLException: Connection pool exhausted - max pool size of 10 reached
2025-10-08 12:51:25.002 ERROR [http-nio-8080-exec-21] c.p.Repo - java.sql.SQLException: Connection pool exhausted - max pool size of 10 reached
upstream returned 503 Service Unavailable; client saw HTTP 429 from api.stripe.com
p99 latency: 2874ms, error rate 37.5%, heap used 1.8GB
"""


def kinds_of(text: str) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for kind, value in extract_facts(text):
        out.setdefault(kind, set()).add(value)
    return out


def test_pod_table_gives_pods_nodes_reasons_and_restarts():
    k = kinds_of(GET_PODS)
    assert {"checkout-7d9f8c4b6-xk2p9", "checkout-7d9f8c4b6-zm4k7", "redis-cart-0"} <= k["pod"]
    assert {"worker-01", "worker-02"} <= k["node"]
    assert "CrashLoopBackOff" in k["reason"]
    assert "14 (2m ago)" in k["metric"]
    # a healthy status is not an error fact
    assert "Running" not in k.get("reason", set())


def test_describe_gives_exit_code_reason_image_sha_and_times():
    k = kinds_of(DESCRIBE)
    assert "OOMKilled" in k["reason"] and "BackOff" in k["reason"]
    assert any("137" in v for v in k["exit_code"])
    assert "ghcr.io/acme/checkout:v2.3.1-abc123f" in k["image"]
    assert "abc123f" in k["sha"]
    assert "v2.3.1-abc123f" in k["version"]
    assert "shop" in k["namespace"] and "worker-02" in k["node"]
    assert "checkout-7d9f8c4b6" in k["deployment"]
    assert {"Wed, 08 Oct 2025 14:15:00 +0000", "Wed, 08 Oct 2025 14:17:42 +0000"} <= k["timestamp"]
    assert "512Mi" in k["metric"]


def test_logs_give_exception_with_message_http_metrics_and_hosts():
    k = kinds_of(LOGS)
    assert "java.sql.SQLException: Connection pool exhausted - max pool size of 10 reached" in k["exception"]
    assert "503 Service Unavailable" in k["http_status"] and "HTTP 429" in k["http_status"]
    assert {"2874ms", "37.5%", "1.8GB"} <= k["metric"]
    assert "api.stripe.com" in k["host"]
    # the error line's time is kept; an INFO line's is only kept as the log's first stamp
    assert "2025-10-08 12:51:24.856" in k["timestamp"]


def test_repeated_log_lines_collapse_and_every_fact_points_to_its_event():
    led = Ledger()
    led.add(GET_PODS, 3, step=1)
    led.add(LOGS, 7, step=2)
    led.add(LOGS, 9, step=3)
    exc = [f for f in led.by_kind("exception") if f.value.startswith("java.sql.SQLException")]
    assert len(exc) == 1 and exc[0].seq == 7 and exc[0].last_seq == 9 and exc[0].count == 2
    pod = [f for f in led.by_kind("pod") if f.value == "checkout-7d9f8c4b6-xk2p9"][0]
    assert pod.ref == "e3" and pod.step == 1
    text = led.render()
    assert "checkout-7d9f8c4b6-xk2p9" in text and "[e3]" in text and "[e7]" in text
    # an event is read once: adding it again changes nothing
    v = led.version
    assert led.add(LOGS, 7) == [] and led.version == v


def test_prose_is_not_mistaken_for_facts():
    k = kinds_of("Let me check the deployment manifest and the pod status, then update the tasks.")
    assert not k.get("pod") and not k.get("deployment") and not k.get("error_line")
