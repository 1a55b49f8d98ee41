"""The scenario workloads' metrics in the Prometheus exposition format, as the exporters a real
cluster runs would report them: kube-state-metrics (`/metrics/kube-state`), the kubelet's cAdvisor
(`/metrics/cadvisor`) and the workloads' own (`/metrics`: HTTP requests and latency, the RabbitMQ
exporter, cert-manager and a blackbox probe of the scenario's TLS endpoint).

Gauges are read from the agent's view at scrape time; counters and histograms accumulate on each
tick (`Metrics.advance`) from what the workloads are doing then (running containers use CPU, a
Deployment with fewer ready replicas than desired answers 5xx and slower), so `rate()`,
`increase()` and `histogram_quantile()` in the sandbox's Prometheus give true answers. Alerts are
Prometheus' own (`sandbox/alert-rules.yaml`); nothing here evaluates PromQL.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from prometheus_client.core import (
    CollectorRegistry,
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from sandbox.agent.api import View, parse_ts
from sandbox.agent.nodes import Nodes
from sandbox.agent.pods import Container, Kubelet
from sandbox.agent.workload import QueueModel
from sandbox.scenario import parse_quantity

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
"""http_request_duration_seconds' upper bounds (the client libraries' defaults)."""

REQUESTS_PER_REPLICA = 8.0
"""Requests per second a serving Deployment receives for each replica it wants."""

MEDIAN_LATENCY = 0.035
"""Median request latency (seconds) of a Deployment with every replica ready."""

LATENCY_SIGMA = 0.7
"""Spread of the log-normal latency distribution (p99 is about 5x the median)."""

STARTUP_GRACE = 30.0
"""Seconds a new Deployment gets to become ready before its callers' requests reach it (and fail)."""

POD_PHASES = ("Pending", "Running", "Succeeded", "Failed", "Unknown")


@dataclass
class _Traffic:
    """One serving Deployment's request counters since the agent started."""

    codes: dict[str, float] = field(default_factory=dict)
    buckets: list[float] = field(default_factory=lambda: [0.0] * len(LATENCY_BUCKETS))
    count: float = 0.0
    total_seconds: float = 0.0


def _lognormal_cdf(x: float, median: float) -> float:
    return 0.5 * (1.0 + math.erf((math.log(x) - math.log(median)) / (LATENCY_SIGMA * math.sqrt(2.0))))


def _serves_http(d: dict) -> bool:
    """Whether a Deployment's pods declare an HTTP port (named http or https)."""
    tmpl = ((d.get("spec") or {}).get("template") or {}).get("spec") or {}
    return any(
        (p.get("name") or "") in ("http", "https") for c in tmpl.get("containers") or [] for p in c.get("ports") or []
    )


class Metrics:
    """The counters the workloads accumulate, and three collectors that expose them with the gauges of this moment."""

    def __init__(self, view: View, nodes: Nodes, kubelet: Kubelet, queue: QueueModel) -> None:
        self.view = view
        self.nodes = nodes
        self.kubelet = kubelet
        self.queue = queue
        self.cpu_seconds: dict[tuple[str, str, str], float] = {}
        """(namespace, pod, container) → CPU seconds used."""
        self.traffic: dict[tuple[str, str], _Traffic] = {}
        """(namespace, service) → its request counters."""
        self.queue_totals = [0.0, 0.0]
        """Messages published and delivered since the scenario's queue started."""
        self.last = time.time()
        self.registries = {
            "/metrics/kube-state": _registry(self._kube_state),
            "/metrics/cadvisor": _registry(self._cadvisor),
            "/metrics": _registry(self._workloads),
        }
        """Scrape path → the registry it exposes."""

    # ------------------------------------------------------------ counters

    def advance(self, now: float) -> None:
        """Add what the workloads did since the last tick to the counters (each tick)."""
        dt_s = min(5.0, max(0.0, now - self.last))
        self.last = now
        with self.view.lock:
            pods = list(self.kubelet.pods.items())
            conts = dict(self.kubelet.containers)
            for uid, pod in pods:
                for c in pod["spec"]["containers"]:
                    st = conts.get((uid, c["name"]))
                    if st and st.phase == "running":
                        key = (pod["metadata"]["namespace"], pod["metadata"]["name"], c["name"])
                        self.cpu_seconds[key] = self.cpu_seconds.get(key, 0.0) + self._cpu_rate(st, now) * dt_s
            live = {(p["metadata"]["namespace"], p["metadata"]["name"]) for _, p in pods}
            for key in [k for k in self.cpu_seconds if k[:2] not in live]:
                del self.cpu_seconds[key]
            serving = {(d["metadata"]["namespace"], d["metadata"]["name"]): d for d in self.view.deployments}
            for key in [k for k in self.traffic if k not in serving]:
                del self.traffic[key]  # deleted (a scenario reset): its series end, as a gone pod's would
            for key, d in serving.items():
                if _serves_http(d) and self._in_service(key, d, now):
                    self._serve(d, dt_s)
            if self.queue.depth is not None:
                pub, deliv = self.queue.rates
                self.queue_totals[0] += pub * dt_s / self.view.time_scale
                self.queue_totals[1] += deliv * dt_s / self.view.time_scale

    def _cpu_rate(self, st: Container, now: float) -> float:
        """Cores a running container uses: a busy start, an OOM-bound one thrashing as it nears its limit."""
        mem = st.rule.memory_mb or 48.0
        if st.rule.behaviour == "oom":
            return 0.3 + 0.6 * self._oom_progress(st, now)
        if st.rule.behaviour == "crash":
            return 0.25
        return 0.02 + mem / 4000.0

    def _in_service(self, key: tuple[str, str], d: dict, now: float) -> bool:
        """Whether clients send it requests yet: once it has been ready, or when it is past its start-up
        (a Deployment that never came up fails its callers; one still starting has none)."""
        if key in self.traffic:
            return True
        ready = int((d.get("status") or {}).get("readyReplicas") or 0)
        born = parse_ts(d["metadata"].get("creationTimestamp")) or now
        return ready > 0 or now - born > STARTUP_GRACE * self.view.time_scale

    def _serve(self, d: dict, dt_s: float) -> None:
        """A Deployment's requests over dt_s: 5xx for the share of replicas not ready, slower when fewer serve."""
        md = d["metadata"]
        want = int((d.get("spec") or {}).get("replicas") or 0)
        ready = int((d.get("status") or {}).get("readyReplicas") or 0)
        n = REQUESTS_PER_REPLICA * max(want, 1) * dt_s
        t = self.traffic.setdefault((md["namespace"], md["name"]), _Traffic())
        if ready == 0:
            t.codes["503"] = t.codes.get("503", 0.0) + n
            t.buckets = [b + n for b in t.buckets]  # refused at once: every bucket
            t.count += n
            t.total_seconds += n * 0.002
            return
        missing = max(0.0, 1.0 - ready / max(want, 1))
        errors = n * (0.001 + 0.5 * missing)
        t.codes["200"] = t.codes.get("200", 0.0) + n - errors
        t.codes["503"] = t.codes.get("503", 0.0) + errors * 0.8
        t.codes["500"] = t.codes.get("500", 0.0) + errors * 0.2
        median = MEDIAN_LATENCY * max(1.0, want / ready)
        t.buckets = [b + n * _lognormal_cdf(le, median) for b, le in zip(t.buckets, LATENCY_BUCKETS, strict=True)]
        t.count += n
        t.total_seconds += n * median * math.exp(LATENCY_SIGMA**2 / 2)

    def _oom_progress(self, st: Container, now: float) -> float:
        """0 → 1 over an OOM-bound instance's run: how far it has climbed towards its limit."""
        run = max(0.1, st.rule.run_seconds * self.view.time_scale)
        return min(1.0, (now - (st.started_at or now)) / run)

    # ------------------------------------------------------------ kube-state-metrics

    def _kube_state(self) -> Iterator[Metric]:
        """Nodes, pods, containers and Deployments as kube-state-metrics reports them."""
        node_info = GaugeMetricFamily("kube_node_info", "Information about a cluster node.", labels=["node"])
        node_ready = GaugeMetricFamily(
            "kube_node_status_condition", "The condition of a cluster node.", labels=["node", "condition", "status"]
        )
        for n in self.nodes.names:
            node_info.add_metric([n], 1)
            node_ready.add_metric([n, "Ready", "true"], 1)
        yield node_info
        yield node_ready
        yield from self._pod_families()
        yield from self._deployment_families()

    def _pod_families(self) -> Iterator[Metric]:
        pod_l, cont_l = ["namespace", "pod"], ["namespace", "pod", "container"]
        fam = {
            "info": GaugeMetricFamily("kube_pod_info", "Information about pod.", labels=[*pod_l, "node", "pod_ip"]),
            "phase": GaugeMetricFamily("kube_pod_status_phase", "The pods current phase.", labels=[*pod_l, "phase"]),
            "cinfo": GaugeMetricFamily(
                "kube_pod_container_info", "Information about a container in a pod.", labels=[*cont_l, "image"]
            ),
            "restarts": CounterMetricFamily(
                "kube_pod_container_status_restarts", "The number of container restarts per container.", labels=cont_l
            ),
            "ready": GaugeMetricFamily(
                "kube_pod_container_status_ready", "Whether the container's readiness check succeeded.", labels=cont_l
            ),
            "running": GaugeMetricFamily(
                "kube_pod_container_status_running", "Whether the container is currently running.", labels=cont_l
            ),
            "waiting": GaugeMetricFamily(
                "kube_pod_container_status_waiting_reason",
                "Why the container is in a waiting state.",
                labels=[*cont_l, "reason"],
            ),
            "last": GaugeMetricFamily(
                "kube_pod_container_status_last_terminated_reason",
                "The last reason the container was in a terminated state.",
                labels=[*cont_l, "reason"],
            ),
            "limits": GaugeMetricFamily(
                "kube_pod_container_resource_limits",
                "The number of limit resource requested by a container.",
                labels=[*cont_l, "node", "resource", "unit"],
            ),
            "requests": GaugeMetricFamily(
                "kube_pod_container_resource_requests",
                "The number of requested request resource by a container.",
                labels=[*cont_l, "node", "resource", "unit"],
            ),
        }
        for pod, c, st in self._containers():
            self._pod_samples(fam, pod, c, st)
        yield from fam.values()

    def _containers(self) -> list[tuple[dict, dict, Container]]:
        """(pod, container spec, its state) of every container the kubelet has met, first container first."""
        with self.view.lock:
            pods = list(self.kubelet.pods.items())
            conts = dict(self.kubelet.containers)
        return [
            (pod, c, conts[(uid, c["name"])])
            for uid, pod in pods
            for c in pod["spec"]["containers"]
            if (uid, c["name"]) in conts
        ]

    def _pod_samples(self, fam: dict[str, Metric], pod: dict, c: dict, st: Container) -> None:
        """One container's samples, and its pod's when it is the pod's first container."""
        ns, name, node = pod["metadata"]["namespace"], pod["metadata"]["name"], pod["spec"].get("nodeName", "")
        if c is pod["spec"]["containers"][0]:
            fam["info"].add_metric([ns, name, node, self.kubelet.pod_ips.get(pod["metadata"]["uid"], "")], 1)
            phase = (pod.get("status") or {}).get("phase") or "Pending"
            for p in POD_PHASES:
                fam["phase"].add_metric([ns, name, p], 1 if p == phase else 0)
        cl = [ns, name, c["name"]]
        fam["cinfo"].add_metric([*cl, c.get("image", "")], 1)
        fam["restarts"].add_metric(cl, st.restart)
        fam["ready"].add_metric(cl, 1 if st.ready else 0)
        fam["running"].add_metric(cl, 1 if st.phase == "running" else 0)
        if st.waiting and st.phase != "running":
            fam["waiting"].add_metric([*cl, st.waiting[0]], 1)
        if st.last_term:
            fam["last"].add_metric([*cl, st.last_term["reason"]], 1)
        res = c.get("resources") or {}
        for kind, key in (("limits", "limits"), ("requests", "requests")):
            for resource, unit in (("memory", "byte"), ("cpu", "core")):
                q = parse_quantity((res.get(key) or {}).get(resource))
                if q:
                    fam[kind].add_metric([*cl, node, resource, unit], q)

    def _deployment_families(self) -> Iterator[Metric]:
        lab = ["namespace", "deployment"]
        gauges = {
            "spec_replicas": ("kube_deployment_spec_replicas", "Number of desired pods for a deployment."),
            "replicas": ("kube_deployment_status_replicas", "The number of replicas per deployment."),
            "readyReplicas": ("kube_deployment_status_replicas_ready", "The number of ready replicas per deployment."),
            "availableReplicas": (
                "kube_deployment_status_replicas_available",
                "The number of available replicas per deployment.",
            ),
            "unavailableReplicas": (
                "kube_deployment_status_replicas_unavailable",
                "The number of unavailable replicas per deployment.",
            ),
            "updatedReplicas": (
                "kube_deployment_status_replicas_updated",
                "The number of updated replicas per deployment.",
            ),
            "generation": ("kube_deployment_metadata_generation", "Sequence number of the desired state."),
            "observedGeneration": (
                "kube_deployment_status_observed_generation",
                "The generation observed by the deployment controller.",
            ),
        }
        fams = {k: GaugeMetricFamily(name, doc, labels=lab) for k, (name, doc) in gauges.items()}
        cond = GaugeMetricFamily(
            "kube_deployment_status_condition",
            "The current status conditions of a deployment.",
            labels=[*lab, "condition", "status"],
        )
        for d in self.view.deployments:
            st, md = d.get("status") or {}, d["metadata"]
            key = [md["namespace"], md["name"]]
            values = {**st, "spec_replicas": (d.get("spec") or {}).get("replicas"), "generation": md.get("generation")}
            for k, f in fams.items():
                f.add_metric(key, float(values.get(k) or 0))
            for c in st.get("conditions") or []:
                for s in ("true", "false", "unknown"):
                    cond.add_metric([*key, c["type"], s], 1 if str(c.get("status", "")).lower() == s else 0)
        yield from fams.values()
        yield cond

    # ------------------------------------------------------------ cAdvisor

    def _cadvisor(self) -> Iterator[Metric]:
        """Running containers' memory working set, memory limit and CPU time, as the kubelet's cAdvisor reports them."""
        lab = ["namespace", "pod", "container", "image"]
        mem = GaugeMetricFamily("container_memory_working_set_bytes", "Current working set in bytes.", labels=lab)
        limit = GaugeMetricFamily("container_spec_memory_limit_bytes", "Memory limit for the container.", labels=lab)
        cpu = CounterMetricFamily(
            "container_cpu_usage_seconds", "Cumulative cpu time consumed in seconds.", labels=[*lab, "cpu"]
        )
        now = time.time()
        for pod, c, st in self._containers():
            ns, name = pod["metadata"]["namespace"], pod["metadata"]["name"]
            key = [ns, name, c["name"], c.get("image", "")]
            if st.phase != "running":
                continue
            lim = parse_quantity(((c.get("resources") or {}).get("limits") or {}).get("memory"))
            limit.add_metric(key, lim or 0)
            mem.add_metric(key, float(int(self._working_set(st, lim, now))))
            cpu.add_metric([*key, "total"], round(self.cpu_seconds.get((ns, name, c["name"]), 0.0), 6))
        yield from (mem, limit, cpu)

    def _working_set(self, st: Container, limit: float | None, now: float) -> float:
        """A running container's memory: its rule's figure, or a climb towards the limit for one set to OOM."""
        if st.rule.behaviour == "oom" and limit:
            return limit * (0.45 + 0.55 * self._oom_progress(st, now))
        return (st.rule.memory_mb or 48.0) * 2**20

    # ------------------------------------------------------------ the workloads' own exporters

    def _workloads(self) -> Iterator[Metric]:
        """HTTP traffic of the serving Deployments, the RabbitMQ exporter, cert-manager and the TLS probe."""
        yield from self._http_families()
        yield from self._queue_families()
        yield from self._certificate_families()

    def _http_families(self) -> Iterator[Metric]:
        lab = ["namespace", "service"]
        reqs = CounterMetricFamily("http_requests", "Requests served, by status code.", labels=[*lab, "method", "code"])
        hist = HistogramMetricFamily("http_request_duration_seconds", "Request latency.", labels=lab)
        with self.view.lock:
            traffic = {k: (dict(t.codes), list(t.buckets), t.count, t.total_seconds) for k, t in self.traffic.items()}
        for (ns, svc), (codes, buckets, count, total) in sorted(traffic.items()):
            for code, n in sorted(codes.items()):
                reqs.add_metric([ns, svc, "GET", code], round(n, 3))
            bounds = [(str(le), round(b, 3)) for le, b in zip(LATENCY_BUCKETS, buckets, strict=True)]
            hist.add_metric([ns, svc], [*bounds, ("+Inf", round(count, 3))], round(total, 6))
        yield reqs
        yield hist

    def _queue_families(self) -> Iterator[Metric]:
        sc = self.view.scenario
        if not (sc and sc.queue and self.queue.depth is not None):
            return
        q, lab = sc.queue, ["queue", "vhost", "namespace"]
        key = [q.name, q.vhost, sc.namespace]
        depth = float(int(self.queue.depth))
        gauges = (
            ("rabbitmq_queue_messages", "Sum of ready and unacknowledged messages.", depth),
            ("rabbitmq_queue_messages_ready", "Messages ready to be delivered to consumers.", depth),
            ("rabbitmq_queue_messages_unacked", "Messages delivered to consumers but not yet acknowledged.", 0.0),
            ("rabbitmq_queue_consumers", "Consumers on a queue.", float(self.queue.consumers)),
        )
        for name, doc, v in gauges:
            yield _gauge(name, doc, lab, key, v)
        for name, doc, v in (
            ("rabbitmq_queue_messages_published", "Messages published to the queue.", self.queue_totals[0]),
            ("rabbitmq_queue_messages_delivered", "Messages delivered to consumers.", self.queue_totals[1]),
        ):
            fam = CounterMetricFamily(name, doc, labels=lab)
            fam.add_metric(key, round(v, 3))
            yield fam

    def _certificate_families(self) -> Iterator[Metric]:
        """cert-manager's expiry time of each readable TLS Secret; a blackbox probe of the scenario's TLS endpoint."""
        expiry = GaugeMetricFamily(
            "certmanager_certificate_expiration_timestamp_seconds",
            "The date after which the certificate expires, as a Unix timestamp.",
            labels=["namespace", "name", "secret"],
        )
        world = self.view.world
        for (ns, name), sec in sorted(world.secrets.items()):
            if sec.get("type") == "kubernetes.io/tls" and (na := world.cert_not_after(ns, name)):
                expiry.add_metric([ns, name, name], max(0.0, na.timestamp()))
        yield expiry
        sc = self.view.scenario
        if not (sc and sc.tls_endpoint):
            return
        na = world.cert_not_after(sc.namespace, sc.tls_endpoint.secret)
        key, lab = [f"https://{sc.tls_endpoint.server_name}", sc.namespace], ["target", "namespace"]
        ok = na is not None and na.timestamp() > time.time()
        yield _gauge("probe_success", "Whether the probe succeeded.", lab, key, 1.0 if ok else 0.0)
        if na is not None:
            yield _gauge(
                "probe_ssl_earliest_cert_expiry",
                "Returns earliest SSL cert expiry date.",
                lab,
                key,
                max(0.0, na.timestamp()),
            )


def _gauge(name: str, doc: str, labels: list[str], key: list[str], value: float) -> GaugeMetricFamily:
    fam = GaugeMetricFamily(name, doc, labels=labels)
    fam.add_metric(key, value)
    return fam


class _Collector(Collector):
    """A prometheus_client collector around one of Metrics' family generators."""

    def __init__(self, families: Callable[[], Iterator[Metric]]) -> None:
        self.families = families

    def collect(self) -> Iterator[Metric]:
        yield from self.families()


def _registry(families: Callable[[], Iterator[Metric]]) -> CollectorRegistry:
    """A registry of its own for one scrape path."""
    reg = CollectorRegistry(auto_describe=False)
    reg.register(_Collector(families))
    return reg
