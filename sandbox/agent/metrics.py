"""Prometheus-shaped samples derived from the agent's view of the cluster, their history, and
the alerts a stock kube-prometheus + rabbitmq rule set would fire on them."""

from __future__ import annotations

import collections
import json
import re
from collections.abc import Callable
from typing import NamedTuple

from sandbox.agent.api import View, ts
from sandbox.agent.nodes import Nodes
from sandbox.agent.pods import Container, Kubelet
from sandbox.agent.workload import QueueModel
from sandbox.scenario import parse_quantity

SAMPLE_EVERY = 5.0
"""Seconds between the samples kept for range queries."""


class Metrics:
    """The metric samples of this moment, a one-hour history of them, and the alerts they fire."""

    def __init__(self, view: View, nodes: Nodes, kubelet: Kubelet, queue: QueueModel) -> None:
        self.view = view
        self.nodes = nodes
        self.kubelet = kubelet
        self.queue = queue
        self.history: collections.deque[tuple[float, list[tuple[dict, float]]]] = collections.deque(maxlen=720)
        """(time, samples) every SAMPLE_EVERY seconds."""
        self.alert_since: dict[str, tuple[float, float, dict, dict]] = {}
        """Alert key → (first firing, last firing, labels, annotations)."""
        self.last_sample = 0.0

    def sample(self, now: float) -> None:
        """Keep this moment's samples in the history, every SAMPLE_EVERY seconds."""
        if now - self.last_sample >= SAMPLE_EVERY:
            self.last_sample = now
            series = self.series(now)
            with self.view.lock:
                self.history.append((now, series))

    def series(self, now: float) -> list[tuple[dict, float]]:
        """Current metric samples derived from the agent's view of the cluster."""
        out: list[tuple[dict, float]] = [
            ({"__name__": "up", "job": "kubelet", "instance": n}, 1.0) for n in self.nodes.names
        ]
        out += self._container_series(now)
        out += self._deployment_series()
        out += self._certificate_series()
        out += self._queue_series()
        return out

    def _container_series(self, now: float) -> list[tuple[dict, float]]:
        """kube-state-metrics and cAdvisor samples for every container the kubelet has started."""
        with self.view.lock:
            pods = dict(self.kubelet.pods)
            conts = dict(self.kubelet.containers)
        out: list[tuple[dict, float]] = []
        for uid, pod in pods.items():
            for c in pod["spec"]["containers"]:
                st = conts.get((uid, c["name"]))
                if st:
                    out += self._container_samples(pod, c, st, now)
        return out

    def _container_samples(self, pod: dict, c: dict, st: Container, now: float) -> list[tuple[dict, float]]:
        """One container's restarts, readiness, waiting and last-terminated reasons, limit and working set."""
        base = {
            "namespace": pod["metadata"]["namespace"],
            "pod": pod["metadata"]["name"],
            "container": c["name"],
            "node": pod["spec"].get("nodeName", ""),
        }
        out: list[tuple[dict, float]] = [
            ({"__name__": "kube_pod_container_status_restarts_total", **base}, float(st.restart)),
            ({"__name__": "kube_pod_container_status_ready", **base}, 1.0 if st.ready else 0.0),
        ]
        if st.waiting and st.phase != "running":
            reason = st.waiting[0]
            out.append(({"__name__": "kube_pod_container_status_waiting_reason", **base, "reason": reason}, 1.0))
        if st.last_term:
            reason = st.last_term["reason"]
            out.append(
                ({"__name__": "kube_pod_container_status_last_terminated_reason", **base, "reason": reason}, 1.0)
            )
        limit = parse_quantity(((c.get("resources") or {}).get("limits") or {}).get("memory"))
        if limit:
            labels = {"__name__": "kube_pod_container_resource_limits", **base, "resource": "memory", "unit": "byte"}
            out.append((labels, limit))
        if st.phase == "running":
            mem = self._working_set(st, limit, now)
            out.append(({"__name__": "container_memory_working_set_bytes", **base}, float(int(mem))))
        return out

    def _working_set(self, st: Container, limit: float | None, now: float) -> float:
        """A running container's memory: its rule's figure, or a climb towards the limit for one set to OOM."""
        mem = (st.rule.memory_mb or 48.0) * 2**20
        if st.rule.behaviour == "oom" and limit:
            frac = min(1.0, (now - (st.started_at or now)) / max(0.1, st.rule.run_seconds * self.view.time_scale))
            mem = limit * (0.45 + 0.55 * frac)
        return mem

    def _deployment_series(self) -> list[tuple[dict, float]]:
        """Each Deployment's desired, available and unavailable replicas."""
        out: list[tuple[dict, float]] = []
        for d in self.view.deployments:
            st = d.get("status") or {}
            base = {"namespace": d["metadata"]["namespace"], "deployment": d["metadata"]["name"]}
            out += [
                (
                    {"__name__": "kube_deployment_spec_replicas", **base},
                    float((d.get("spec") or {}).get("replicas") or 0),
                ),
                (
                    {"__name__": "kube_deployment_status_replicas_available", **base},
                    float(st.get("availableReplicas") or 0),
                ),
                (
                    {"__name__": "kube_deployment_status_replicas_unavailable", **base},
                    float(st.get("unavailableReplicas") or 0),
                ),
            ]
        return out

    def _certificate_series(self) -> list[tuple[dict, float]]:
        """cert-manager's expiry timestamp for every TLS Secret whose certificate can be read."""
        out: list[tuple[dict, float]] = []
        for (ns, name), sec in self.view.world.secrets.items():
            if sec.get("type") != "kubernetes.io/tls":
                continue
            na = self.view.world.cert_not_after(ns, name)
            if na:
                labels = {"namespace": ns, "name": name, "secret": name}
                out.append(
                    ({"__name__": "certmanager_certificate_expiration_timestamp_seconds", **labels}, na.timestamp())
                )
        return out

    def _queue_series(self) -> list[tuple[dict, float]]:
        """The rabbitmq exporter's samples for the scenario's queue, when it has one."""
        sc = self.view.scenario
        if not (sc and sc.queue and self.queue.depth is not None):
            return []
        q = sc.queue
        base = {"queue": q.name, "vhost": q.vhost, "namespace": sc.namespace}
        return [
            ({"__name__": "rabbitmq_queue_messages", **base}, float(int(self.queue.depth))),
            ({"__name__": "rabbitmq_queue_messages_ready", **base}, float(int(self.queue.depth))),
            ({"__name__": "rabbitmq_queue_consumers", **base}, float(self.queue.consumers)),
            ({"__name__": "rabbitmq_queue_messages_published_rate", **base}, round(self.queue.rates[0], 2)),
            ({"__name__": "rabbitmq_queue_messages_delivered_rate", **base}, round(self.queue.rates[1], 2)),
        ]

    def alerts(self, now: float) -> list[dict]:
        """Alerts a stock kube-prometheus + rabbitmq rule set would fire for the current state."""
        sc = self.view.scenario
        at = _Moment(now, sc.queue.alert_threshold if sc and sc.queue else None)
        found = [hit for labels, v in self.series(now) if (hit := _first_alert(labels, v, at))]
        for name, labels, ann in found:
            key = name + json.dumps(labels, sort_keys=True)
            first = self.alert_since.get(key, (now, now, labels, ann))[0]
            self.alert_since[key] = (first, now, labels, ann)
        return self._firing(now)

    def _firing(self, now: float) -> list[dict]:
        """The remembered alerts still firing at `now`; the ones that cleared are forgotten.

        Crash-loop and OOM rules look back over a window (max_over_time), so they stay firing between
        restarts; they clear once the pod is gone or has been quiet for the window."""
        with self.view.lock:
            live_pods = {(p["metadata"]["namespace"], p["metadata"]["name"]) for p in self.kubelet.pods.values()}
        out = []
        for key, (first, last, labels, ann) in list(self.alert_since.items()):
            name = key.split("{", 1)[0]
            gone = "pod" in labels and (labels.get("namespace"), labels["pod"]) not in live_pods
            if last < now and (name not in _STICKY or now - last > 300 * self.view.time_scale or gone):
                del self.alert_since[key]
                continue
            out.append(
                {
                    "labels": {"alertname": name, **labels},
                    "annotations": ann,
                    "state": "firing",
                    "activeAt": ts(first),
                    "value": "1e+00",
                }
            )
        return out

    def at(self, t: float) -> list[tuple[dict, float]]:
        """The sample recorded at or before t (Prometheus' 5-minute lookback); nothing before the agent started."""
        with self.view.lock:
            best = None
            for when, series in self.history:
                if when <= t:
                    best = (when, series)
                else:
                    break
        if best is None or t - best[0] > 300:
            return []
        return best[1]


# ---------------------------------------------------------------- alert rules


class _Moment(NamedTuple):
    """What a rule compares a sample with besides its labels: the time, and the queue's backlog threshold."""

    now: float
    backlog_threshold: int | None


def _reason_is(*reasons: str) -> Callable[[dict, float, _Moment], bool]:
    """A condition on a reason-labelled sample (waiting or last-terminated reason)."""

    def holds(lab: dict, v: float, at: _Moment) -> bool:
        return lab["reason"] in reasons

    return holds


def _not_ready(lab: dict, v: float, at: _Moment) -> bool:
    return v == 0 and lab["namespace"] != "kube-system"


def _above_zero(lab: dict, v: float, at: _Moment) -> bool:
    return v > 0


def _is_zero(lab: dict, v: float, at: _Moment) -> bool:
    return v == 0


def _in_the_past(lab: dict, v: float, at: _Moment) -> bool:
    return v < at.now


def _over_backlog_threshold(lab: dict, v: float, at: _Moment) -> bool:
    return at.backlog_threshold is not None and v > at.backlog_threshold


class _Reading:
    """A sample's value as a description quotes it; each form is worked out only when a rule quotes it
    (a queue depth is no timestamp)."""

    def __init__(self, v: float) -> None:
        self.v = v

    @property
    def count(self) -> int:
        """The value as a whole number."""
        return int(self.v)

    @property
    def time(self) -> str:
        """The value as an API timestamp."""
        return ts(self.v)


class _AlertRule(NamedTuple):
    """One alerting rule: the metric it watches, when it fires, and what the alert says.

    `keep` names the sample labels the alert carries (all of them when None); `description` is
    formatted with those labels and `value`, the sample's _Reading."""

    alert: str
    metric: str
    fires: Callable[[dict, float, _Moment], bool]
    keep: tuple[str, ...] | None
    severity: str
    summary: str
    description: str


_POD = ("namespace", "pod")
_CONTAINER = ("namespace", "pod", "container")

_ALERT_RULES = (
    _AlertRule(
        "KubePodCrashLooping",
        "kube_pod_container_status_waiting_reason",
        _reason_is("CrashLoopBackOff"),
        _CONTAINER,
        "warning",
        "Pod is crash looping.",
        'Pod {namespace}/{pod} ({container}) is in waiting state (reason: "CrashLoopBackOff").',
    ),
    _AlertRule(
        "KubePodNotReady",
        "kube_pod_container_status_waiting_reason",
        _reason_is("ImagePullBackOff", "ErrImagePull", "CreateContainerConfigError"),
        _POD,
        "warning",
        "Pod has been in a non-ready state.",
        "Pod {namespace}/{pod} has been in a non-ready state ({reason}).",
    ),
    _AlertRule(
        "KubeContainerOOMKilled",
        "kube_pod_container_status_last_terminated_reason",
        _reason_is("OOMKilled"),
        _CONTAINER,
        "warning",
        "Container was OOMKilled.",
        "Container {container} in pod {namespace}/{pod} was OOMKilled.",
    ),
    _AlertRule(
        "KubePodNotReady",
        "kube_pod_container_status_ready",
        _not_ready,
        _POD,
        "warning",
        "Pod has been in a non-ready state.",
        "Pod {namespace}/{pod} has been in a non-ready state.",
    ),
    _AlertRule(
        "KubeDeploymentReplicasMismatch",
        "kube_deployment_status_replicas_unavailable",
        _above_zero,
        None,
        "warning",
        "Deployment has not matched the expected number of replicas.",
        "Deployment {namespace}/{deployment} has {value.count} unavailable replicas.",
    ),
    _AlertRule(
        "CertificateExpired",
        "certmanager_certificate_expiration_timestamp_seconds",
        _in_the_past,
        None,
        "critical",
        "TLS certificate has expired.",
        "Certificate in secret {namespace}/{secret} expired at {value.time}.",
    ),
    _AlertRule(
        "RabbitmqQueueBacklog",
        "rabbitmq_queue_messages",
        _over_backlog_threshold,
        None,
        "critical",
        "Queue backlog is growing.",
        "Queue {queue} on vhost {vhost} has {value.count} messages ready.",
    ),
    _AlertRule(
        "RabbitmqNoConsumer",
        "rabbitmq_queue_consumers",
        _is_zero,
        None,
        "critical",
        "Queue has no consumers.",
        "Queue {queue} has no consumers.",
    ),
)
"""In the order they are tried: a sample fires the first rule that matches it, at most one."""

_STICKY = ("KubePodCrashLooping", "KubeContainerOOMKilled")
"""Rules over a max_over_time window: they keep firing between restarts."""


def _first_alert(labels: dict, v: float, at: _Moment) -> tuple[str, dict, dict] | None:
    """(alert name, labels, annotations) of the first rule this sample fires, or None."""
    lab = {k: val for k, val in labels.items() if k != "__name__"}
    for rule in _ALERT_RULES:
        if rule.metric == labels["__name__"] and rule.fires(lab, v, at):
            kept = lab if rule.keep is None else {k: lab[k] for k in rule.keep}
            description = rule.description.format(**lab, value=_Reading(v))
            return (
                rule.alert,
                {**kept, "severity": rule.severity},
                {"summary": rule.summary, "description": description},
            )
    return None


# ---------------------------------------------------------------- PromQL selectors

_SEL = re.compile(r"^\s*([a-zA-Z_:][a-zA-Z0-9_:]*)?\s*(?:\{(.*)\})?\s*$")
_MATCHER = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"\s*,?')


def parse_selector(q: str) -> tuple[str | None, list[tuple[str, str, str]]]:
    """A PromQL instant-vector selector (`name{l="v",l=~"re"}`); anything else is refused clearly."""
    m = _SEL.match(q)
    if not m or not (m.group(1) or m.group(2)):
        raise ValueError(
            f'unsupported query {q!r}: this sandbox Prometheus answers plain selectors like metric{{label="value"}}'
        )
    name, body = m.group(1), m.group(2) or ""
    matchers: list[tuple[str, str, str]] = []
    pos = 0
    while pos < len(body):
        mm = _MATCHER.match(body, pos)
        if not mm:
            raise ValueError(f"cannot parse label matchers {body!r}")
        matchers.append((mm.group(1), mm.group(2), mm.group(3).replace('\\"', '"')))
        pos = mm.end()
    if name:
        matchers.insert(0, ("__name__", "=", name))
    return name, matchers


def select(series: list[tuple[dict, float]], matchers: list[tuple[str, str, str]]) -> list[tuple[dict, float]]:
    """The samples whose labels every matcher accepts."""
    out = []
    for labels, v in series:
        ok = True
        for k, op, val in matchers:
            have = labels.get(k, "")
            if (
                op == "="
                and have != val
                or op == "!="
                and have == val
                or op == "=~"
                and not re.fullmatch(val, have)
                or op == "!~"
                and re.fullmatch(val, have)
            ):
                ok = False
            if not ok:
                break
        if ok:
            out.append((labels, v))
    return out
