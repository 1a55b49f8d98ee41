"""Kubernetes checks over kubectl-style output: tables (`get`), `describe`, node summaries,
systemd status of node agents, metric alerts and recent logs.

Each check knows one well-known failure signal of Kubernetes (an `exceeded quota` admission
error, a FailedScheduling reason, an image pull error, a probe aimed at the wrong port, a node
agent that is down). Outputs are recognised by their shape, not by the tool that printed them, so
any read that prints what kubectl prints is covered; none looks at the names of a particular
application. `KubernetesChecks` is the engine's `Check` over all of them: a pack that prints such
output names it in its `checks`, and its actions say which read intents (`describe_pod`,
`node_service`, `logs`, `manifest`, `endpoints`, `quota`, `services`) they answer (`serves`).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from engine.diagnose import Finding, Read
from skills.kube import catalogue

Hit = tuple[str, str, str, float]
"""(cause, object, evidence line, weight)."""

_POD_HASH = re.compile(r"-(?=[a-z0-9]*\d)[a-z0-9]{6,10}-[a-z0-9]{5}$")
_RS_HASH = re.compile(r"-(?=[a-z0-9]*\d)[a-z0-9]{6,10}$")
_POD_SUFFIX = re.compile(r"-[a-z0-9]{5}$")
HEALTHY = {"Running", "Completed", "Succeeded"}


def workload_of(name: str) -> str:
    """The deployment behind a pod or replica set name (its hashes stripped)."""
    n = _POD_HASH.sub("", name)
    if n != name:
        return n
    n = _RS_HASH.sub("", name)
    return n if n != name else name


@dataclass
class Pod:
    name: str
    workload: str
    ready: int
    total: int
    status: str
    restarts: int
    node: str = ""
    namespace: str = ""
    """Where the listing that showed it was read ('' when it did not say)."""

    @property
    def healthy(self) -> bool:
        return self.status in HEALTHY and self.ready == self.total and self.restarts == 0


@dataclass
class Described:
    """What a `describe pod` showed."""

    node: str = ""
    pending: bool = False
    scheduling_events: bool = False
    crashing: bool = False
    oom: bool = False
    sandbox_runtime_error: bool = False
    namespace: str = ""
    """The pod's namespace, as it was described."""


@dataclass
class ClusterState:
    """What the session has read so far, as far as the checks need it."""

    pods: dict[str, Pod] = field(default_factory=dict)
    pod_lists: int = 0
    described: dict[str, Described] = field(default_factory=dict)
    nodes: dict[str, str] = field(default_factory=dict)
    """node → status (Ready, NotReady, Unknown)."""
    control_plane: set[str] = field(default_factory=set)
    node_agents: dict[tuple[str, str], bool] = field(default_factory=dict)
    """(node, agent) → running."""
    endpoints: dict[str, str] = field(default_factory=dict)
    service_ports: dict[str, str] = field(default_factory=dict)
    container_ports: dict[str, set[int]] = field(default_factory=dict)
    logs_read: set[str] = field(default_factory=set)
    restarting: dict[str, str] = field(default_factory=dict)
    """pod → namespace, for pods a BackOff event says keep restarting a failed container."""
    manifests: set[str] = field(default_factory=set)
    quota_keys: set[str] = field(default_factory=set)
    claims: dict[str, str] = field(default_factory=dict)
    missing_claims: set[str] = field(default_factory=set)
    """Claims a pod waits on that the API server says do not exist."""
    quota_read: bool = False
    jobs: set[str] = field(default_factory=set)
    """Jobs read (a job's pods are NAME-xxxxx: mapped to the job, not to a deployment)."""
    strong: float = 0.0
    """The highest weight found so far."""

    def workload(self, name: str) -> str:
        """The workload behind a pod name: its job when a job of that name was read, else its deployment."""
        for job in self.jobs:
            rest = name[len(job) + 1 :]
            if name.startswith(job + "-") and _POD_SUFFIX.fullmatch("-" + rest):
                return job
        return workload_of(name)

    def workload_healthy(self, workload: str) -> bool | None:
        """True when every listed pod of `workload` is healthy, False when one is not, None when
        no pod list has been read or it has no pod of that workload."""
        pods = [p for p in self.pods.values() if p.workload == workload]
        if not self.pod_lists or not pods:
            return None
        return all(p.healthy for p in pods)


# --- parsing ---------------------------------------------------------------------------------


def parse_table(text: str) -> tuple[list[str], list[dict[str, str]]]:
    """A kubectl table: header columns and rows, sliced at the header's column offsets (values
    such as `2 (14s ago)` hold spaces)."""
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if not lines:
        return [], []
    header = lines[0]
    cols = [(m.start(), m.group(0)) for m in re.finditer(r"\S+(?: \S+)*", header)]
    if len(cols) < 2 or not all(re.fullmatch(r"[A-Z][A-Z ()/_-]*", c[1]) for c in cols):
        return [], []
    rows = []
    for ln in lines[1:]:
        row = {}
        for i, (start, name) in enumerate(cols):
            end = cols[i + 1][0] if i + 1 < len(cols) else None
            row[name] = (ln[start:end] if end is not None else ln[start:]).strip()
        rows.append(row)
    return [c[1] for c in cols], rows


def _int(s: str) -> int:
    m = re.match(r"\d+", s or "")
    return int(m.group(0)) if m else 0


def _ready(s: str) -> tuple[int, int]:
    m = re.match(r"(\d+)/(\d+)", s or "")
    return (int(m.group(1)), int(m.group(2))) if m else (0, 0)


# --- message classifiers (shared by event lists and describe output) -------------------------


_QUOTA_KIND = [
    (re.compile(r"ephemeral-storage"), "namespace_ephemeral_storage_quota_exceeded"),
    (re.compile(r"(?:requests|limits)\.memory|^memory$"), "namespace_memory_quota_exceeded"),
    (re.compile(r"(?:requests|limits)\.cpu|^cpu$"), "namespace_cpu_quota_exceeded"),
    (
        re.compile(r"requests\.storage|persistentvolumeclaims|(?<!ephemeral-)storage$"),
        "namespace_storage_quota_exceeded",
    ),
    (re.compile(r"^(?:count/)?services"), "namespace_service_quota_exceeded"),
    (re.compile(r"^(?:count/)?pods$"), "namespace_pod_quota_exceeded"),
    # the rest of ResourceQuota's kinds (https://kubernetes.io/docs/concepts/policy/resource-quotas/)
    (
        re.compile(r"^(?:requests|limits)\.[a-z0-9.-]+/[\w.-]+$|^[a-z0-9.-]+\.[a-z]+/[\w.-]+$"),
        "namespace_extended_resource_quota_exceeded",
    ),
    (
        re.compile(r"^(?:count/[\w.-]+|configmaps|secrets|replicationcontrollers|resourcequotas)$"),
        "namespace_object_count_quota_exceeded",
    ),
]


def quota_causes(message: str) -> list[str]:
    """The quota kinds an `exceeded quota` admission error names in `requested: a=1,b=2`, the
    resource pushed furthest past its limit ((used + requested) / limited) first."""
    req, used, lim = (_quota_map(message, k) for k in ("requested", "used", "limited"))

    def overshoot(key: str) -> float:
        r, u, h = quantity(req[key]), quantity(used.get(key, "")), quantity(lim.get(key, ""))
        return (u + r) / h if r is not None and u is not None and h else 0.0

    out = []
    for key in sorted(req, key=lambda k: -overshoot(k)):
        cause = next((c for rx, c in _QUOTA_KIND if rx.search(key.lower())), None)
        if cause and cause not in out:
            out.append(cause)
    return out


def _quota_map(message: str, label: str) -> dict[str, str]:
    m = re.search(rf"{label}:\s*([^\s,]+(?:,[^\s,]+)*)", message)
    pairs = (part.split("=", 1) for part in (m.group(1).split(",") if m else []))
    return {k.strip(): v.strip() for k, v in (p if len(p) == 2 else (p[0], "") for p in pairs)}


def scheduling_causes(message: str, node_selector: bool | None) -> list[tuple[str, float]]:
    """The causes a FailedScheduling message gives, strongest first. `node_selector`: whether the
    pod sets a nodeSelector (None: not known)."""
    m = message.lower()
    out: list[tuple[str, float]] = []
    taints = [
        t
        for t in re.findall(r"untolerated taint\(?s?\)?\s*\{([^}]*)\}", m)
        if not t.strip().startswith("node.kubernetes.io/")
    ]
    blocker = False
    if taints:
        out.append(("taint_toleration_mismatch", 0.85))
        blocker = True
    if "insufficient cpu" in m:
        out.append(("insufficient_node_cpu", 0.85))
        blocker = True
    if "insufficient memory" in m:
        out.append(("insufficient_node_memory", 0.85))
        blocker = True
    if "anti-affinity" in m:
        out.append(("pod_anti_affinity_conflict", 0.8))
        blocker = True
    if "didn't match pod's node affinity/selector" in m or "node affinity/selector" in m:
        w = 0.55 if blocker else (0.8 if node_selector is not None else 0.65)
        if node_selector is None:
            out.append(("node_affinity_mismatch", w))
            out.append(("node_selector_mismatch", w - 0.05))
        else:
            out.append(("node_selector_mismatch" if node_selector else "node_affinity_mismatch", w))
    if "unbound immediate persistentvolumeclaims" in m or "persistentvolumeclaim" in m and "not found" in m:
        out.append(("pvc_unbound", 0.5))
    n_unsched = sum(_int(x) for x in re.findall(r"(\d+) node\(s\) were unschedulable", m))
    if n_unsched and not out:
        out.append(("node_cordoned", 0.6))
    return out


def image_pull_cause(message: str) -> tuple[str, float] | None:
    """What an image pull failure says about the reference, the registry or the credentials."""
    m = message.lower()
    if "no such host" in m or re.search(r"dial tcp: lookup \S+", m) or "server misbehaving" in m:
        return "image_registry_dns_failure", 0.85
    # Docker Hub answers "repository does not exist or may require 'docker login'" for a name that
    # is wrong as well as for one that is private: the reference is the likelier fault.
    if any(
        s in m
        for s in (
            "not found",
            "manifest unknown",
            "code = notfound",
            "does not exist",
            "invalid reference format",
            "repository does not exist",
        )
    ):
        return "incorrect_image_reference", 0.85
    if any(
        s in m
        for s in (
            "unauthorized",
            "authorization failed",
            "failed to authorize",
            "401",
            "403 forbidden",
            "denied",
            "anonymous token",
            "no basic auth credentials",
        )
    ):
        return "missing_image_pull_secret", 0.8
    return None


# --- readers ---------------------------------------------------------------------------------


def read_output(state: ClusterState, tool: str, args: dict[str, Any], text: str, namespace: str) -> list[Hit]:
    """Every finding in one output, recognised by its shape; `state` learns what it shows."""
    ns = str(args.get("namespace") or namespace)
    hits: list[Hit] = []
    stripped = text.lstrip()
    if re.match(r"NAME\s+READY\s+STATUS\s+RESTARTS", stripped):
        _read_pods(state, stripped, str(args.get("namespace") or ""))
    elif re.match(r"LAST SEEN\s+TYPE\s+REASON\s+OBJECT", stripped) or _EVENT_ROW.match(stripped.split("\n", 1)[0]):
        hits += _read_events(state, stripped, ns)
    elif re.match(r"NAME\s+ENDPOINTS", stripped):
        hits += _read_endpoints(state, stripped)
    elif re.match(r"NAME\s+AGE\s+REQUEST\s+LIMIT", stripped):
        hits += _read_quotas(state, stripped, ns)
    elif re.match(r"NAME\s+STATUS\s+VOLUME\s+CAPACITY", stripped):
        _read_pvcs(state, stripped)
    elif re.match(r"NAME\s+TYPE\s+CLUSTER-IP", stripped):
        hits += _read_services(state, stripped)
    elif re.match(r"NAME\s+STATUS\s+ROLES", stripped):
        _read_node_table(state, stripped)
    elif re.match(r"NAME\s+(?:STATUS\s+)?COMPLETIONS", stripped):
        state.jobs.update(r.get("NAME", "") for r in parse_table(stripped)[1] if r.get("NAME"))
    elif re.match(r"NAME\s+CLASS\s+HOSTS", stripped):
        hits += _read_ingress_table(stripped)
    elif re.match(r"Name:\s+\S+", stripped) and describe_kind(stripped) not in ("pod", ""):
        hits += _read_describe_other(state, stripped, ns, describe_kind(stripped))
    elif (
        re.match(r"Name:\s+\S+", stripped)
        and "Containers:" in stripped
        and ("Status:" in stripped or "Events:" in stripped)
    ):
        hits += _read_describe_pod(state, stripped, ns)
    elif _POD_ROW.match(stripped):
        # pod rows without their header (a grep, a --no-headers listing)
        _read_pod_rows(state, stripped, str(args.get("namespace") or ""))
    elif re.match(r"Service:\s+\S+\s*\nNode:\s+\S+", stripped):
        hits += _read_agent(state, stripped)
    elif stripped.startswith(("node_count:", "nodes:")):
        _read_nodes(state, stripped)
    elif (
        stripped.startswith(("status: has_anomalies", "alert_count:", "alerts:"))
        or "No active metric anomalies" in stripped
    ):
        hits += _read_alerts(state, stripped)
    elif "apiVersion:" in stripped and "kind:" in stripped:
        _read_manifest(state, stripped, args)
    else:
        service = str(args.get("service_name") or args.get("app_name") or args.get("name") or args.get("pod") or "")
        if service and ("log" in tool.rsplit(".", 1)[-1].lower()):
            hits += _read_logs(state, state.workload(service), stripped, ns)
    if state.endpoints and state.container_ports:
        hits += port_mismatches(state)
    return hits


def read_data(
    state: ClusterState, tool: str, args: dict[str, Any], data: dict[str, Any], namespace: str
) -> list[Hit] | None:
    """Findings in structured output (a Python-client pack's pods, events and describe dicts);
    None when the shape is not one of those, so the text is read instead."""
    ns = str(args.get("namespace") or data.get("namespace") or namespace)
    hits: list[Hit] = []
    if isinstance(data.get("pods"), list):
        state.pod_lists += 1
        for r in data["pods"]:
            if not isinstance(r, dict) or not r.get("name"):
                continue
            ready, total = _ready(str(r.get("ready", "")))
            name = str(r["name"])
            state.pods[name] = Pod(
                name,
                workload_of(name),
                ready,
                total,
                str(r.get("status", "")),
                _int(str(r.get("restarts", 0))),
                str(r.get("node", "")),
                str(r.get("namespace") or ns),
            )
            if "OOMKilled" in str(r.get("last_terminated", "")):
                hits.append(
                    ("oom_killed", f"service/{workload_of(name)}", f"pod {name}: last terminated OOMKilled", 0.9)
                )
        return hits
    if isinstance(data.get("events"), list) and "containers" not in data:
        for e in data["events"]:
            if isinstance(e, dict) and e.get("type") == "Warning":
                kind, _, name = str(e.get("object", "")).partition("/")
                target = f"service/{workload_of(name)}" if name else ""
                gone = kind == "pod" and state.pod_lists > 0 and name not in state.pods
                _note_restarting(state, kind, name, str(e.get("reason", "")), str(e.get("message", "")), ns, gone)
                hits += _classify(
                    state,
                    str(e.get("reason", "")),
                    str(e.get("message", "")),
                    target,
                    ns,
                    node_selector=None,
                    penalty=0.4 if gone else 0.05,
                )
        return hits
    if isinstance(data.get("containers"), list) and data.get("name"):
        name = str(data["name"])
        target = f"service/{workload_of(name)}"
        d = Described(node=str(data.get("node") or ""), pending=data.get("phase") == "Pending", namespace=ns)
        for c in data["containers"]:
            if not isinstance(c, dict):
                continue
            for key in ("current", "last"):
                st = c.get(key) or {}
                if isinstance(st, dict) and st.get("reason") == "OOMKilled":
                    hits.append(("oom_killed", target, f"container {c.get('name')}: {key} state OOMKilled", 0.9))
                    d.oom = True
                if isinstance(st, dict) and st.get("reason") in ("CrashLoopBackOff", "Error"):
                    d.crashing = True
        for e in data.get("events") or []:
            if isinstance(e, dict) and e.get("type") == "Warning":
                if e.get("reason") == "FailedScheduling":
                    d.scheduling_events = True
                hits += _classify(
                    state, str(e.get("reason", "")), str(e.get("message", "")), target, ns, node_selector=None
                )
        state.described[name] = d
        return hits
    return None


def _read_pods(state: ClusterState, text: str, namespace: str = "") -> None:
    cols, rows = parse_table(text)
    state.pod_lists += 1
    for r in rows:
        name = r.get("NAME", "")
        if not name:
            continue
        ready, total = _ready(r.get("READY", ""))
        state.pods[name] = Pod(
            name,
            state.workload(name),
            ready,
            total,
            r.get("STATUS", ""),
            _int(r.get("RESTARTS", "")),
            r.get("NODE", ""),
            r.get("NAMESPACE") or namespace,
        )


_EVENT_ROW = re.compile(r"^\s*(\S+(?:\s+\(x\d+ over \S+\))?)\s+(Normal|Warning)\s+(\S+)\s+(\S+/\S+)\s+(.*)$")


def _event_rows(text: str) -> Iterator[dict[str, str]]:
    """Warning rows of `kubectl get events` (with or without its header line)."""
    for ln in text.splitlines():
        m = _EVENT_ROW.match(ln)
        if m and m.group(2) == "Warning":
            yield {"LAST SEEN": m.group(1), "REASON": m.group(3), "OBJECT": m.group(4), "MESSAGE": m.group(5).strip()}


def _read_events(state: ClusterState, text: str, ns: str) -> list[Hit]:
    hits: list[Hit] = []
    for r in _event_rows(text):
        reason, obj, msg = r.get("REASON", ""), r.get("OBJECT", ""), r.get("MESSAGE", "")
        kind, _, name = obj.partition("/")
        target = _target(state, kind, name)
        # An event about a pod the current pod list no longer has is about an earlier rollout.
        gone = kind == "pod" and state.pod_lists > 0 and name not in state.pods
        _note_restarting(state, kind, name, reason, msg, ns, gone)
        hits += _classify(state, reason, msg, target, ns, node_selector=None, penalty=0.4 if gone else 0.05)
    return hits


def _note_restarting(state: ClusterState, kind: str, name: str, reason: str, msg: str, ns: str, gone: bool) -> None:
    """A BackOff event on a pod that still exists: its previous container's log says why it exits
    (kubelet's "Back-off restarting failed container", the CrashLoopBackOff documentation)."""
    if kind.lower() == "pod" and name and not gone and reason == "BackOff" and "restarting failed container" in msg:
        state.restarting.setdefault(name, ns)


def _target(state: ClusterState, kind: str, name: str) -> str:
    """The object an event's OBJECT names: a node, or the workload behind a pod, job or replica set."""
    if not name:
        return ""
    if kind.lower() == "node":
        return f"node/{name}"
    return f"service/{state.workload(name)}"


def _classify(
    state: ClusterState,
    reason: str,
    msg: str,
    target: str,
    ns: str,
    *,
    node_selector: bool | None,
    penalty: float = 0.0,
) -> list[Hit]:
    """Findings from one event (reason and message) about `target`."""
    hits: list[Hit] = []
    low = msg.lower()
    if "exceeded quota" in low:
        for cause in quota_causes(msg):
            hits.append((cause, f"namespace/{ns}", msg, 0.9))
    elif "error looking up service account" in low or ("serviceaccount" in low and "not found" in low):
        if target:
            hits.append(("missing_service_account", target, msg, 0.6 - penalty))
    elif reason == "FailedScheduling" and target:
        for claim in re.findall(r'persistentvolumeclaim "([^"]+)" not found', msg):
            state.missing_claims.add(claim)
        for cause, w in scheduling_causes(msg, node_selector):
            hits.append((cause, target, msg, w - penalty))
    elif target and ("failed to pull image" in low or reason in ("ErrImagePull", "ImagePullBackOff") and "pull" in low):
        c = image_pull_cause(msg)
        if c:
            hits.append((c[0], target, msg, c[1] - penalty))
    elif target and ("oom-killed" in low or "oomkilled" in low):
        hits.append(("oom_killed", target, msg, 0.9 - penalty))
    if not hits:
        hits += catalogued(state, "event", reason, msg, target, ns, penalty=penalty)
    return hits


def catalogued(
    state: ClusterState,
    place: str,
    reason: str,
    msg: str,
    target: str,
    ns: str,
    *,
    node: str = "",
    penalty: float = 0.0,
) -> list[Hit]:
    """Findings from the failure catalogue for one line read in `place` (event, state, condition, log)."""
    hits: list[Hit] = []
    for e in catalogue.match(place, reason, msg):
        if e.object == "namespace":
            obj = f"namespace/{ns}"
        elif e.object == "node":
            obj = f"node/{node}" if node else (target if target.startswith("node/") else "")
        else:
            obj = target
        if obj:
            hits.append((e.cause, obj, msg, e.weight - penalty))
    return hits


def _probe_of(line: str) -> tuple[str, int | None]:
    """(kind, port) of a describe `Liveness:`/`Readiness:` line: grpc, http-get, tcp-socket, exec."""
    kind = line.split()[0] if line.split() else ""
    m = re.search(r":(\d+)\b", line)
    return kind, (int(m.group(1)) if m else None)


def _read_describe_pod(state: ClusterState, text: str, ns: str) -> list[Hit]:
    """Findings from a `describe pod`; what it showed stays in state.described for the checks that
    look at the pod as a whole (pending with no scheduler, crashing, a sandbox runtime error)."""
    name = re.match(r"Name:\s+(\S+)", text).group(1)  # type: ignore[union-attr]
    workload = state.workload(name)
    pod = _spec_shown(text, workload)
    shown = re.search(r"^Namespace:\s+(\S+)", text, re.M)
    d = Described(namespace=shown.group(1) if shown else ns)
    m = re.search(r"^Node:\s+(\S+)", text, re.M)
    d.node = (m.group(1).split("/")[0] if m else "").replace("<none>", "")
    status = re.search(r"^Status:\s+(\S+)", text, re.M)
    d.pending = bool(status and status.group(1) == "Pending")
    if pod.ports:
        state.container_ports.setdefault(workload, set()).update(pod.ports)
    events = text[text.find("\nEvents:") :] if "\nEvents:" in text else ""
    hits: list[Hit] = []
    if re.search(r"Reason:\s+OOMKilled", text):
        line = next((ln for ln in text.splitlines() if "OOMKilled" in ln), "OOMKilled")
        hits.append(("oom_killed", pod.target, line.strip(), 0.9))
        d.oom = True
    if re.search(r"Reason:\s+(CrashLoopBackOff|Error)", text) or re.search(
        r"Back-off restarting failed container", events
    ):
        d.crashing = True
    for ln in events.splitlines():
        warning = _warning_event(ln)
        if warning:
            hits += _pod_warning_hits(state, d, pod, *warning, ns)
    hits += _container_states(state, text, pod.target, d.namespace)
    if d.pending and not d.node and not d.scheduling_events:
        cp = sorted(state.control_plane) or ["master"]
        hits.append(
            (
                "kube_scheduler_unavailable",
                f"node/{cp[0]}",
                f"pod {name} is Pending with no node and no scheduling events: nothing has tried to schedule it",
                0.55,
            )
        )
    state.described[name] = d
    return hits


@dataclass
class _PodSpecShown:
    """What a described pod's spec says that its warning events are judged against."""

    target: str
    """The finding's object: the pod's workload as a service."""
    ports: set[int]
    """The ports its containers declare."""
    probes: dict[str, tuple[str, int | None]]
    """liveness/readiness → (kind, port)."""
    node_selector: bool | None
    """Whether it has a node selector (None when describe did not say)."""


def _spec_shown(text: str, workload: str) -> _PodSpecShown:
    """The ports, probes and node selector a `describe pod` shows."""
    sel = re.search(r"^Node-Selectors:\s+(.*)$", text, re.M)
    return _PodSpecShown(
        target=f"service/{workload}",
        ports={int(p) for p in re.findall(r"^\s+Port:\s+(\d+)/", text, re.M)},
        probes={k.lower(): _probe_of(v) for k, v in re.findall(r"^\s+(Liveness|Readiness):\s+(.*)$", text, re.M)},
        node_selector=None if not sel else sel.group(1).strip() not in ("<none>", ""),
    )


def _warning_event(ln: str) -> tuple[str, str] | None:
    """(reason, message) of a describe Events row of type Warning, None for any other line."""
    parts = ln.split(None, 1)
    if len(parts) < 2 or parts[0] != "Warning":
        return None
    rm = re.match(r"Warning\s+(\S+)\s+.*?\s{2,}(?:\S+(?:, \S+)*)\s{2,}(.*)$", ln.strip())
    return (rm.group(1), rm.group(2)) if rm else (parts[1].split()[0], parts[1])


def _pod_warning_hits(
    state: ClusterState, d: Described, pod: _PodSpecShown, reason: str, msg: str, ns: str
) -> list[Hit]:
    """Findings from one warning event of a described pod; scheduling and sandbox failures are also
    noted on `d`, for the checks that look at the pod as a whole."""
    low = msg.lower()
    hits: list[Hit] = []
    if reason == "FailedScheduling":
        d.scheduling_events = True
    if reason == "FailedCreatePodSandBox" and (
        "containerd" in low and ("connection error" in low or "dial" in low or ".sock" in low)
    ):
        d.sandbox_runtime_error = True
        if d.node:
            hits.append(("containerd_unavailable", f"node/{d.node}", msg, 0.75))
    if "probe failed" in low:
        hits.append(_probe_hit(pod, low, msg))
    else:
        hits += _classify(state, reason, msg, pod.target, ns, node_selector=pod.node_selector)
    return hits


_WRONG_PROTOCOL = (
    "malformed http",
    "http/1.x transport",
    "gave http response",
    "does not look like a tls",
    "unimplemented",
    "not implement",
)
"""Probe failure wordings of a probe that speaks another protocol than the container."""


def _probe_hit(pod: _PodSpecShown, low: str, msg: str) -> Hit:
    """A failed probe's cause: aimed at a port no container declares, speaking the wrong protocol, or
    (failing that) timed too tightly."""
    kind = "liveness" if low.startswith("liveness") else "readiness"
    ptype, pport = pod.probes.get(kind, ("", None))
    if pport is not None and pod.ports and pport not in pod.ports:
        listens = ", ".join(map(str, sorted(pod.ports)))
        return (
            f"{kind}_probe_incorrect_port",
            pod.target,
            f"{kind} probe on port {pport}, container listens on {listens}: {msg}",
            0.85,
        )
    if any(s in low for s in _WRONG_PROTOCOL) or (
        ptype == "http-get" and "grpc" in " ".join(p[0] for p in pod.probes.values())
    ):
        return (f"{kind}_probe_incorrect_protocol", pod.target, f"{kind} probe {ptype}: {msg}", 0.8)
    return (f"{kind}_probe_incorrect_timing", pod.target, f"{kind} probe {ptype} port {pport}: {msg}", 0.5)


_STATE_REASON = re.compile(r"^[ \t]+Reason:[ \t]+(\S+)[ \t]*\n(?:[ \t]+Message:[ \t]+(.*)\n)?", re.M)


def _container_states(state: ClusterState, text: str, target: str, ns: str) -> list[Hit]:
    """A described pod's container (and init container) waiting/terminated reasons and messages."""
    hits: list[Hit] = []
    for m in _STATE_REASON.finditer(text):
        reason, msg = m.group(1), (m.group(2) or "").strip()
        hits += catalogued(state, "state", reason, msg or reason, target, ns)
    return hits


def _read_agent(state: ClusterState, text: str) -> list[Hit]:
    svc = re.match(r"Service:\s+(\S+)\s*\nNode:\s+(\S+)", text)
    assert svc is not None
    agent, node = svc.group(1), svc.group(2)
    active = re.search(r"^\s*Active:\s+(.*)$", text, re.M)
    line = active.group(1).strip() if active else ""
    running = line.startswith("active (running)")
    state.node_agents[(node, agent)] = running
    if active and not running:
        return [(f"{agent.replace('-', '_')}_unavailable", f"node/{node}", f"{agent} on {node}: Active: {line}", 0.9)]
    return []


def _read_nodes(state: ClusterState, text: str) -> None:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        return
    for n in (data or {}).get("nodes", []) if isinstance(data, dict) else []:
        if not isinstance(n, dict) or "name" not in n:
            continue
        name = str(n["name"])
        state.nodes[name] = str(n.get("status", ""))
        labels = n.get("labels") or {}
        roles = str(n.get("role", "")) + " " + " ".join(str(k) for k in labels)
        if "control-plane" in roles or "master" in roles or name in ("master", "control-plane"):
            state.control_plane.add(name)


def _pct(s: str) -> float:
    vals = [float(x) for x in re.findall(r"\(\+([\d.]+)%\)", s)]
    return max(vals) if vals else 0.0


def _read_alerts(state: ClusterState, text: str) -> list[Hit]:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        return []
    alerts = (data or {}).get("alerts", []) if isinstance(data, dict) else []
    hits: list[Hit] = []
    latency: list[tuple[float, str, str]] = []
    for a in alerts:
        if not isinstance(a, dict):
            continue
        if a.get("type") == "Node":
            hits += _node_alert(str(a.get("name", "")), [str(e) for e in a.get("evidence") or []])
            continue
        if a.get("type") != "Service":
            continue
        svc = str(a.get("name", ""))
        for ev in a.get("evidence") or []:
            ev = str(ev)
            low = ev.lower()
            if "RESOURCE_SATURATION" in ev and "cpu" in low:
                hits.append(("pod_cpu_overload", f"service/{svc}", ev, 0.75))
            elif "RESOURCE_SATURATION" in ev and "mem" in low:
                hits.append(("pod_memory_pressure", f"service/{svc}", ev, 0.7))
            elif "packet loss" in low or "PACKET_LOSS" in ev:
                hits.append(("pod_network_packet_loss", f"service/{svc}", ev, 0.6))
            elif "LATENCY_DEGRADATION" in ev:
                latency.append((_pct(ev), svc, ev))
    # The service a delay is injected into slows down the most; its callers see a share of it.
    latency.sort(reverse=True)
    for i, (_, svc, ev) in enumerate(latency[:2]):
        hits.append(("pod_network_delay", f"service/{svc}", ev, 0.6 if i == 0 else 0.35))
    return hits


def _node_alert(node: str, evidence: list[str]) -> list[Hit]:
    """A node's own metric anomalies: injected delay or loss on its network, memory or disk pressure."""
    hits: list[Hit] = []
    for ev in evidence:
        low = ev.lower()
        if "loss" in low:
            hits.append(("node_network_packet_loss", f"node/{node}", ev, 0.65))
        elif "latency" in low or "delay" in low or "rtt" in low:
            hits.append(("node_network_delay", f"node/{node}", ev, 0.65))
        elif "RESOURCE_SATURATION" in ev and "mem" in low:
            hits.append(("node_memory_pressure", f"node/{node}", ev, 0.6))
        elif "RESOURCE_SATURATION" in ev and ("disk" in low or "fs" in low):
            hits.append(("node_disk_pressure", f"node/{node}", ev, 0.6))
    return hits


def _read_endpoints(state: ClusterState, text: str) -> list[Hit]:
    _, rows = parse_table(text)
    hits: list[Hit] = []
    for r in rows:
        svc, eps = r.get("NAME", ""), r.get("ENDPOINTS", "")
        state.endpoints[svc] = eps
        if eps == "<none>":
            hits.append(
                (
                    "service_selector_mismatch",
                    f"service/{svc}",
                    f"service {svc} has no endpoints: its selector matches no ready pod",
                    0.7,
                )
            )
    return hits


def _read_services(state: ClusterState, text: str) -> list[Hit]:
    _, rows = parse_table(text)
    hits: list[Hit] = []
    for r in rows:
        svc, ports = r.get("NAME", ""), r.get("PORT(S)", "")
        state.service_ports[svc] = ports
        if "/UDP" in ports and "/TCP" not in ports:
            hits.append(
                ("service_protocol_mismatch", f"service/{svc}", f"service {svc} exposes {ports}: UDP only", 0.6)
            )
    return hits


_UNITS = {
    "": 1,
    "m": 1e-3,
    "k": 1e3,
    "Ki": 1024,
    "M": 1e6,
    "Mi": 1024**2,
    "G": 1e9,
    "Gi": 1024**3,
    "T": 1e12,
    "Ti": 1024**4,
}


def quantity(s: str) -> float | None:
    """A Kubernetes quantity (`300Mi`, `1Gi`, `500m`, `11`) as a number."""
    m = re.fullmatch(r"\s*([\d.]+)\s*([A-Za-z]*)\s*", s or "")
    if not m or m.group(2) not in _UNITS:
        return None
    return float(m.group(1)) * _UNITS[m.group(2)]


def _read_quotas(state: ClusterState, text: str, ns: str) -> list[Hit]:
    """`kubectl get resourcequota`: a resource used up to its hard limit refuses the next create."""
    _, rows = parse_table(text)
    state.quota_read = True
    hits: list[Hit] = []
    for r in rows:
        for col in ("REQUEST", "LIMIT"):
            for key, used, hard in re.findall(r"([\w./-]+):\s*([\w.]+)/([\w.]+)", r.get(col, "")):
                state.quota_keys.add(key)
                u, h = quantity(used), quantity(hard)
                if u is not None and h is not None and h > 0 and u >= h:
                    for cause in quota_causes(f"requested: {key}=1"):
                        hits.append(
                            (cause, f"namespace/{ns}", f"quota {r.get('NAME', '')}: {key} {used}/{hard} used up", 0.7)
                        )
    if state.missing_claims and any(
        quota_causes(f"requested: {k}=1") == ["namespace_storage_quota_exceeded"] for k in state.quota_keys
    ):
        claims = ", ".join(sorted(state.missing_claims))
        hits.append(
            (
                "namespace_storage_quota_exceeded",
                f"namespace/{ns}",
                f"claim {claims} does not exist and the namespace has a storage quota: the claim was refused at admission",
                0.75,
            )
        )
    return hits


def _read_pvcs(state: ClusterState, text: str) -> None:
    _, rows = parse_table(text)
    for r in rows:
        state.claims[r.get("NAME", "")] = r.get("STATUS", "")


def _read_manifest(state: ClusterState, text: str, args: dict[str, Any]) -> None:
    app = str(args.get("app_name") or args.get("name") or "")
    if app:
        state.manifests.add(app)
        ports = {int(p) for p in re.findall(r"containerPort:\s*(\d+)", text)}
        if ports:
            state.container_ports.setdefault(app, set()).update(ports)


def _read_logs(state: ClusterState, workload: str, text: str, ns: str = "") -> list[Hit]:
    """Log lines the catalogue knows (a missing variable, an executable not found, an expired
    certificate, a host that does not resolve), the first line of each cause."""
    state.logs_read.add(workload)
    hits: list[Hit] = []
    seen: set[str] = set()
    for ln in text.splitlines()[-400:]:
        for h in catalogued(state, "log", "", ln.strip(), f"service/{workload}", ns):
            if h[0] not in seen:
                seen.add(h[0])
                hits.append(h)
    return hits


def _read_pod_rows(state: ClusterState, text: str, namespace: str) -> None:
    """`get pods` rows without their header line."""
    state.pod_lists += 1
    for m in _POD_ROW.finditer(text):
        name, ready, status, restarts = m.group(1), m.group(2), m.group(3), m.group(4)
        r, t = _ready(ready)
        state.pods[name] = Pod(name, state.workload(name), r, t, status, _int(restarts), "", namespace)


_POD_ROW = re.compile(r"^(\S+)[ \t]+(\d+/\d+)[ \t]+([A-Za-z:]+)[ \t]+(\d+)(?:[ \t]+\([^)]*\))?[ \t]+\S+", re.M)
"""A `get pods` row: NAME READY STATUS RESTARTS AGE."""

_DESCRIBE_KINDS = [
    ("node", (r"^Roles:", r"^Conditions:")),
    ("cronjob", (r"^Schedule:", r"^Concurrency Policy:")),
    ("job", (r"^(?:Parallelism|Completions|Completion Mode):",)),
    ("deployment", (r"^StrategyType:",)),
    ("daemonset", (r"^Desired Number of Nodes Scheduled:",)),
    ("statefulset", (r"^Update Strategy:", r"^Replicas:")),
    ("replicaset", (r"^Pods Status:", r"^Replicas:")),
    ("service", (r"^Type:\s+(?:ClusterIP|NodePort|LoadBalancer|ExternalName)", r"^(?:IP|IPs|Port|Selector):")),
    ("pvc", (r"^StorageClass:", r"^Access Modes:")),
    ("ingress", (r"^(?:Rules|Ingress Class|Default backend):",)),
    ("networkpolicy", (r"PodSelector:", r"Policy Types:")),
]


def describe_kind(text: str) -> str:
    """What a `kubectl describe` output describes (pod when none of the other kinds' fields are there)."""
    for kind, marks in _DESCRIBE_KINDS:
        if all(re.search(m, text, re.M) for m in marks):
            return kind
    return "pod" if "Containers:" in text else ""


def _block(text: str, title: str) -> list[str]:
    """The indented lines under a top-level `Title:` of a describe."""
    m = re.search(rf"^{title}:[^\n]*\n((?:[ \t]+[^\n]*\n?)*)", text, re.M)
    return [ln.strip() for ln in (m.group(1).splitlines() if m else []) if ln.strip()]


def _read_describe_other(state: ClusterState, text: str, ns: str, kind: str) -> list[Hit]:
    """`describe` of a node, workload controller, service, claim, ingress or network policy: its
    conditions, its events and the fields that say what is wrong with it."""
    name = re.match(r"Name:\s+(\S+)", text).group(1)  # type: ignore[union-attr]
    shown = re.search(r"^Namespace:\s+(\S+)", text, re.M)
    ns = shown.group(1) if shown and shown.group(1) != "<none>" else ns
    if kind == "job":
        state.jobs.add(name)
    target = (
        f"node/{name}"
        if kind == "node"
        else f"service/{name if kind in ('service', 'job', 'cronjob') else workload_of(name)}"
    )
    if kind == "networkpolicy":
        sel = re.search(r"PodSelector:\s+(?:app(?:\.kubernetes\.io/name)?=)?([\w.-]+)", text)
        target = f"service/{sel.group(1)}" if sel and "<none>" not in sel.group(0) else f"namespace/{ns}"
    hits: list[Hit] = []
    conditions = (
        _block(text, "Conditions")
        if kind != "networkpolicy"
        else [ln.strip() for ln in text.splitlines() if "isolated for" in ln]
    )
    for ln in conditions:
        hits += catalogued(state, "condition", "", ln, target, ns, node=name if kind == "node" else "")
        if kind == "node" and ln.startswith("Ready "):
            status = ln.split()[1] if len(ln.split()) > 1 else ""
            state.nodes[name] = "Ready" if status == "True" else "NotReady"
    hits += _service_fields(state, text, name) if kind == "service" else []
    if kind == "ingress" and re.search(r"^Ingress Class:\s+<none>", text, re.M):
        hits.append(("ingress_class_missing", target, "Ingress Class: <none>", 0.4))
    for reason, msg in _describe_events(text):
        hits += _classify(state, reason, msg, target, ns, node_selector=None)
    return hits


def _describe_events(text: str) -> Iterator[tuple[str, str]]:
    """(reason, message) of the Warning rows under a describe's `Events:`."""
    events = text[text.find("\nEvents:") :] if "\nEvents:" in text else ""
    for ln in events.splitlines():
        parts = ln.split(None, 1)
        if len(parts) < 2 or parts[0] != "Warning":
            continue
        rm = re.match(r"Warning\s+(\S+)\s+.*?\s{2,}(?:\S+(?:, \S+)*)\s{2,}(.*)$", ln.strip())
        yield (rm.group(1), rm.group(2)) if rm else (parts[1].split()[0], parts[1])


def _service_fields(state: ClusterState, text: str, name: str) -> list[Hit]:
    """A described service: its endpoints (none: the selector matches no ready pod) and ports."""
    m = re.search(r"^Endpoints:[ \t]*(.*)$", text, re.M)
    if not m:
        return []
    eps = m.group(1).strip() or "<none>"
    state.endpoints[name] = eps
    tport = re.search(r"^TargetPort:\s+(\S+)", text, re.M)
    if tport:
        state.service_ports.setdefault(name, tport.group(1))
    if eps == "<none>":
        return [
            (
                "service_selector_mismatch",
                f"service/{name}",
                f"service {name}: Endpoints: <none> (its selector matches no ready pod)",
                0.7,
            )
        ]
    return []


def _read_node_table(state: ClusterState, text: str) -> None:
    for r in parse_table(text)[1]:
        name, status = r.get("NAME", ""), r.get("STATUS", "")
        if name:
            state.nodes[name] = "Ready" if status.split(",")[0] == "Ready" else "NotReady"
            if "control-plane" in r.get("ROLES", "") or "master" in r.get("ROLES", ""):
                state.control_plane.add(name)


def _read_ingress_table(text: str) -> list[Hit]:
    return [
        ("ingress_class_missing", f"service/{r['NAME']}", f"ingress {r['NAME']}: CLASS <none>", 0.35)
        for r in parse_table(text)[1]
        if r.get("NAME") and r.get("CLASS") == "<none>"
    ]


def port_mismatches(state: ClusterState) -> list[Hit]:
    """Services whose endpoints carry a port none of their pods' containers listen on."""
    hits: list[Hit] = []
    for svc, eps in state.endpoints.items():
        cports = state.container_ports.get(svc)
        if not cports or eps in ("", "<none>"):
            continue
        eports = {int(p) for p in re.findall(r":(\d+)", eps)}
        if eports and not eports & cports:
            hits.append(
                (
                    "service_port_mapping_mismatch",
                    f"service/{svc}",
                    f"service {svc} sends traffic to port {', '.join(map(str, sorted(eports)))}; its containers listen on {', '.join(map(str, sorted(cports)))}",
                    0.85,
                )
            )
    return hits


# --- ranking and next reads -------------------------------------------------------------------


def adjust(state: ClusterState, cause: str, obj: str, weight: float) -> float:
    """A finding's weight against what the cluster shows now."""
    kind, _, name = obj.partition("/")
    if kind != "service":
        return weight
    healthy = state.workload_healthy(name)
    if cause in ("missing_service_account",):
        # Pods that exist were admitted: the service account was there when they were made.
        if any(p.workload == name for p in state.pods.values()):
            return weight * 0.3
        return weight
    if healthy and not cause.startswith(("service_", "pod_")):
        return weight * 0.4
    return weight


def _restarted(state: ClusterState, pod: str) -> bool:
    """Whether the pod's container was restarted (so `logs --previous` has a container to read):
    as the pod list says, and yes when no list showed it (describe says it keeps crashing)."""
    p = state.pods.get(pod)
    return p.restarts > 0 if p is not None else True


def follow_ups(state: ClusterState, namespace: str) -> Iterator[tuple[str, dict[str, Any], str]]:
    """(intent, arguments, why), most useful first."""
    for node, status in sorted(state.nodes.items()):
        if status != "Ready" and node not in state.control_plane:
            for agent in ("kubelet", "containerd"):
                if (node, agent) not in state.node_agents:
                    yield "node_service", {"node": node, "agent": agent}, f"node {node} is {status}"
    order = {"Pending": 0}
    sick = sorted(
        (p for p in state.pods.values() if not p.healthy),
        key=lambda p: (order.get(p.status, 1), p.ready - p.total, -p.restarts, p.name),
    )
    seen_workloads: set[str] = set()
    for p in sick:
        if p.workload in seen_workloads:
            continue
        seen_workloads.add(p.workload)
        if p.name not in state.described:
            yield (
                "describe_pod",
                {"name": p.name, "namespace": p.namespace or namespace},
                f"pod {p.name} is {p.status} ({p.ready}/{p.total} ready, {p.restarts} restarts)",
            )
    asked_logs: set[str] = set()
    for name, d in state.described.items():
        w = workload_of(name)
        if d.crashing and not d.oom and w not in state.logs_read:
            asked_logs.add(w)
            yield (
                "logs",
                # the terminated container's log once it was restarted; before, it is the current one
                {"service": w, "pod": name, "namespace": d.namespace or namespace, "previous": _restarted(state, name)},
                f"pod {name} keeps crashing",
            )
        if d.sandbox_runtime_error and d.node and (d.node, "containerd") not in state.node_agents:
            yield "node_service", {"node": d.node, "agent": "containerd"}, f"pod sandboxes fail on {d.node}"
        if d.pending and not d.node and not d.scheduling_events:
            cp = sorted(state.control_plane) or ["master"]
            if (cp[0], "kube-scheduler") not in state.node_agents:
                yield "node_service", {"node": cp[0], "agent": "kube-scheduler"}, f"pod {name} was never scheduled"
    for name, ns in sorted(state.restarting.items()):
        w = workload_of(name)
        if w not in state.logs_read and w not in asked_logs and name not in state.described:
            asked_logs.add(w)  # one log read per workload
            args = {"service": w, "pod": name, "namespace": ns or namespace, "previous": True}
            yield "logs", args, f"pod {name} keeps restarting"
    if (state.missing_claims or any(s == "Pending" for s in state.claims.values())) and not state.quota_read:
        yield "quota", {"namespace": namespace}, "a pod waits on a volume claim: is a storage quota refusing it"
    if state.pod_lists and state.strong < 0.7 and not sick:
        if not state.quota_read:
            yield "quota", {"namespace": namespace}, "every pod is healthy: is a quota refusing new objects"
        if not state.endpoints:
            yield "endpoints", {"namespace": namespace}, "every pod is healthy: check that each service has endpoints"
        if not state.service_ports:
            yield "services", {"namespace": namespace}, "every pod is healthy: check the services' ports and protocols"
        for svc, eps in sorted(state.endpoints.items()):
            sport = {int(p) for p in re.findall(r"(?:^|,)(\d+)", state.service_ports.get(svc, ""))}
            eports = {int(p) for p in re.findall(r":(\d+)", eps)}
            if eports and sport and not eports & sport and svc not in state.manifests and not svc.endswith("-external"):
                yield (
                    "manifest",
                    {"app": svc},
                    f"service {svc} maps port {', '.join(map(str, sorted(sport)))} to {', '.join(map(str, sorted(eports)))}",
                )
        if state.endpoints and state.service_ports:
            for node in sorted(n for n, s in state.nodes.items() if s == "Ready" and n not in state.control_plane):
                if (node, "kube-proxy") not in state.node_agents:
                    yield (
                        "node_service",
                        {"node": node, "agent": "kube-proxy"},
                        "services look right: check the node proxies",
                    )


# --- the engine's Check ----------------------------------------------------------------------


INTENTS: dict[str, tuple[str, ...]] = {
    "describe_pod": ("name", "namespace"),
    "node_service": ("node", "agent"),
    "logs": ("service", "pod", "namespace", "previous"),
    "manifest": ("app",),
    "endpoints": ("namespace",),
    "quota": ("namespace",),
    "services": ("namespace",),
}
"""The reads these checks ask for, with the arguments each carries (what a pack's `serves` may name)."""


class KubernetesChecks:
    """The Kubernetes checks for one session: what it has read of the cluster, the findings in each
    output, their weight against the cluster as it is now, and the reads that would go further."""

    def __init__(self) -> None:
        self.state = ClusterState()
        """What the session has read so far."""

    def read(self, tool: str, args: Mapping[str, Any], text: str, data: Any, namespace: str) -> list[Finding]:
        """From `data` when it is a shape the checks know (a client pack's pods, events, describe),
        else from the text."""
        a = dict(args)
        hits = read_data(self.state, tool, a, data, namespace) if isinstance(data, dict) else None
        if hits is None:
            if not text or not text.strip():
                return []
            hits = read_output(self.state, tool, a, text, namespace)
        for h in hits:
            self.state.strong = max(self.state.strong, h[3])
        return [Finding(*h) for h in hits]

    def weigh(self, finding: Finding) -> float:
        """A cause on a service whose pods are all healthy now counts for less: the event is most
        likely stale."""
        return adjust(self.state, finding.cause, finding.object, finding.weight)

    def follow_ups(self, namespace: str) -> Iterator[Read]:
        """The reads that would confirm or rule out a cause, most useful first."""
        for intent, args, why in follow_ups(self.state, namespace):
            yield Read.of(intent, args, why)
