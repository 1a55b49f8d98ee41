"""The sandbox's metrics and alerts on the real parts: the node agent's exporters, Debian's Prometheus
scraping them and evaluating alert-rules.yaml, Alertmanager posting to a webhook with a bearer token,
and the prometheus pack running real PromQL against it."""

from __future__ import annotations

import json
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from sandbox import cluster, monitoring
from sandbox.scenario import apply_scenario
from sandbox.testing import k8s_clients, require_monitoring, wait_for

pytestmark = pytest.mark.sandbox
TOKEN = "am-test-token-5f0c2a"


@pytest.fixture
def prom(sandbox) -> str:
    """The sandbox Prometheus' URL (skips, or fails under LANTERN_REQUIRE_SANDBOX=1, when not installed)."""
    require_monitoring()
    return cluster.info(sandbox.home).endpoints["prometheus"]


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.loads(r.read())


def _query(prom: str, q: str) -> list[dict]:
    return _get(f"{prom}/api/v1/query?" + urllib.parse.urlencode({"query": q}))["data"]["result"]


def _firing(prom: str, name: str, ns: str) -> list[dict]:
    return [a for a in monitoring.alerts(prom, ns) if a["labels"]["alertname"] == name]


class _Receiver(BaseHTTPRequestHandler):
    """A loopback webhook receiver that keeps every POST (its Authorization header and JSON body)."""

    got: list[tuple[str, dict]] = []

    def log_message(self, fmt: str, *args: Any) -> None:
        return

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.got.append((self.headers.get("Authorization", ""), json.loads(body)))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()


@pytest.fixture
def receiver(sandbox) -> Iterator[tuple[str, list[tuple[str, dict]]]]:
    """A webhook receiver the sandbox's Alertmanager posts to, with TOKEN as its bearer token."""
    handler = type("Receiver", (_Receiver,), {"got": []})
    srv = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{srv.server_address[1]}/hooks/alertmanager"
    cluster.set_alert_webhook(url, TOKEN, sandbox.home)
    try:
        yield url, handler.got
    finally:
        cluster.set_alert_webhook(None, home=sandbox.home)
        srv.shutdown()


def test_the_agent_exposes_the_exporters_in_the_exposition_format(sandbox):
    from prometheus_client.parser import text_string_to_metric_families

    require_monitoring()
    apply_scenario("oom", home=sandbox.home)
    port = cluster.Layout(sandbox.home).read_state()["ports"]["metrics"]

    def families(path: str) -> dict[str, Any]:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
            assert r.headers["Content-Type"].startswith("text/plain; version=")
            return {f.name: f for f in text_string_to_metric_families(r.read().decode())}

    ks = wait_for(
        "report-worker's restarts",
        lambda: (lambda f: f if any(s.value >= 1 for s in f["kube_pod_container_status_restarts"].samples) else None)(
            families("/metrics/kube-state")
        ),
        timeout=60,
    )
    assert ks["kube_pod_container_status_restarts"].type == "counter"
    assert {"kube_deployment_spec_replicas", "kube_pod_container_status_last_terminated_reason"} <= set(ks)

    def worker_limit() -> Any:
        # the worker container shows up once its pod runs again after a restart: wait for it
        f = families("/metrics/cadvisor")
        limits = {s.labels["container"]: s.value for s in f["container_spec_memory_limit_bytes"].samples}
        return f if "worker" in limits else None

    cadvisor = wait_for("the worker container in cadvisor", worker_limit, timeout=60)
    assert cadvisor["container_cpu_usage_seconds"].type == "counter"
    limits = {s.labels["container"]: s.value for s in cadvisor["container_spec_memory_limit_bytes"].samples}
    assert limits.get("worker") == 256 * 2**20
    app = families("/metrics")
    assert app["http_request_duration_seconds"].type == "histogram"
    assert {s.labels["service"] for s in app["http_requests"].samples} == {"report-api"}


async def test_the_prometheus_pack_runs_real_promql(sandbox, prom, monkeypatch):
    from skills.loader import load_packs
    from skills.registry import pack_tools

    apply_scenario("oom", home=sandbox.home)
    monkeypatch.setenv("LANTERN_PROMETHEUS_URL", prom)
    tools = {t.name: t for t in pack_tools([p for p in load_packs().packs if p.name == "prometheus"])}

    async def call(name: str, **args: Any) -> Any:
        out = await tools[name].handler(args)
        assert out.status == "ok", f"{name}: {out.text}"
        return out.data

    rate = 'sum by (service) (rate(http_requests_total{namespace="analytics"}[15s]))'
    wait_for("two scrapes of report-api's requests", lambda: _query(prom, rate), timeout=60)
    data = await call("prometheus.instant_query", query=rate)
    (series,) = data["data"]["result"]
    assert series["metric"] == {"service": "report-api"} and 4 < float(series["value"][1]) < 12  # 8 req/s
    p99 = (
        'histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket{service="report-api"}[15s])))'
    )
    (q,) = (await call("prometheus.instant_query", query=p99))["data"]["result"]
    assert 0.1 < float(q["value"][1]) < 0.5  # healthy: a 35 ms median, p99 about 5x that
    now = time.time()
    series = (
        await call(
            "prometheus.range_query",
            query='sum(kube_pod_container_status_restarts_total{namespace="analytics"})',
            start=str(now - 10),
            end=str(now),
            step="1s",
        )
    )["data"]["result"]
    assert len(series) == 1 and len(series[0]["values"]) >= 3
    targets = (await call("prometheus.list_targets"))["data"]["activeTargets"]
    assert {t["labels"]["job"]: t["health"] for t in targets} == {
        "kube-state-metrics": "up",
        "kubelet": "up",
        "workloads": "up",
    }
    rules = (await call("prometheus.list_rules", type="alert"))["data"]["groups"]
    names = {r["name"] for g in rules for r in g["rules"]}
    assert {"KubePodCrashLooping", "KubeContainerOOMKilled", "HighErrorRate", "HighLatency"} <= names
    assert all(r["health"] == "ok" for g in rules for r in g["rules"])


def test_oom_fires_pages_the_webhook_with_its_token_and_resolves_after_the_fix(sandbox, prom, receiver):
    url, got = receiver
    apply_scenario("oom", home=sandbox.home)
    firing = wait_for("KubeContainerOOMKilled firing", lambda: _firing(prom, "KubeContainerOOMKilled", "analytics"), 90)
    assert firing[0]["labels"]["severity"] == "warning" and firing[0]["labels"]["container"] == "worker"
    assert "OOMKilled" in firing[0]["annotations"]["description"]
    assert firing[0]["annotations"]["runbook_url"].startswith("https://")
    am = cluster.info(sandbox.home).endpoints["alertmanager"]
    wait_for(
        "the alert in Alertmanager",
        lambda: [
            a for a in _get(f"{am}/api/v2/alerts?active=true") if a["labels"]["alertname"] == "KubeContainerOOMKilled"
        ],
        30,
    )

    def page(status: str) -> dict | None:
        for auth, body in got:
            if body["groupLabels"].get("alertname") == "KubeContainerOOMKilled" and body["status"] == status:
                return {"auth": auth, **body}
        return None

    sent = wait_for("the firing page at the webhook", lambda: page("firing"), 30)
    assert sent["auth"] == f"Bearer {TOKEN}"
    assert sent["version"] == "4" and sent["receiver"] == monitoring.RECEIVER
    assert sent["groupKey"] and sent["externalURL"] == am
    alert = sent["alerts"][0]
    assert alert["status"] == "firing" and alert["labels"]["namespace"] == "analytics"
    assert alert["annotations"]["runbook_url"] and alert["generatorURL"].startswith(prom)

    # the reference fix (`lantern drill run oom --model reference`): a memory limit the job fits in
    _, _, apps = k8s_clients(sandbox)
    resources = {"limits": {"memory": "640Mi"}, "requests": {"memory": "512Mi"}}
    patch = {"spec": {"template": {"spec": {"containers": [{"name": "worker", "resources": resources}]}}}}
    apps.patch_namespaced_deployment("report-worker", "analytics", patch)
    wait_for("the alert resolved in Prometheus", lambda: not _firing(prom, "KubeContainerOOMKilled", "analytics"), 120)
    resolved = wait_for("the resolved notification", lambda: page("resolved"), 60)
    assert resolved["auth"] == f"Bearer {TOKEN}" and resolved["alerts"][0]["status"] == "resolved"


def test_the_webhook_setting_is_checked_and_written_for_alertmanager(tmp_path):
    require_monitoring()
    with pytest.raises(cluster.SandboxError, match="http:// or https://"):
        cluster.set_alert_webhook("ftp://example", "t", tmp_path)
    with pytest.raises(cluster.SandboxError, match="one non-empty line"):
        cluster.set_alert_webhook("http://127.0.0.1:1/hook", "a\nb", tmp_path)
    cluster.set_alert_webhook("http://127.0.0.1:1/hook", "s3cret", tmp_path)
    files = monitoring.Files(tmp_path)
    assert files.token.read_text() == "s3cret" and files.token.stat().st_mode & 0o777 == 0o600
    ports = {"metrics": 1, "prometheus": 2, "alertmanager": 3}
    monitoring.write_configs(tmp_path, ports, 0.3, "http://127.0.0.1:1/hook")
    out = subprocess.run(["amtool", "check-config", str(files.alertmanager)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    out = subprocess.run(["promtool", "check", "config", str(files.prometheus)], capture_output=True, text=True)
    assert out.returncode == 0 and "12 rules found" in out.stdout, out.stdout + out.stderr
    assert "[18s]" in files.rules.read_text()  # [1m] at time_scale 0.3
