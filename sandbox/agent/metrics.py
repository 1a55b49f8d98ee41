"""Prometheus-shaped samples derived from the agent's view of the cluster, their history, and
the alerts a stock kube-prometheus + rabbitmq rule set would fire on them."""

from __future__ import annotations

import collections
import json
import re

from sandbox.agent.api import View, ts
from sandbox.agent.nodes import Nodes
from sandbox.agent.pods import Kubelet
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
        with self.view.lock:
            pods = dict(self.kubelet.pods)
            conts = dict(self.kubelet.containers)
        for uid, pod in pods.items():
            ns, name = pod["metadata"]["namespace"], pod["metadata"]["name"]
            for c in pod["spec"]["containers"]:
                st = conts.get((uid, c["name"]))
                if not st:
                    continue
                base = {"namespace": ns, "pod": name, "container": c["name"], "node": pod["spec"].get("nodeName", "")}
                out.append(({"__name__": "kube_pod_container_status_restarts_total", **base}, float(st.restart)))
                out.append(({"__name__": "kube_pod_container_status_ready", **base}, 1.0 if st.ready else 0.0))
                if st.waiting and st.phase != "running":
                    out.append(
                        ({"__name__": "kube_pod_container_status_waiting_reason", **base, "reason": st.waiting[0]}, 1.0)
                    )
                if st.last_term:
                    out.append(
                        (
                            {
                                "__name__": "kube_pod_container_status_last_terminated_reason",
                                **base,
                                "reason": st.last_term["reason"],
                            },
                            1.0,
                        )
                    )
                limit = parse_quantity(((c.get("resources") or {}).get("limits") or {}).get("memory"))
                if limit:
                    out.append(
                        (
                            {
                                "__name__": "kube_pod_container_resource_limits",
                                **base,
                                "resource": "memory",
                                "unit": "byte",
                            },
                            limit,
                        )
                    )
                if st.phase == "running":
                    mem = (st.rule.memory_mb or 48.0) * 2**20
                    if st.rule.behaviour == "oom" and limit:
                        frac = min(
                            1.0, (now - (st.started_at or now)) / max(0.1, st.rule.run_seconds * self.view.time_scale)
                        )
                        mem = limit * (0.45 + 0.55 * frac)
                    out.append(({"__name__": "container_memory_working_set_bytes", **base}, float(int(mem))))
        for d in self.view.deployments:
            ns, name = d["metadata"]["namespace"], d["metadata"]["name"]
            st = d.get("status") or {}
            base = {"namespace": ns, "deployment": name}
            out.append(
                (
                    {"__name__": "kube_deployment_spec_replicas", **base},
                    float((d.get("spec") or {}).get("replicas") or 0),
                )
            )
            out.append(
                (
                    {"__name__": "kube_deployment_status_replicas_available", **base},
                    float(st.get("availableReplicas") or 0),
                )
            )
            out.append(
                (
                    {"__name__": "kube_deployment_status_replicas_unavailable", **base},
                    float(st.get("unavailableReplicas") or 0),
                )
            )
        for (ns, name), sec in self.view.world.secrets.items():
            if sec.get("type") == "kubernetes.io/tls":
                na = self.view.world.cert_not_after(ns, name)
                if na:
                    out.append(
                        (
                            {
                                "__name__": "certmanager_certificate_expiration_timestamp_seconds",
                                "namespace": ns,
                                "name": name,
                                "secret": name,
                            },
                            na.timestamp(),
                        )
                    )
        sc = self.view.scenario
        if sc and sc.queue and self.queue.depth is not None:
            q = sc.queue
            base = {"queue": q.name, "vhost": q.vhost, "namespace": sc.namespace}
            out += [
                ({"__name__": "rabbitmq_queue_messages", **base}, float(int(self.queue.depth))),
                ({"__name__": "rabbitmq_queue_messages_ready", **base}, float(int(self.queue.depth))),
                ({"__name__": "rabbitmq_queue_consumers", **base}, float(self.queue.consumers)),
                ({"__name__": "rabbitmq_queue_messages_published_rate", **base}, round(self.queue.rates[0], 2)),
                ({"__name__": "rabbitmq_queue_messages_delivered_rate", **base}, round(self.queue.rates[1], 2)),
            ]
        return out

    def alerts(self, now: float) -> list[dict]:
        """Alerts a stock kube-prometheus + rabbitmq rule set would fire for the current state."""
        found: list[tuple[str, dict, dict]] = []
        for labels, v in self.series(now):
            n = labels["__name__"]
            lab = {k: val for k, val in labels.items() if k != "__name__"}
            if n == "kube_pod_container_status_waiting_reason" and lab["reason"] == "CrashLoopBackOff":
                found.append(
                    (
                        "KubePodCrashLooping",
                        {
                            "namespace": lab["namespace"],
                            "pod": lab["pod"],
                            "container": lab["container"],
                            "severity": "warning",
                        },
                        {
                            "summary": "Pod is crash looping.",
                            "description": f'Pod {lab["namespace"]}/{lab["pod"]} ({lab["container"]}) is in waiting state (reason: "CrashLoopBackOff").',
                        },
                    )
                )
            elif n == "kube_pod_container_status_waiting_reason" and lab["reason"] in (
                "ImagePullBackOff",
                "ErrImagePull",
                "CreateContainerConfigError",
            ):
                found.append(
                    (
                        "KubePodNotReady",
                        {"namespace": lab["namespace"], "pod": lab["pod"], "severity": "warning"},
                        {
                            "summary": "Pod has been in a non-ready state.",
                            "description": f"Pod {lab['namespace']}/{lab['pod']} has been in a non-ready state ({lab['reason']}).",
                        },
                    )
                )
            elif n == "kube_pod_container_status_last_terminated_reason" and lab["reason"] == "OOMKilled":
                found.append(
                    (
                        "KubeContainerOOMKilled",
                        {
                            "namespace": lab["namespace"],
                            "pod": lab["pod"],
                            "container": lab["container"],
                            "severity": "warning",
                        },
                        {
                            "summary": "Container was OOMKilled.",
                            "description": f"Container {lab['container']} in pod {lab['namespace']}/{lab['pod']} was OOMKilled.",
                        },
                    )
                )
            elif n == "kube_pod_container_status_ready" and v == 0 and lab["namespace"] != "kube-system":
                found.append(
                    (
                        "KubePodNotReady",
                        {"namespace": lab["namespace"], "pod": lab["pod"], "severity": "warning"},
                        {
                            "summary": "Pod has been in a non-ready state.",
                            "description": f"Pod {lab['namespace']}/{lab['pod']} has been in a non-ready state.",
                        },
                    )
                )
            elif n == "kube_deployment_status_replicas_unavailable" and v > 0:
                found.append(
                    (
                        "KubeDeploymentReplicasMismatch",
                        {**lab, "severity": "warning"},
                        {
                            "summary": "Deployment has not matched the expected number of replicas.",
                            "description": f"Deployment {lab['namespace']}/{lab['deployment']} has {int(v)} unavailable replicas.",
                        },
                    )
                )
            elif n == "certmanager_certificate_expiration_timestamp_seconds" and v < now:
                found.append(
                    (
                        "CertificateExpired",
                        {**lab, "severity": "critical"},
                        {
                            "summary": "TLS certificate has expired.",
                            "description": f"Certificate in secret {lab['namespace']}/{lab['secret']} expired at {ts(v)}.",
                        },
                    )
                )
            elif (
                n == "rabbitmq_queue_messages"
                and self.view.scenario
                and self.view.scenario.queue
                and v > self.view.scenario.queue.alert_threshold
            ):
                found.append(
                    (
                        "RabbitmqQueueBacklog",
                        {**lab, "severity": "critical"},
                        {
                            "summary": "Queue backlog is growing.",
                            "description": f"Queue {lab['queue']} on vhost {lab['vhost']} has {int(v)} messages ready.",
                        },
                    )
                )
            elif n == "rabbitmq_queue_consumers" and v == 0:
                found.append(
                    (
                        "RabbitmqNoConsumer",
                        {**lab, "severity": "critical"},
                        {
                            "summary": "Queue has no consumers.",
                            "description": f"Queue {lab['queue']} has no consumers.",
                        },
                    )
                )
        # Crash-loop and OOM rules look back over a window (max_over_time), so they stay firing between
        # restarts; they clear once the pod is gone or has been quiet for the window.
        sticky = ("KubePodCrashLooping", "KubeContainerOOMKilled")
        with self.view.lock:
            live_pods = {(p["metadata"]["namespace"], p["metadata"]["name"]) for p in self.kubelet.pods.values()}
        for name, labels, ann in found:
            key = name + json.dumps(labels, sort_keys=True)
            first = self.alert_since.get(key, (now, now, labels, ann))[0]
            self.alert_since[key] = (first, now, labels, ann)
        out = []
        for key, (first, last, labels, ann) in list(self.alert_since.items()):
            name = key.split("{", 1)[0]
            gone = "pod" in labels and (labels.get("namespace"), labels["pod"]) not in live_pods
            if last < now and (name not in sticky or now - last > 300 * self.view.time_scale or gone):
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
