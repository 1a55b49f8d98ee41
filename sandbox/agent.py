"""The sandbox's node agent: a stand-in kubelet that makes the real API server's pods behave.

It registers 1-3 Nodes, clears their not-ready taint and keeps their heartbeats; it watches the
pods bound to its nodes and moves each container through the lifecycle the active scenario's
rules pick from the live pod spec and cluster objects (Running/Ready, CrashLoopBackOff with
growing restart counts, OOMKilled, ImagePullBackOff, failing readiness probes, config errors),
writing core/v1 Events the way the kubelet does. It serves container logs over HTTPS on the
kubelet port, so `pods/log` works through the API server, and, on loopback, a small
Prometheus-shaped and RabbitMQ-management-shaped API whose numbers derive from cluster state.

Run by `lantern sandbox up` as `python -m sandbox.agent --home DIR`.
"""

from __future__ import annotations

import argparse
import base64
import collections
import datetime as dt
import hashlib
import json
import logging
import os
import re
import signal
import socket
import ssl
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

from sandbox.cluster import CONTEXT, Layout
from sandbox.scenario import Rule, Scenario, ScenarioError, World, load_scenario, parse_quantity, pick_rule

log = logging.getLogger("lantern.sandbox.agent")

TICK = 0.5
HEARTBEAT = 20.0
SAMPLE_EVERY = 5.0
MAX_LOG_LINES = 3000


def _ts(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _ts_nano(t: float) -> str:
    d = dt.datetime.fromtimestamp(t, dt.timezone.utc)
    return d.strftime("%Y-%m-%dT%H:%M:%S.") + f"{d.microsecond:06d}000Z"


class _Fmt(dict):
    """Template values for log lines; unknown names stay visible instead of raising."""

    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


class Container:
    """The agent's memory of one container of one pod."""

    def __init__(self, restart: int = 0) -> None:
        self.restart = restart
        self.phase = "creating"  # creating | running | backoff | pull-failed | config-error | exited
        self.since = time.time()
        self.started_at: float | None = None
        self.rule: Rule = Rule()
        self.ready = False
        self.last_term: dict[str, Any] | None = None
        self.backoff_until = 0.0
        self.waiting: tuple[str, str] | None = ("ContainerCreating", "")
        self.next_periodic = 0.0
        self.next_probe_event = 0.0
        self.pull_attempts = 0
        self.term: dict[str, Any] | None = None


class Agent:
    """One process: nodes, pods, events, logs, metrics and the queue model."""

    def __init__(self, home: Path) -> None:
        from kubernetes import client, config

        self.lay = Layout(home)
        self.state = self.lay.read_state()
        self.ports = self.state["ports"]
        self.time_scale = float(self.state.get("time_scale") or 1.0)
        self.api = config.new_client_from_config(config_file=str(self.lay.kubeconfig), context=CONTEXT)
        self.core = client.CoreV1Api(self.api)
        self.apps = client.AppsV1Api(self.api)
        self.ApiException = client.ApiException
        n = int(self.state.get("nodes") or 2)
        self.nodes = [f"sandbox-node-{i}" for i in range(1, n + 1)]
        self.node_uids: dict[str, str] = {}
        self.lock = threading.RLock()
        self.scenario: Scenario | None = None
        self.scenario_key: tuple[str, float] | None = None
        self.containers: dict[tuple[str, str], Container] = {}
        self.logs: dict[tuple[str, str, int], list[tuple[float, str]]] = {}
        self.pods: dict[str, dict] = {}  # uid -> pod dict (last seen)
        self.by_name: dict[tuple[str, str], str] = {}  # (ns, name) -> uid
        self.pod_ips: dict[str, str] = {}
        self.cond_times: dict[tuple[str, str], tuple[str, float]] = {}
        self.sent: dict[str, str] = {}
        self.events: dict[tuple, tuple[str, str, int, float]] = {}
        self.deployments: list[dict] = []
        self.world = World([], [], [])
        self.queue_depth: float | None = None
        self.queue_rates = (0.0, 0.0)
        self.queue_consumers = 0
        self.history: collections.deque[tuple[float, list[tuple[dict, float]]]] = collections.deque(maxlen=720)
        self.alert_since: dict[str, tuple[float, float, dict, dict]] = {}
        self.last_heartbeat = 0.0
        self.last_sample = 0.0
        self.stop = threading.Event()

    # ------------------------------------------------------------ nodes

    def register_nodes(self) -> None:
        """Create the Nodes if missing, post Ready status and clear the admission's not-ready taint."""
        for old in self.core.list_node(label_selector="lantern.dev/sandbox=true").items:
            if old.metadata.name not in self.nodes:
                # Fewer nodes than last time: drop the extras (the pod GC then removes their pods).
                self.core.delete_node(old.metadata.name)
        for i, name in enumerate(self.nodes, start=1):
            try:
                node = self.core.read_node(name)
            except self.ApiException as exc:
                if exc.status != 404:
                    raise
                node = self.core.create_node({
                    "apiVersion": "v1", "kind": "Node",
                    "metadata": {"name": name, "labels": {
                        "kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
                        "beta.kubernetes.io/os": "linux", "beta.kubernetes.io/arch": "amd64",
                        "topology.kubernetes.io/zone": f"sandbox-{'abc'[i - 1]}",
                        "node.kubernetes.io/instance-type": "sandbox.large", "lantern.dev/sandbox": "true"}},
                    "spec": {"podCIDR": f"10.244.{i}.0/24", "podCIDRs": [f"10.244.{i}.0/24"]}})
            self.node_uids[name] = node.metadata.uid
            self.heartbeat(name)
            taints = [t for t in (self.core.read_node(name).spec.taints or [])
                      if t.key not in ("node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable")]
            self.core.patch_node(name, {"spec": {"taints": [self.api.sanitize_for_serialization(t) for t in taints] or None}})
        self.last_heartbeat = time.time()

    def heartbeat(self, name: str) -> None:
        """Post the node's status: Ready, capacity, addresses and the kubelet port the API server dials for logs."""
        now = _ts(time.time())
        started = _ts(float(self.state.get("started_at") or time.time()))
        conds = [
            ("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
            ("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
            ("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
            ("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
        ]
        cap = {"cpu": "4", "memory": "16393216Ki", "pods": "110", "ephemeral-storage": "101203500Ki"}
        alloc = {"cpu": "3800m", "memory": "15241216Ki", "pods": "110", "ephemeral-storage": "93268120Ki"}
        mid = hashlib.sha256(name.encode()).hexdigest()[:32]
        body = {"status": {
            "conditions": [{"type": t, "status": s, "reason": r, "message": m, "lastHeartbeatTime": now,
                            "lastTransitionTime": started} for t, s, r, m in conds],
            "capacity": cap, "allocatable": alloc,
            "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}, {"type": "Hostname", "address": name}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": int(self.ports["kubelet"])}},
            "nodeInfo": {"machineID": mid, "systemUUID": str(uuid.UUID(mid)), "bootID": str(uuid.uuid5(uuid.NAMESPACE_DNS, name + started)),
                         "kernelVersion": os.uname().release, "osImage": "Debian GNU/Linux 12 (bookworm)",
                         "containerRuntimeVersion": "containerd://1.6.20", "kubeletVersion": "v1.20.2",
                         "kubeProxyVersion": "v1.20.2", "operatingSystem": "linux", "architecture": "amd64"}}}
        self.core.patch_node_status(name, body)
        self.renew_lease(name)

    def renew_lease(self, name: str) -> None:
        """The node's Lease in kube-node-lease, which `kubectl describe node` and health checks read."""
        from kubernetes import client

        coord = client.CoordinationV1Api(self.api)
        now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        spec = {"holderIdentity": name, "leaseDurationSeconds": 40, "renewTime": now}
        try:
            coord.patch_namespaced_lease(name, "kube-node-lease", {"spec": spec})
        except self.ApiException as exc:
            if exc.status != 404:
                raise
            owner = [{"apiVersion": "v1", "kind": "Node", "name": name, "uid": self.node_uids.get(name, "")}] \
                if self.node_uids.get(name) else []
            coord.create_namespaced_lease("kube-node-lease", {
                "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": name, "ownerReferences": owner}, "spec": spec})

    # ------------------------------------------------------------ scenario

    def load_active_scenario(self) -> None:
        """Follow scenario.json: the rules of the scenario `lantern sandbox scenario` started."""
        rec = self.lay.read_scenario()
        key = (rec.get("path", ""), float(rec.get("started_at") or 0)) if rec else None
        if key == self.scenario_key:
            return
        self.scenario_key = key
        if not rec:
            self.scenario = None
            self.queue_depth = None
            return
        try:
            self.scenario = load_scenario(rec["path"])
        except (ScenarioError, KeyError) as exc:
            log.error("cannot load scenario %s: %s", rec, exc)
            self.scenario = None
            return
        q = self.scenario.queue
        self.queue_depth = float(q.initial_depth) if q else None
        self._queue_t = time.time()
        log.info("scenario %s active", self.scenario.name)

    # ------------------------------------------------------------ events

    def event(self, obj: dict, reason: str, message: str, warning: bool = False, field_path: str | None = None,
              node: str | None = None) -> None:
        """Write or bump a core/v1 Event like the kubelet (aggregated by object, reason and message)."""
        md = obj["metadata"]
        kind = obj.get("kind") or "Pod"
        ns = md.get("namespace") or "default"
        key = (md["uid"], field_path, reason, message)
        now = time.time()
        try:
            if key in self.events:
                name, ens, count, _first = self.events[key]
                count += 1
                self.core.patch_namespaced_event(name, ens, {"count": count, "lastTimestamp": _ts(now)})
                self.events[key] = (name, ens, count, _first)
                return
            name = f"{md['name']}.{uuid.uuid4().hex[:16]}"
            involved = {"kind": kind, "namespace": ns if kind != "Node" else "", "name": md["name"], "uid": md["uid"],
                        "apiVersion": "v1", "resourceVersion": md.get("resourceVersion", "")}
            if field_path:
                involved["fieldPath"] = field_path
            # A plain dict: the python client would turn eventTime into a form this server rejects.
            body = {"apiVersion": "v1", "kind": "Event", "metadata": {"name": name, "namespace": ns},
                    "involvedObject": involved, "reason": reason, "message": message,
                    "type": "Warning" if warning else "Normal",
                    "source": {"component": "kubelet", "host": node or ""},
                    "firstTimestamp": _ts(now), "lastTimestamp": _ts(now), "count": 1,
                    "reportingComponent": "kubelet", "reportingInstance": node or ""}
            self.core.create_namespaced_event(ns, body)
            self.events[key] = (name, ns, 1, now)
        except self.ApiException as exc:
            if exc.status == 404 and key in self.events:
                del self.events[key]  # expired or deleted with its namespace; next call recreates it
            elif exc.status not in (403, 404, 409):
                log.warning("event %s/%s failed: %s", reason, md.get("name"), exc.reason)

    # ------------------------------------------------------------ logs

    def fmt(self, pod: dict, c: dict, st: Container, extra: dict | None = None) -> _Fmt:
        ns = pod["metadata"]["namespace"]
        f = _Fmt(pod=pod["metadata"]["name"], namespace=ns, container=c["name"], image=c.get("image", ""),
                 image_tag=c.get("image", "").rsplit(":", 1)[-1],
                 node=pod["spec"].get("nodeName", ""), restart=st.restart, pod_ip=self.pod_ips.get(pod["metadata"]["uid"], ""),
                 memory_limit=((c.get("resources") or {}).get("limits") or {}).get("memory", "none"),
                 exit_code=st.rule.exit_code if st.rule.exit_code is not None else (137 if st.rule.behaviour == "oom" else 1))
        for e in c.get("env") or []:
            f[f"env_{e['name']}"] = self.world.env_value(ns, c, e["name"]) or ""
        if self.scenario and self.scenario.queue:
            f["queue"] = self.scenario.queue.name
            f["queue_depth"] = int(self.queue_depth or 0)
            f["queue_consumers"] = self.queue_consumers
        for vol in pod["spec"].get("volumes") or []:
            sec = (vol.get("secret") or {}).get("secretName")
            if sec:
                na = self.world.cert_not_after(ns, sec)
                if na:
                    f["cert_not_after"] = na.strftime("%Y-%m-%dT%H:%M:%SZ")
        if extra:
            f.update(extra)
        return f

    def start_instance_logs(self, uid: str, pod: dict, c: dict, st: Container, now: float) -> None:
        """The lines a new container instance writes; crash lines are spread over its run time."""
        f = self.fmt(pod, c, st)
        lines = [ln.format_map(f) for ln in st.rule.logs]
        run = st.rule.run_seconds * self.time_scale if st.rule.behaviour in ("crash", "oom") else 0.2
        out = []
        for i, ln in enumerate(lines):
            frac = (i / (len(lines) - 1)) if len(lines) > 1 else 0.0
            out.append((now + run * frac * 0.98, _fmt_ts(ln, now + run * frac * 0.98)))
        with self.lock:
            self.logs[(uid, c["name"], st.restart)] = out
        st.next_periodic = now + st.rule.periodic_seconds * self.time_scale

    def periodic_logs(self, uid: str, pod: dict, c: dict, st: Container, now: float) -> None:
        if not st.rule.periodic_logs or now < st.next_periodic:
            return
        f = self.fmt(pod, c, st)
        with self.lock:
            buf = self.logs.setdefault((uid, c["name"], st.restart), [])
            for ln in st.rule.periodic_logs:
                buf.append((now, _fmt_ts(ln.format_map(f), now)))
            del buf[:-MAX_LOG_LINES]
        st.next_periodic = now + st.rule.periodic_seconds * self.time_scale

    # ------------------------------------------------------------ pods

    def tick(self) -> None:
        """One reconcile pass over everything the agent owns."""
        self.load_active_scenario()
        now = time.time()
        # Raw JSON, not client models: building models for every object twice a second costs the CPU.
        pods = _items(self.core.list_pod_for_all_namespaces(_preload_content=False))
        services = _items(self.core.list_service_for_all_namespaces(_preload_content=False))
        secrets = _items(self.core.list_secret_for_all_namespaces(_preload_content=False))
        cms = _items(self.core.list_config_map_for_all_namespaces(_preload_content=False))
        self.deployments = _items(self.apps.list_deployment_for_all_namespaces(_preload_content=False))
        self.world = World(services, secrets, cms)
        seen: set[str] = set()
        for pod in pods:
            node = pod["spec"].get("nodeName") or ""
            if node not in self.nodes:
                if node.startswith("sandbox-node-"):
                    # Bound to a sandbox node that no longer exists (fewer nodes now): what the pod GC
                    # would do after its quarantine, done at once so namespaces can finish deleting.
                    self.finish_pod(pod)
                continue
            uid = pod["metadata"]["uid"]
            if pod["metadata"].get("deletionTimestamp"):
                self.finish_pod(pod)
                continue
            seen.add(uid)
            with self.lock:
                self.pods[uid] = pod
                self.by_name[(pod["metadata"]["namespace"], pod["metadata"]["name"])] = uid
            try:
                self.reconcile(pod, now)
            except self.ApiException as exc:
                if exc.status not in (404, 409):
                    log.warning("pod %s/%s: %s", pod["metadata"]["namespace"], pod["metadata"]["name"], exc.reason)
        with self.lock:
            for uid in [u for u in self.pods if u not in seen]:
                self.forget(uid)
        self.update_queue(now)
        if now - self.last_sample >= SAMPLE_EVERY:
            self.last_sample = now
            series = self.series(now)
            with self.lock:
                self.history.append((now, series))
        if now - self.last_heartbeat >= HEARTBEAT:
            self.last_heartbeat = now
            for name in self.nodes:
                try:
                    self.heartbeat(name)
                except self.ApiException as exc:
                    if exc.status == 404:
                        self.register_nodes()
                        break
                    raise

    def forget(self, uid: str) -> None:
        pod = self.pods.pop(uid, None)
        if pod:
            self.by_name.pop((pod["metadata"]["namespace"], pod["metadata"]["name"]), None)
        for k in [k for k in self.containers if k[0] == uid]:
            del self.containers[k]
        for k in [k for k in self.logs if k[0] == uid]:
            del self.logs[k]
        self.pod_ips.pop(uid, None)
        self.sent.pop(uid, None)
        for k in [k for k in self.events if k[0] == uid]:
            del self.events[k]

    def finish_pod(self, pod: dict) -> None:
        """No real kubelet runs here, so a terminating pod would hang forever: stop it and delete it now."""
        md = pod["metadata"]
        uid = md["uid"]
        if uid in self.pods:
            for c in pod["spec"].get("containers") or []:
                self.event(pod, "Killing", f"Stopping container {c['name']}", field_path=f"spec.containers{{{c['name']}}}",
                           node=pod["spec"].get("nodeName"))
        try:
            self.core.delete_namespaced_pod(md["name"], md["namespace"], grace_period_seconds=0,
                                            body={"gracePeriodSeconds": 0, "preconditions": {"uid": uid}})
        except self.ApiException as exc:
            if exc.status not in (404, 409):
                log.warning("force delete %s/%s: %s", md["namespace"], md["name"], exc.reason)
        with self.lock:
            self.forget(uid)

    def pod_ip(self, pod: dict) -> str:
        uid = pod["metadata"]["uid"]
        if uid not in self.pod_ips:
            ip = (pod.get("status") or {}).get("podIP")
            if not ip:
                idx = self.nodes.index(pod["spec"]["nodeName"]) + 1
                used = set(self.pod_ips.values())
                host = int(hashlib.sha256(uid.encode()).hexdigest(), 16) % 250 + 2
                while f"10.244.{idx}.{host}" in used:
                    host = host % 253 + 2
                ip = f"10.244.{idx}.{host}"
            self.pod_ips[uid] = ip
        return self.pod_ips[uid]

    def reconcile(self, pod: dict, now: float) -> None:
        """Advance each container's state machine and post the pod's status if it changed."""
        uid = pod["metadata"]["uid"]
        node = pod["spec"]["nodeName"]
        policy = pod["spec"].get("restartPolicy", "Always")
        prior = {cs["name"]: cs for cs in ((pod.get("status") or {}).get("containerStatuses") or [])}
        statuses = []
        for c in pod["spec"]["containers"]:
            key = (uid, c["name"])
            st = self.containers.get(key)
            if st is None:
                st = self.adopt(uid, pod, c, prior.get(c["name"]) or {}, now)
                self.containers[key] = st
                if st.restart == 0 and st.phase == "creating":
                    self.event(pod, "Pulling", f'Pulling image "{c.get("image")}"', field_path=f"spec.containers{{{c['name']}}}", node=node)
            self.step(pod, c, st, now, policy)
            statuses.append(self.container_status(uid, c, st))
        self.post_status(pod, statuses, now)

    def adopt(self, uid: str, pod: dict, c: dict, prior: dict, now: float) -> Container:
        """After an agent restart, carry on from what the API server remembers, like a restarted kubelet
        finds its containers still running: same restart count, running ones keep running."""
        st = Container(restart=int(prior.get("restartCount") or 0))
        last = (prior.get("lastState") or {}).get("terminated")
        if last:
            st.last_term = dict(last)
        rule = pick_rule(self.scenario, pod, c, self.world, dt.datetime.now(dt.timezone.utc))
        running = (prior.get("state") or {}).get("running")
        if last:
            # lastState is the instance before the running one, or during back-off the one that just died.
            idx = st.restart - 1 if running else st.restart
            if idx >= 0:
                st.rule = rule
                keep, st.restart = st.restart, idx
                self.start_instance_logs(uid, pod, c, st, _parse_ts(last.get("startedAt")) or now)  # re-told
                st.restart = keep
        if running:
            st.rule = rule
            st.phase = "running"
            st.started_at = _parse_ts(running.get("startedAt")) or now
            st.waiting = None
            st.ready = rule.behaviour == "healthy"
            self.start_instance_logs(uid, pod, c, st, st.started_at)
            st.next_probe_event = now
        elif (prior.get("state") or {}).get("waiting", {}).get("reason") == "CrashLoopBackOff":
            st.rule = rule
            st.phase, st.backoff_until = "backoff", now
        return st

    def step(self, pod: dict, c: dict, st: Container, now: float, policy: str) -> None:
        uid = pod["metadata"]["uid"]
        ns = pod["metadata"]["namespace"]
        node = pod["spec"]["nodeName"]
        fp = f"spec.containers{{{c['name']}}}"
        scale = self.time_scale
        sc = self.scenario
        if st.phase in ("creating", "config-error", "pull-failed") or (st.phase == "backoff" and now >= st.backoff_until):
            if st.phase == "pull-failed" and now < st.backoff_until:
                if st.waiting and st.waiting[0] == "ErrImagePull" and now >= st.since + scale:
                    img = c.get("image")
                    st.waiting = ("ImagePullBackOff", f'Back-off pulling image "{img}"')
                    self.event(pod, "BackOff", f'Back-off pulling image "{img}"', field_path=fp, node=node)
                    self.event(pod, "Failed", "Error: ImagePullBackOff", warning=True, field_path=fp, node=node)
                return
            missing = self.world.missing_refs(ns, c)
            if missing:
                if st.phase != "config-error" or now >= st.next_probe_event:
                    self.event(pod, "Failed", f"Error: {missing}", warning=True, field_path=fp, node=node)
                    st.next_probe_event = now + 10 * scale
                st.phase, st.waiting, st.ready = "config-error", ("CreateContainerConfigError", missing), False
                return
            rule = pick_rule(sc, pod, c, self.world, dt.datetime.now(dt.timezone.utc))
            if rule.behaviour == "image-pull":
                st.pull_attempts += 1
                img = c.get("image")
                self.event(pod, "Pulling", f'Pulling image "{img}"', field_path=fp, node=node)
                self.event(pod, "Failed", f'Failed to pull image "{img}": rpc error: code = NotFound desc = failed to pull and unpack '
                                          f'image "{img}": failed to resolve reference "{img}": {img}: not found',
                           warning=True, field_path=fp, node=node)
                self.event(pod, "Failed", "Error: ErrImagePull", warning=True, field_path=fp, node=node)
                st.rule = rule
                st.phase, st.since = "pull-failed", now
                st.waiting = ("ErrImagePull", f'rpc error: code = NotFound desc = failed to pull and unpack image "{img}": not found')
                base, cap = (sc.backoff_base, sc.backoff_cap) if sc else (5.0, 80.0)
                st.backoff_until = now + min(base * 2 ** (st.pull_attempts - 1), cap) * scale
                return
            if st.phase == "backoff":
                st.restart += 1
            if st.phase in ("creating", "pull-failed") or st.phase == "config-error":
                self.event(pod, "Pulled", f'Container image "{c.get("image")}" already present on machine', field_path=fp, node=node)
            self.event(pod, "Created", f"Created container {c['name']}", field_path=fp, node=node)
            self.event(pod, "Started", f"Started container {c['name']}", field_path=fp, node=node)
            st.rule = rule
            st.phase, st.started_at, st.waiting, st.term = "running", now, None, None
            st.ready = rule.behaviour == "healthy"
            st.next_probe_event = now + 3 * scale
            self.start_instance_logs(uid, pod, c, st, now)
            return
        if st.phase == "running":
            rule = st.rule
            if rule.live:
                new = pick_rule(sc, pod, c, self.world, dt.datetime.now(dt.timezone.utc))
                if new.behaviour in ("healthy", "unready") and rule.behaviour in ("healthy", "unready") and new != rule:
                    st.rule = rule = new
                    self.start_instance_logs_append(uid, pod, c, st, now)
            if rule.behaviour in ("crash", "oom"):
                if now - (st.started_at or now) >= rule.run_seconds * scale:
                    oom = rule.behaviour == "oom"
                    code = rule.exit_code if rule.exit_code is not None else (137 if oom else 1)
                    st.last_term = {"exitCode": code, "reason": "OOMKilled" if oom else ("Error" if code else "Completed"),
                                    "startedAt": _ts(st.started_at or now), "finishedAt": _ts(now),
                                    "containerID": self.container_id(uid, c["name"], st.restart)}
                    st.ready = False
                    if oom:
                        self.event({"kind": "Node", "metadata": {"name": node, "uid": self.node_uids.get(node, node)}},
                                   "SystemOOM", f"System OOM encountered, victim process: {c['name']}, pid: "
                                                f"{10000 + int(hashlib.sha256((uid + str(st.restart)).encode()).hexdigest(), 16) % 50000}",
                                   warning=True, node=node)
                    if policy == "Never" or (policy == "OnFailure" and code == 0):
                        st.phase, st.term, st.waiting = "exited", st.last_term, None
                        return
                    base, cap = (sc.backoff_base, sc.backoff_cap) if sc else (5.0, 80.0)
                    delay = min(base * 2 ** st.restart, cap) * scale
                    st.phase, st.backoff_until = "backoff", now + delay
                    st.waiting = ("CrashLoopBackOff", f"back-off {int(delay)}s restarting failed container={c['name']} "
                                                      f"pod={pod['metadata']['name']}_{ns}({uid})")
                    self.event(pod, "BackOff", "Back-off restarting failed container", warning=True, field_path=fp, node=node)
                return
            if rule.behaviour == "unready":
                st.ready = False
                if now >= st.next_probe_event:
                    msg = rule.probe_message or _probe_message(c, self.pod_ip(pod))
                    self.event(pod, "Unhealthy", msg.format_map(self.fmt(pod, c, st)), warning=True, field_path=fp, node=node)
                    st.next_probe_event = now + 10 * scale
            else:
                st.ready = True
            self.periodic_logs(uid, pod, c, st, now)

    def start_instance_logs_append(self, uid: str, pod: dict, c: dict, st: Container, now: float) -> None:
        """A live rule change (a dependency came back, a cert was replaced): the running process logs it."""
        f = self.fmt(pod, c, st)
        with self.lock:
            buf = self.logs.setdefault((uid, c["name"], st.restart), [])
            for ln in st.rule.logs:
                buf.append((now, _fmt_ts(ln.format_map(f), now)))

    def container_id(self, uid: str, name: str, restart: int) -> str:
        return "containerd://" + hashlib.sha256(f"{uid}/{name}/{restart}".encode()).hexdigest()

    def container_status(self, uid: str, c: dict, st: Container) -> dict:
        image = c.get("image", "")
        img_id = ""
        if st.phase not in ("creating", "pull-failed", "config-error"):
            img_id = f"{image.split(':')[0]}@sha256:{hashlib.sha256(image.encode()).hexdigest()}"
        out: dict[str, Any] = {"name": c["name"], "image": image, "imageID": img_id, "ready": st.ready,
                               "restartCount": st.restart, "started": st.phase == "running"}
        if st.phase == "running":
            out["state"] = {"running": {"startedAt": _ts(st.started_at or time.time())}}
            out["containerID"] = self.container_id(uid, c["name"], st.restart)
        elif st.phase == "exited" and st.term:
            out["state"] = {"terminated": st.term}
            out["containerID"] = st.term["containerID"]
        else:
            reason, msg = st.waiting or ("ContainerCreating", "")
            out["state"] = {"waiting": {"reason": reason, **({"message": msg} if msg else {})}}
        if st.last_term:
            out["lastState"] = {"terminated": st.last_term}
        else:
            out["lastState"] = {}
        return out

    def post_status(self, pod: dict, statuses: list[dict], now: float) -> None:
        uid = pod["metadata"]["uid"]
        all_ready = all(s["ready"] for s in statuses)
        any_started = any(s["restartCount"] > 0 or "running" in s["state"] or "terminated" in s["state"] for s in statuses)
        every_exited = all("terminated" in s["state"] for s in statuses)
        if every_exited:
            phase = "Succeeded" if all(s["state"]["terminated"]["exitCode"] == 0 for s in statuses) else "Failed"
        else:
            phase = "Running" if any_started else "Pending"
        not_ready = [s["name"] for s in statuses if not s["ready"]]

        def cond(ctype: str, ok: bool, reason: str | None = None, msg: str | None = None) -> dict:
            status = "True" if ok else "False"
            prev = self.cond_times.get((uid, ctype))
            t = prev[1] if prev and prev[0] == status else now
            self.cond_times[(uid, ctype)] = (status, t)
            d = {"type": ctype, "status": status, "lastProbeTime": None, "lastTransitionTime": _ts(t)}
            if reason:
                d["reason"] = reason
                d["message"] = msg
            return d

        why = f"containers with unready status: [{' '.join(not_ready)}]"
        body = {"status": {
            "phase": phase,
            "conditions": [cond("Initialized", True), cond("Ready", all_ready, None if all_ready else "ContainersNotReady", why),
                           cond("ContainersReady", all_ready, None if all_ready else "ContainersNotReady", why),
                           cond("PodScheduled", True)],
            "hostIP": "127.0.0.1", "podIP": self.pod_ip(pod), "podIPs": [{"ip": self.pod_ip(pod)}],
            "startTime": (pod.get("status") or {}).get("startTime") or _ts(now),
            "containerStatuses": statuses}}
        sig = json.dumps(body, sort_keys=True)
        if self.sent.get(uid) == sig:
            return
        self.core.patch_namespaced_pod_status(pod["metadata"]["name"], pod["metadata"]["namespace"], body)
        self.sent[uid] = sig

    # ------------------------------------------------------------ queue and metrics

    def ready_replicas(self, ns: str, name: str) -> tuple[int, int]:
        for d in self.deployments:
            if d["metadata"]["namespace"] == ns and d["metadata"]["name"] == name:
                return int((d.get("status") or {}).get("readyReplicas") or 0), int((d.get("spec") or {}).get("replicas") or 0)
        return 0, 0

    def update_queue(self, now: float) -> None:
        """Depth follows ready producer and consumer pods: consumers at 0 → it grows; scaled up → it drains."""
        sc = self.scenario
        if not sc or not sc.queue or self.queue_depth is None:
            return
        q = sc.queue
        prod, _ = self.ready_replicas(sc.namespace, q.producer)
        cons, _ = self.ready_replicas(sc.namespace, q.consumer)
        pub = prod * q.publish_rate_per_pod
        cap = cons * q.consume_rate_per_pod
        last = getattr(self, "_queue_t", now)
        self._queue_t = now
        dt_s = max(0.0, now - last) / self.time_scale
        backlog = self.queue_depth + pub * dt_s
        delivered = min(backlog, cap * dt_s)
        with self.lock:
            self.queue_depth = max(0.0, backlog - delivered)
            self.queue_rates = (pub, delivered / dt_s if dt_s else min(cap, pub))
            self.queue_consumers = cons

    def series(self, now: float) -> list[tuple[dict, float]]:
        """Current metric samples derived from the agent's view of the cluster."""
        out: list[tuple[dict, float]] = [({"__name__": "up", "job": "kubelet", "instance": n}, 1.0) for n in self.nodes]
        with self.lock:
            pods = dict(self.pods)
            conts = dict(self.containers)
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
                    out.append(({"__name__": "kube_pod_container_status_waiting_reason", **base, "reason": st.waiting[0]}, 1.0))
                if st.last_term:
                    out.append(({"__name__": "kube_pod_container_status_last_terminated_reason", **base,
                                 "reason": st.last_term["reason"]}, 1.0))
                limit = parse_quantity(((c.get("resources") or {}).get("limits") or {}).get("memory"))
                if limit:
                    out.append(({"__name__": "kube_pod_container_resource_limits", **base, "resource": "memory", "unit": "byte"}, limit))
                if st.phase == "running":
                    mem = (st.rule.memory_mb or 48.0) * 2**20
                    if st.rule.behaviour == "oom" and limit:
                        frac = min(1.0, (now - (st.started_at or now)) / max(0.1, st.rule.run_seconds * self.time_scale))
                        mem = limit * (0.45 + 0.55 * frac)
                    out.append(({"__name__": "container_memory_working_set_bytes", **base}, float(int(mem))))
        for d in self.deployments:
            ns, name = d["metadata"]["namespace"], d["metadata"]["name"]
            st = d.get("status") or {}
            base = {"namespace": ns, "deployment": name}
            out.append(({"__name__": "kube_deployment_spec_replicas", **base}, float((d.get("spec") or {}).get("replicas") or 0)))
            out.append(({"__name__": "kube_deployment_status_replicas_available", **base}, float(st.get("availableReplicas") or 0)))
            out.append(({"__name__": "kube_deployment_status_replicas_unavailable", **base}, float(st.get("unavailableReplicas") or 0)))
        for (ns, name), sec in self.world.secrets.items():
            if sec.get("type") == "kubernetes.io/tls":
                na = self.world.cert_not_after(ns, name)
                if na:
                    out.append(({"__name__": "certmanager_certificate_expiration_timestamp_seconds", "namespace": ns,
                                 "name": name, "secret": name}, na.timestamp()))
        sc = self.scenario
        if sc and sc.queue and self.queue_depth is not None:
            q = sc.queue
            base = {"queue": q.name, "vhost": q.vhost, "namespace": sc.namespace}
            out += [({"__name__": "rabbitmq_queue_messages", **base}, float(int(self.queue_depth))),
                    ({"__name__": "rabbitmq_queue_messages_ready", **base}, float(int(self.queue_depth))),
                    ({"__name__": "rabbitmq_queue_consumers", **base}, float(self.queue_consumers)),
                    ({"__name__": "rabbitmq_queue_messages_published_rate", **base}, round(self.queue_rates[0], 2)),
                    ({"__name__": "rabbitmq_queue_messages_delivered_rate", **base}, round(self.queue_rates[1], 2))]
        return out

    def alerts(self, now: float) -> list[dict]:
        """Alerts a stock kube-prometheus + rabbitmq rule set would fire for the current state."""
        found: list[tuple[str, dict, dict]] = []
        for labels, v in self.series(now):
            n = labels["__name__"]
            lab = {k: val for k, val in labels.items() if k != "__name__"}
            if n == "kube_pod_container_status_waiting_reason" and lab["reason"] == "CrashLoopBackOff":
                found.append(("KubePodCrashLooping", {"namespace": lab["namespace"], "pod": lab["pod"],
                                                      "container": lab["container"], "severity": "warning"},
                              {"summary": "Pod is crash looping.",
                               "description": f"Pod {lab['namespace']}/{lab['pod']} ({lab['container']}) is in waiting state (reason: \"CrashLoopBackOff\")."}))
            elif n == "kube_pod_container_status_waiting_reason" and lab["reason"] in ("ImagePullBackOff", "ErrImagePull", "CreateContainerConfigError"):
                found.append(("KubePodNotReady", {"namespace": lab["namespace"], "pod": lab["pod"], "severity": "warning"},
                              {"summary": "Pod has been in a non-ready state.", "description": f"Pod {lab['namespace']}/{lab['pod']} has been in a non-ready state ({lab['reason']})."}))
            elif n == "kube_pod_container_status_last_terminated_reason" and lab["reason"] == "OOMKilled":
                found.append(("KubeContainerOOMKilled", {"namespace": lab["namespace"], "pod": lab["pod"],
                                                         "container": lab["container"], "severity": "warning"},
                              {"summary": "Container was OOMKilled.", "description": f"Container {lab['container']} in pod {lab['namespace']}/{lab['pod']} was OOMKilled."}))
            elif n == "kube_pod_container_status_ready" and v == 0 and lab["namespace"] != "kube-system":
                found.append(("KubePodNotReady", {"namespace": lab["namespace"], "pod": lab["pod"], "severity": "warning"},
                              {"summary": "Pod has been in a non-ready state.", "description": f"Pod {lab['namespace']}/{lab['pod']} has been in a non-ready state."}))
            elif n == "kube_deployment_status_replicas_unavailable" and v > 0:
                found.append(("KubeDeploymentReplicasMismatch", {**lab, "severity": "warning"},
                              {"summary": "Deployment has not matched the expected number of replicas.",
                               "description": f"Deployment {lab['namespace']}/{lab['deployment']} has {int(v)} unavailable replicas."}))
            elif n == "certmanager_certificate_expiration_timestamp_seconds" and v < now:
                found.append(("CertificateExpired", {**lab, "severity": "critical"},
                              {"summary": "TLS certificate has expired.",
                               "description": f"Certificate in secret {lab['namespace']}/{lab['secret']} expired at {_ts(v)}."}))
            elif n == "rabbitmq_queue_messages" and self.scenario and self.scenario.queue and v > self.scenario.queue.alert_threshold:
                found.append(("RabbitmqQueueBacklog", {**lab, "severity": "critical"},
                              {"summary": "Queue backlog is growing.",
                               "description": f"Queue {lab['queue']} on vhost {lab['vhost']} has {int(v)} messages ready."}))
            elif n == "rabbitmq_queue_consumers" and v == 0:
                found.append(("RabbitmqNoConsumer", {**lab, "severity": "critical"},
                              {"summary": "Queue has no consumers.", "description": f"Queue {lab['queue']} has no consumers."}))
        # Crash-loop and OOM rules look back over a window (max_over_time), so they stay firing between
        # restarts; they clear once the pod is gone or has been quiet for the window.
        sticky = ("KubePodCrashLooping", "KubeContainerOOMKilled")
        with self.lock:
            live_pods = {(p["metadata"]["namespace"], p["metadata"]["name"]) for p in self.pods.values()}
        for name, labels, ann in found:
            key = name + json.dumps(labels, sort_keys=True)
            first = self.alert_since.get(key, (now, now, labels, ann))[0]
            self.alert_since[key] = (first, now, labels, ann)
        out = []
        for key, (first, last, labels, ann) in list(self.alert_since.items()):
            name = key.split("{", 1)[0]
            gone = "pod" in labels and (labels.get("namespace"), labels["pod"]) not in live_pods
            if last < now and (name not in sticky or now - last > 300 * self.time_scale or gone):
                del self.alert_since[key]
                continue
            out.append({"labels": {"alertname": name, **labels}, "annotations": ann, "state": "firing",
                        "activeAt": _ts(first), "value": "1e+00"})
        return out

    # ------------------------------------------------------------ log access

    def instance_of(self, ns: str, pod: str, container: str) -> tuple[int, str] | None:
        """(restart count, phase) of a container, or None when the agent does not know it."""
        with self.lock:
            uid = self.by_name.get((ns, pod))
            st = self.containers.get((uid, container)) if uid else None
            return (st.restart, st.phase) if st else None

    def read_logs(self, ns: str, pod: str, container: str, previous: bool) -> tuple[int, list[tuple[float, str]] | str]:
        """Lines of a container instance, or (status, message) the way the kubelet words it."""
        with self.lock:
            uid = self.by_name.get((ns, pod))
            if uid is None:
                return 404, f'pod "{pod}" not found'
            p = self.pods[uid]
            names = [c["name"] for c in p["spec"]["containers"]]
            if container not in names:
                return 400, f'container {container} is not valid for pod {pod}'
            st = self.containers.get((uid, container))
            if st is None:
                return 400, f'container "{container}" in pod "{pod}" is waiting to start: ContainerCreating'
            if previous:
                # The kubelet's "previous" is the instance before the latest one, dead or alive.
                lines = self.logs.get((uid, container, st.restart - 1)) if st.restart > 0 else None
                if lines is None:
                    return 400, f'previous terminated container "{container}" in pod "{pod}" not found'
                return 200, list(lines)
            if st.phase in ("creating", "pull-failed", "config-error"):
                reason = (st.waiting or ("ContainerCreating", ""))[0]
                return 400, f'container "{container}" in pod "{pod}" is waiting to start: {reason}'
            lines = self.logs.get((uid, container, st.restart), [])
            return 200, [ln for ln in lines if ln[0] <= time.time()]

    # ------------------------------------------------------------ main

    def recall_events(self) -> None:
        """Pick up the Events an earlier agent wrote, so repeats bump their counts instead of duplicating them."""
        for e in _items(self.core.list_event_for_all_namespaces(_preload_content=False)):
            if (e.get("source") or {}).get("component") != "kubelet":
                continue
            io = e.get("involvedObject") or {}
            key = (io.get("uid"), io.get("fieldPath"), e.get("reason"), e.get("message"))
            first = _parse_ts(e.get("firstTimestamp")) or time.time()
            self.events[key] = (e["metadata"]["name"], e["metadata"]["namespace"], int(e.get("count") or 1), first)

    def run(self) -> None:
        self.register_nodes()
        try:
            self.recall_events()
        except self.ApiException as exc:
            log.warning("could not read earlier events: %s", exc.reason)
        while not self.stop.is_set():
            t0 = time.monotonic()
            try:
                self.tick()
            except Exception as exc:  # noqa: BLE001 - keep the node alive through API hiccups; say what failed
                log.warning("tick failed: %s", exc)
            self.stop.wait(max(0.05, TICK - (time.monotonic() - t0)))


def _parse_ts(s: str | None) -> float | None:
    """An API timestamp as epoch seconds."""
    if not s:
        return None
    try:
        return dt.datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _items(resp: Any) -> list[dict]:
    """The items of a raw list response."""
    try:
        return json.loads(resp.data).get("items") or []
    finally:
        resp.release_conn()


def _fmt_ts(line: str, t: float) -> str:
    """Fill {ts} in an app's own log format with the line's time."""
    if "{ts}" in line:
        return line.replace("{ts}", dt.datetime.fromtimestamp(t, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z")
    return line


def _probe_message(c: dict, ip: str) -> str:
    """The kubelet's wording for a failed readiness probe, from the container's own probe spec."""
    probe = c.get("readinessProbe") or {}
    if probe.get("httpGet"):
        return "Readiness probe failed: HTTP probe failed with statuscode: 503"
    if probe.get("tcpSocket"):
        return f"Readiness probe failed: dial tcp {ip}:{probe['tcpSocket'].get('port')}: connect: connection refused"
    if probe.get("exec"):
        return "Readiness probe failed: command exited with status 1"
    return "Readiness probe failed: HTTP probe failed with statuscode: 503"


# ---------------------------------------------------------------- HTTP faces

_SEL = re.compile(r'^\s*([a-zA-Z_:][a-zA-Z0-9_:]*)?\s*(?:\{(.*)\})?\s*$')
_MATCHER = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"\s*,?')


def parse_selector(q: str) -> tuple[str | None, list[tuple[str, str, str]]]:
    """A PromQL instant-vector selector (`name{l="v",l=~"re"}`); anything else is refused clearly."""
    m = _SEL.match(q)
    if not m or not (m.group(1) or m.group(2)):
        raise ValueError(f"unsupported query {q!r}: this sandbox Prometheus answers plain selectors like metric{{label=\"value\"}}")
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
    out = []
    for labels, v in series:
        ok = True
        for k, op, val in matchers:
            have = labels.get(k, "")
            if op == "=" and have != val or op == "!=" and have == val:
                ok = False
            elif op == "=~" and not re.fullmatch(val, have) or op == "!~" and re.fullmatch(val, have):
                ok = False
            if not ok:
                break
        if ok:
            out.append((labels, v))
    return out


def _fmt_val(v: float) -> str:
    return str(int(v)) if float(v).is_integer() and abs(v) < 1e15 else repr(float(v))


class _Handler(BaseHTTPRequestHandler):
    agent: Agent
    kind: str  # kubelet | metrics | queue
    server_version = "lantern-sandbox"

    def log_message(self, fmt: str, *args: Any) -> None:  # quiet: the agent log is for the agent
        return

    def _send(self, code: int, body: str | bytes, ctype: str = "application/json") -> None:
        data = body.encode() if isinstance(body, str) else body
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        try:
            u = urlparse(self.path)
            qs = {k: v[-1] for k, v in parse_qs(u.query).items()}
            getattr(self, f"_{self.kind}")(u.path, qs)
        except Exception as exc:  # noqa: BLE001 - answer 500 with the reason rather than drop the connection
            log.exception("HTTP %s failed", self.path)
            self._send(500, json.dumps({"status": "error", "error": str(exc)}))

    def _kubelet(self, path: str, qs: dict[str, str]) -> None:
        parts = [unquote(p) for p in path.strip("/").split("/")]
        if path in ("/healthz", "/healthz/"):
            return self._send(200, "ok", "text/plain")
        if len(parts) != 4 or parts[0] != "containerLogs":
            return self._send(404, "404 page not found", "text/plain")
        _, ns, pod, container = parts
        code, res = self.agent.read_logs(ns, pod, container, qs.get("previous", "false").lower() in ("true", "1"))
        if code != 200:
            return self._send(code, str(res), "text/plain")
        lines = list(res)
        if qs.get("sinceSeconds"):
            cut = time.time() - float(qs["sinceSeconds"])
            lines = [ln for ln in lines if ln[0] >= cut]
        if qs.get("sinceTime"):
            cut = dt.datetime.fromisoformat(qs["sinceTime"].replace("Z", "+00:00")).timestamp()
            lines = [ln for ln in lines if ln[0] >= cut]
        if qs.get("tailLines"):
            n = int(qs["tailLines"])
            lines = lines[-n:] if n > 0 else []
        stamp = qs.get("timestamps", "false").lower() in ("true", "1")
        text = "".join((f"{_ts_nano(t)} " if stamp else "") + ln + "\n" for t, ln in lines)
        data = text.encode()
        if qs.get("limitBytes"):
            data = data[: int(qs["limitBytes"])]
        if qs.get("follow", "false").lower() in ("true", "1") and not qs.get("limitBytes"):
            return self._follow(ns, pod, container, data, stamp, len(res))
        self._send(200, data, "text/plain")

    def _follow(self, ns: str, pod: str, container: str, first: bytes, stamp: bool, seen: int) -> None:
        """`logs -f`: the lines so far, then new ones as the instance writes them, until it ends or the client goes."""
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        try:
            self.wfile.write(first)
            self.wfile.flush()
            instance = self.agent.instance_of(ns, pod, container)
            deadline = time.time() + 3600
            while time.time() < deadline and not self.agent.stop.is_set():
                time.sleep(0.5)
                code, res = self.agent.read_logs(ns, pod, container, False)
                now_inst = self.agent.instance_of(ns, pod, container)
                if code != 200 or now_inst is None or instance is None or now_inst[0] != instance[0]:
                    return  # the pod went away or a new instance started: the kubelet ends the stream too
                new = res[seen:]
                seen = len(res)
                if new:
                    self.wfile.write("".join((f"{_ts_nano(t)} " if stamp else "") + ln + "\n" for t, ln in new).encode())
                    self.wfile.flush()
                if now_inst[1] != "running":
                    return  # the container exited: the stream ends with it
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError, OSError):
            return

    def _metrics(self, path: str, qs: dict[str, str]) -> None:
        a = self.agent
        now = time.time()
        if path == "/-/healthy":
            return self._send(200, "Healthy.\n", "text/plain")
        if path == "/api/v1/alerts":
            return self._send(200, json.dumps({"status": "success", "data": {"alerts": a.alerts(now)}}))
        if path == "/api/v1/query":
            try:
                _, matchers = parse_selector(qs.get("query", ""))
            except ValueError as exc:
                return self._send(400, json.dumps({"status": "error", "errorType": "bad_data", "error": str(exc)}))
            t = float(qs["time"]) if qs.get("time") and _is_num(qs["time"]) else now
            series = a.series(now) if t >= now - 1 else _at(a, t)
            result = [{"metric": lb, "value": [t, _fmt_val(v)]} for lb, v in select(series, matchers)]
            return self._send(200, json.dumps({"status": "success", "data": {"resultType": "vector", "result": result}}))
        if path == "/api/v1/query_range":
            try:
                _, matchers = parse_selector(qs.get("query", ""))
                start, end, step = float(qs["start"]), float(qs["end"]), _step(qs.get("step", "15"))
            except (ValueError, KeyError) as exc:
                return self._send(400, json.dumps({"status": "error", "errorType": "bad_data", "error": str(exc)}))
            if step <= 0 or (end - start) / step > 11000:
                return self._send(400, json.dumps({"status": "error", "errorType": "bad_data",
                                                   "error": "exceeded maximum resolution of 11,000 points per timeseries"}))
            acc: dict[str, tuple[dict, list]] = {}
            t = start
            while t <= end + 1e-9:
                series = a.series(now) if t >= now - 1 else _at(a, t)
                for lb, v in select(series, matchers):
                    key = json.dumps(lb, sort_keys=True)
                    acc.setdefault(key, (lb, []))[1].append([t, _fmt_val(v)])
                t += step
            result = [{"metric": lb, "values": vals} for lb, vals in acc.values()]
            return self._send(200, json.dumps({"status": "success", "data": {"resultType": "matrix", "result": result}}))
        self._send(404, json.dumps({"status": "error", "errorType": "not_found", "error": f"unknown path {path}"}))

    def _queue(self, path: str, qs: dict[str, str]) -> None:
        a = self.agent
        sc = a.scenario
        queues = []
        if sc and sc.queue and a.queue_depth is not None:
            q = sc.queue
            depth = int(a.queue_depth)
            pub, deliv = a.queue_rates
            queues.append({"name": q.name, "vhost": q.vhost, "durable": True, "auto_delete": False, "state": "running",
                           "type": "classic", "node": "rabbit@rabbitmq-0",
                           "messages": depth, "messages_ready": depth, "messages_unacknowledged": 0,
                           "consumers": a.queue_consumers, "consumer_utilisation": 1.0 if a.queue_consumers else None,
                           "message_stats": {"publish_details": {"rate": round(pub, 1)},
                                             "deliver_get_details": {"rate": round(deliv, 1)},
                                             "ack_details": {"rate": round(deliv, 1)}}})
        parts = [unquote(p) for p in path.strip("/").split("/")]
        if parts == ["api", "overview"]:
            total = sum(q["messages"] for q in queues)
            return self._send(200, json.dumps({"rabbitmq_version": "3.12.13", "cluster_name": "rabbit@rabbitmq-0",
                                               "queue_totals": {"messages": total, "messages_ready": total, "messages_unacknowledged": 0},
                                               "object_totals": {"queues": len(queues), "consumers": sum(q["consumers"] for q in queues)}}))
        if parts == ["api", "queues"]:
            return self._send(200, json.dumps(queues))
        if len(parts) == 3 and parts[:2] == ["api", "queues"]:
            return self._send(200, json.dumps([q for q in queues if q["vhost"] == parts[2]]))
        if len(parts) == 4 and parts[:2] == ["api", "queues"]:
            for q in queues:
                if q["vhost"] == parts[2] and q["name"] == parts[3]:
                    return self._send(200, json.dumps(q))
            return self._send(404, json.dumps({"error": "Object Not Found", "reason": "Not Found"}))
        self._send(404, json.dumps({"error": "Object Not Found", "reason": "Not Found"}))


def _is_num(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        return False


def _step(s: str) -> float:
    m = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m|h)?", s.strip())
    if not m:
        raise ValueError(f"invalid step {s!r}")
    return float(m.group(1)) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600, None: 1}[m.group(2)]


def _at(a: Agent, t: float) -> list[tuple[dict, float]]:
    """The sample recorded at or before t (Prometheus' 5-minute lookback); nothing before the agent started."""
    with a.lock:
        best = None
        for ts, series in a.history:
            if ts <= t:
                best = (ts, series)
            else:
                break
    if best is None or t - best[0] > 300:
        return []
    return best[1]


def _serve(agent: Agent, kind: str, port: int, tls: tuple[Path, Path] | None = None) -> ThreadingHTTPServer:
    handler = type(f"{kind.title()}Handler", (_Handler,), {"agent": agent, "kind": kind})
    srv = ThreadingHTTPServer(("127.0.0.1", port), handler)
    srv.daemon_threads = True
    if tls:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(str(tls[0]), str(tls[1]))
        srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    threading.Thread(target=srv.serve_forever, name=f"http-{kind}", daemon=True).start()
    return srv


class TlsEndpoint:
    """Serves, on a loopback port, the certificate the active scenario's Secret holds at this moment."""

    def __init__(self, agent: Agent, port: int) -> None:
        self.agent = agent
        self.sock = socket.create_server(("127.0.0.1", port))
        self.dir = agent.lay.home / "tls-endpoint"
        self.cache: tuple[str, ssl.SSLContext] | None = None
        threading.Thread(target=self.loop, name="tls-endpoint", daemon=True).start()

    def context(self) -> ssl.SSLContext | None:
        sc = self.agent.scenario
        if not sc or not sc.tls_endpoint:
            return None
        sec = self.agent.world.secrets.get((sc.namespace, sc.tls_endpoint.secret))
        data = (sec or {}).get("data") or {}
        if not data.get("tls.crt") or not data.get("tls.key"):
            return None
        digest = hashlib.sha256((data["tls.crt"] + data["tls.key"]).encode()).hexdigest()
        if self.cache and self.cache[0] == digest:
            return self.cache[1]
        self.dir.mkdir(parents=True, exist_ok=True)
        crt, key = self.dir / "tls.crt", self.dir / "tls.key"
        crt.write_bytes(base64.b64decode(data["tls.crt"]))
        key.touch(mode=0o600)
        key.write_bytes(base64.b64decode(data["tls.key"]))
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(str(crt), str(key))
        self.cache = (digest, ctx)
        return ctx

    def loop(self) -> None:
        while not self.agent.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self.answer, args=(conn,), daemon=True).start()

    def answer(self, conn: socket.socket) -> None:
        try:
            ctx = self.context()
            if ctx is None:
                return
            conn.settimeout(5)
            with ctx.wrap_socket(conn, server_side=True) as tls:
                tls.recv(4096)
                body = b"ok\n"
                tls.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\n" + body)
        except (OSError, ssl.SSLError, ValueError):
            pass  # a client that rejects the certificate ends the handshake: that is the point
        finally:
            conn.close()


def main(argv: list[str] | None = None) -> int:
    """Entry point of the node agent process."""
    ap = argparse.ArgumentParser(description="Lantern sandbox node agent")
    ap.add_argument("--home", required=True)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("urllib3").setLevel(logging.ERROR)
    agent = Agent(Path(args.home))
    signal.signal(signal.SIGTERM, lambda *_: agent.stop.set())
    signal.signal(signal.SIGINT, lambda *_: agent.stop.set())
    pki_dir = agent.lay.pki
    servers = [_serve(agent, "kubelet", int(agent.ports["kubelet"]), (pki_dir / "kubelet.crt", pki_dir / "kubelet.key")),
               _serve(agent, "metrics", int(agent.ports["metrics"])),
               _serve(agent, "queue", int(agent.ports["queue"]))]
    if agent.ports.get("tls"):
        TlsEndpoint(agent, int(agent.ports["tls"]))
    log.info("node agent up: nodes %s, kubelet port %s", ", ".join(agent.nodes), agent.ports["kubelet"])
    agent.run()
    for s in servers:
        s.shutdown()
    log.info("node agent stopped")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
