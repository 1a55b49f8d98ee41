"""Read-only functions of the kubernetes pack: pods, describes, logs, events, rollout history, YAML, nodes.

Each takes the injected `Kube` first and returns plain data shaped for a compact rendering (or text
for logs and YAML). Nothing here changes the cluster.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import yaml

from skills.kube.client import Kube, NotAvailable, NotFound

REVISION = "deployment.kubernetes.io/revision"
"""The annotation holding a ReplicaSet's (and a Deployment's) rollout revision."""
CHANGE_CAUSE = "kubernetes.io/change-cause"
"""The annotation `kubectl rollout history` shows as CHANGE-CAUSE."""


def age(ts: Any) -> str:
    """kubectl-style age of a timestamp: 45s, 12m, 3h, 5d."""
    if ts is None:
        return "-"
    if isinstance(ts, str):
        ts = dt.datetime.fromisoformat(ts.replace("Z", "+00:00"))
    secs = int((dt.datetime.now(dt.UTC) - ts).total_seconds())
    secs = max(secs, 0)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if secs >= size:
            return f"{secs // size}{unit}"
    return f"{secs}s"


def pod_status(pod: Any) -> str:
    """The STATUS column of `kubectl get pods` (CrashLoopBackOff, OOMKilled, Terminating, ...)."""
    if pod.metadata.deletion_timestamp:
        return "Terminating"
    st = pod.status
    reason = st.reason or st.phase or "Unknown"
    for cs in st.init_container_statuses or []:
        if cs.state and cs.state.terminated and cs.state.terminated.exit_code != 0:
            return f"Init:{cs.state.terminated.reason or 'Error'}"
        if cs.state and cs.state.waiting and cs.state.waiting.reason and cs.state.waiting.reason != "PodInitializing":
            return f"Init:{cs.state.waiting.reason}"
    for cs in st.container_statuses or []:
        if cs.state and cs.state.waiting and cs.state.waiting.reason:
            reason = cs.state.waiting.reason
        elif cs.state and cs.state.terminated:
            reason = cs.state.terminated.reason or (
                f"Signal:{cs.state.terminated.signal}"
                if cs.state.terminated.signal
                else f"ExitCode:{cs.state.terminated.exit_code}"
            )
    return reason


def _pod_row(pod: Any) -> dict[str, Any]:
    cs = pod.status.container_statuses or []
    ready = sum(1 for c in cs if c.ready)
    total = len(pod.spec.containers or [])
    restarts = sum(c.restart_count or 0 for c in cs)
    row = {
        "name": pod.metadata.name,
        "namespace": pod.metadata.namespace,
        "ready": f"{ready}/{total}",
        "status": pod_status(pod),
        "restarts": restarts,
        "age": age(pod.metadata.creation_timestamp),
        "node": pod.spec.node_name or "<none>",
    }
    last = [
        c.last_state.terminated.reason
        for c in cs
        if c.last_state and c.last_state.terminated and c.last_state.terminated.reason
    ]
    if last:
        row["last_terminated"] = ",".join(sorted(set(last)))
    return row


def list_pods(
    kube: Kube,
    namespace: str | None = None,
    label_selector: str | None = None,
    node: str | None = None,
    problems_only: bool = False,
) -> dict[str, Any]:
    """Pods with ready count, status, restarts, age, node (all namespaces when namespace is '*' or absent)."""
    fs = f"spec.nodeName={node}" if node else None
    if namespace and namespace != "*":
        res = kube.core.list_namespaced_pod(namespace, label_selector=label_selector, field_selector=fs, limit=500)
    else:
        res = kube.core.list_pod_for_all_namespaces(label_selector=label_selector, field_selector=fs, limit=500)
    rows = [_pod_row(p) for p in res.items]
    if problems_only:
        rows = [
            r
            for r in rows
            if r["status"] not in ("Running", "Succeeded", "Completed")
            or r["ready"].split("/")[0] != r["ready"].split("/")[1]
        ]
    out: dict[str, Any] = {"pods": rows}
    if res.metadata and res.metadata._continue:
        out["more"] = "the list was cut at 500 pods; narrow it with a namespace or label selector"
    return out


def list_deployments(kube: Kube, namespace: str | None = None, label_selector: str | None = None) -> dict[str, Any]:
    """Deployments with desired/updated/ready/available replicas, images and revision."""
    if namespace and namespace != "*":
        res = kube.apps.list_namespaced_deployment(namespace, label_selector=label_selector)
    else:
        res = kube.apps.list_deployment_for_all_namespaces(label_selector=label_selector)
    rows = []
    for d in res.items:
        st = d.status
        rows.append(
            {
                "name": d.metadata.name,
                "namespace": d.metadata.namespace,
                "ready": f"{st.ready_replicas or 0}/{d.spec.replicas if d.spec.replicas is not None else 1}",
                "up_to_date": st.updated_replicas or 0,
                "available": st.available_replicas or 0,
                "revision": (d.metadata.annotations or {}).get(REVISION, "-"),
                "images": ",".join(c.image for c in d.spec.template.spec.containers),
                "age": age(d.metadata.creation_timestamp),
            }
        )
    return {"deployments": rows}


def list_services(kube: Kube, namespace: str | None = None) -> dict[str, Any]:
    """Services with type, cluster IP, ports and selector."""
    res = (
        kube.core.list_namespaced_service(namespace)
        if namespace and namespace != "*"
        else kube.core.list_service_for_all_namespaces()
    )
    rows = []
    for s in res.items:
        rows.append(
            {
                "name": s.metadata.name,
                "namespace": s.metadata.namespace,
                "type": s.spec.type,
                "cluster_ip": s.spec.cluster_ip,
                "ports": ",".join(
                    f"{p.port}/{p.protocol}" + (f"→{p.target_port}" if p.target_port is not None else "")
                    for p in s.spec.ports or []
                ),
                "selector": ",".join(f"{k}={v}" for k, v in (s.spec.selector or {}).items()) or "<none>",
            }
        )
    return {"services": rows}


def list_namespaces(kube: Kube) -> dict[str, Any]:
    """Namespaces with phase and age."""
    res = kube.core.list_namespace()
    return {
        "namespaces": [
            {"name": n.metadata.name, "status": n.status.phase, "age": age(n.metadata.creation_timestamp)}
            for n in res.items
        ]
    }


def _events_for(
    kube: Kube,
    namespace: str | None,
    name: str | None = None,
    kind: str | None = None,
    limit: int = 15,
    with_object: bool = True,
) -> list[dict[str, Any]]:
    parts = []
    if name:
        parts.append(f"involvedObject.name={name}")
    if kind:
        parts.append(f"involvedObject.kind={kind}")
    fs = ",".join(parts) or None
    if namespace and namespace != "*":
        res = kube.core.list_namespaced_event(namespace, field_selector=fs)
    else:
        res = kube.core.list_event_for_all_namespaces(field_selector=fs)

    def when(e: Any) -> dt.datetime:
        t = e.last_timestamp or e.event_time or e.first_timestamp or e.metadata.creation_timestamp
        return t or dt.datetime.min.replace(tzinfo=dt.UTC)

    items = sorted(res.items, key=when, reverse=True)[:limit]
    rows = []
    for e in items:
        row = {"last_seen": age(when(e)), "type": e.type, "reason": e.reason}
        if with_object:
            row["object"] = f"{(e.involved_object.kind or '').lower()}/{e.involved_object.name}"
        row["count"] = e.count or 1
        row["message"] = (e.message or "").strip()
        rows.append(row)
    return rows


def list_events(
    kube: Kube,
    namespace: str | None = None,
    name: str | None = None,
    kind: str | None = None,
    warnings_only: bool = False,
    limit: int = 30,
) -> dict[str, Any]:
    """Recent events, newest first, optionally for one object and only warnings."""
    events = _events_for(kube, namespace, name, kind, limit=limit * 3 if warnings_only else limit)
    if warnings_only:
        events = [e for e in events if e["type"] == "Warning"][:limit]
    return {"events": events}


def _state(s: Any) -> dict[str, Any] | None:
    if s is None:
        return None
    if s.running:
        return {"state": "Running", "started": str(s.running.started_at)}
    if s.waiting:
        return _drop_none(
            {"state": "Waiting", "reason": s.waiting.reason, "message": (s.waiting.message or "")[:300] or None}
        )
    if s.terminated:
        t = s.terminated
        return _drop_none(
            {
                "state": "Terminated",
                "reason": t.reason,
                "exit_code": t.exit_code,
                "finished": str(t.finished_at),
                "message": (t.message or "")[:300] or None,
            }
        )
    return None


def _probe(p: Any) -> str | None:
    if p is None:
        return None
    if p.http_get:
        how = f"http-get {p.http_get.path}:{p.http_get.port}"
    elif p.tcp_socket:
        how = f"tcp-socket :{p.tcp_socket.port}"
    elif p._exec:
        how = "exec " + " ".join(p._exec.command or [])
    else:
        how = "?"
    return f"{how} delay={p.initial_delay_seconds or 0}s timeout={p.timeout_seconds or 1}s period={p.period_seconds or 10}s failure={p.failure_threshold or 3}"


def _drop_none(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v not in (None, {}, [])}


def _workload_pods(kube: Kube, name: str, namespace: str, *, logs: bool = False) -> list[Any]:
    """Pods of a workload called `name`: those its controller owns (a StatefulSet, DaemonSet or Job
    by that name, or a Deployment's ReplicaSet "name-<hash>") or labelled app=name; failing those,
    names that start with "name-" (kubectl's prefix match), so that "checkout" does not pick a pod
    of checkout-api when checkout has pods of its own. Crashing first, then not ready, terminating
    last; for `logs`, pods whose containers have run before those still being created."""
    pods = kube.core.list_namespaced_pod(namespace).items

    def owned(p: Any) -> bool:
        ref = next((o for o in p.metadata.owner_references or [] if o.controller), None)
        by_owner = ref is not None and (
            ref.name == name or (ref.kind == "ReplicaSet" and ref.name.rsplit("-", 1)[0] == name)
        )
        return by_owner or (p.metadata.labels or {}).get("app") == name

    own = [p for p in pods if owned(p)] or [p for p in pods if p.metadata.name.startswith(name + "-")]
    return sorted(
        own,
        key=lambda p: (
            logs and not _started(p),
            p.metadata.deletion_timestamp is not None,
            not _crashing(p),
            _ready(p),
            p.metadata.name,
        ),
    )


def _ready(pod: Any) -> bool:
    return pod.status.phase == "Running" and all(c.ready for c in pod.status.container_statuses or [])


def _crashing(pod: Any) -> bool:
    """A container of the pod has restarted or waits in CrashLoopBackOff (it has logs to read)."""
    return any(
        c.restart_count or (c.state and c.state.waiting and c.state.waiting.reason == "CrashLoopBackOff")
        for c in pod.status.container_statuses or []
    )


def _started(pod: Any) -> bool:
    """A container of the pod has run (a pod still being created has no logs yet)."""
    return any(
        c.restart_count or (c.state and (c.state.running or c.state.terminated))
        for c in pod.status.container_statuses or []
    )


def read_pod(kube: Kube, name: str, namespace: str, *, pick: bool = False, logs: bool = False) -> tuple[Any, str]:
    """(the pod, a note). A workload's name where a pod's is wanted ("checkout-api", the deployment)
    either picks one of its pods (the first of `_workload_pods`), as `kubectl describe pods
    NAME_PREFIX` and `kubectl logs deploy/NAME` do, with a note naming the others (`pick`), or
    raises NotFound naming its pods (for a write, which must name its pod)."""
    from kubernetes.client.exceptions import ApiException

    try:
        return kube.core.read_namespaced_pod(name, namespace), ""
    except ApiException as exc:
        if exc.status != 404:
            raise
    own = _workload_pods(kube, name, namespace, logs=logs)
    if not own:
        raise NotFound(
            f'NotFound: no pod "{name}" in namespace {namespace}, and no pods of a workload by that name there; list_pods shows what runs'
        )
    shown = ", ".join(f"{p.metadata.name} ({pod_status(p)})" for p in own[:8]) + (
        f" and {len(own) - 8} more" if len(own) > 8 else ""
    )
    if not pick:
        raise NotFound(
            f'NotFound: no pod "{name}" in namespace {namespace}; "{name}" names a workload whose pods are {shown}. Call again with one of these pod names.'
        )
    which = "the first crashing" if _crashing(own[0]) else "the first" if _ready(own[0]) else "the first not ready"
    return own[
        0
    ], f'no pod "{name}"; this is {own[0].metadata.name}, {which} of the workload\'s {len(own)} pod(s): {shown}'


def describe_pod(kube: Kube, name: str, namespace: str = "default") -> dict[str, Any]:
    """A pod's phase, node, conditions, each container's state/last state/restarts/limits/probes, and its events."""
    pod, note = read_pod(kube, name, namespace, pick=True)
    name = pod.metadata.name
    statuses = {c.name: c for c in pod.status.container_statuses or []}
    containers = []
    for c in pod.spec.containers:
        cs = statuses.get(c.name)
        res = c.resources
        containers.append(
            _drop_none(
                {
                    "name": c.name,
                    "image": c.image,
                    "ready": cs.ready if cs else False,
                    "restarts": cs.restart_count if cs else 0,
                    "current": _state(cs.state) if cs else None,
                    "last": _state(cs.last_state) if cs else None,
                    "limits": dict(res.limits) if res and res.limits else None,
                    "requests": dict(res.requests) if res and res.requests else None,
                    "liveness": _probe(c.liveness_probe),
                    "readiness": _probe(c.readiness_probe),
                }
            )
        )
    owner = next((f"{o.kind}/{o.name}" for o in pod.metadata.owner_references or [] if o.controller), None)
    return _drop_none(
        {
            "note": note or None,
            "name": pod.metadata.name,
            "namespace": pod.metadata.namespace,
            "status": pod_status(pod),
            "phase": pod.status.phase,
            "node": pod.spec.node_name,
            "pod_ip": pod.status.pod_ip,
            "started": str(pod.status.start_time) if pod.status.start_time else None,
            "controlled_by": owner,
            "labels": pod.metadata.labels,
            "conditions": {c.type: c.status for c in pod.status.conditions or []},
            "message": pod.status.message,
            "containers": containers,
            "events": _events_for(kube, namespace, name, "Pod", with_object=False),
        }
    )


def _owned_replicasets(kube: Kube, dep: Any) -> list[Any]:
    sel = dep.spec.selector.match_labels or {}
    label_selector = ",".join(f"{k}={v}" for k, v in sel.items()) or None
    rss = kube.apps.list_namespaced_replica_set(dep.metadata.namespace, label_selector=label_selector).items
    return [
        rs for rs in rss if any(o.uid == dep.metadata.uid and o.controller for o in rs.metadata.owner_references or [])
    ]


def _rev(obj: Any) -> int:
    try:
        return int((obj.metadata.annotations or {}).get(REVISION, "0"))
    except ValueError:
        return 0


def describe_deployment(kube: Kube, name: str, namespace: str = "default") -> dict[str, Any]:
    """A deployment's replicas, strategy, images, conditions, its ReplicaSets by revision, and events."""
    d = kube.apps.read_namespaced_deployment(name, namespace)
    st = d.status
    rss = sorted(_owned_replicasets(kube, d), key=_rev, reverse=True)
    strategy = d.spec.strategy.type if d.spec.strategy else None
    return _drop_none(
        {
            "name": d.metadata.name,
            "namespace": d.metadata.namespace,
            "revision": (d.metadata.annotations or {}).get(REVISION),
            "paused": bool(d.spec.paused) or None,
            "replicas": {
                "desired": d.spec.replicas,
                "updated": st.updated_replicas or 0,
                "ready": st.ready_replicas or 0,
                "available": st.available_replicas or 0,
                "unavailable": st.unavailable_replicas or 0,
            },
            "strategy": strategy,
            "selector": d.spec.selector.match_labels,
            "containers": [
                {
                    "name": c.name,
                    "image": c.image,
                    "limits": dict(c.resources.limits) if c.resources and c.resources.limits else None,
                }
                for c in d.spec.template.spec.containers
            ],
            "conditions": [
                _drop_none({"type": c.type, "status": c.status, "reason": c.reason, "message": c.message})
                for c in st.conditions or []
            ],
            "replicasets": [
                {
                    "name": rs.metadata.name,
                    "revision": _rev(rs),
                    "replicas": rs.status.replicas or 0,
                    "ready": rs.status.ready_replicas or 0,
                    "images": ",".join(c.image for c in rs.spec.template.spec.containers),
                    "age": age(rs.metadata.creation_timestamp),
                }
                for rs in rss
            ],
            "events": _events_for(kube, namespace, name, "Deployment", with_object=False),
        }
    )


def describe_node(kube: Kube, name: str) -> dict[str, Any]:
    """A node's readiness, conditions, taints, cordon state, capacity, and the pods on it that are unhealthy."""
    n = kube.core.read_node(name)
    pods = kube.core.list_pod_for_all_namespaces(field_selector=f"spec.nodeName={name}").items
    rows = [_pod_row(p) for p in pods]
    bad = [
        f"{r['namespace']}/{r['name']} {r['status']}"
        for r in rows
        if r["status"] not in ("Running", "Succeeded", "Completed")
    ]
    info = n.status.node_info
    return _drop_none(
        {
            "name": n.metadata.name,
            "unschedulable": bool(n.spec.unschedulable),
            "taints": [f"{t.key}={t.value or ''}:{t.effect}" for t in n.spec.taints or []],
            "conditions": [
                _drop_none(
                    {
                        "type": c.type,
                        "status": c.status,
                        "reason": c.reason,
                        "message": c.message,
                        "since": age(c.last_transition_time),
                    }
                )
                for c in n.status.conditions or []
            ],
            "addresses": {a.type: a.address for a in n.status.addresses or []},
            "capacity": dict(n.status.capacity or {}),
            "allocatable": dict(n.status.allocatable or {}),
            "kubelet": info.kubelet_version if info else None,
            "pods": len(rows),
            "unhealthy_pods": bad,
            "events": _events_for(kube, None, name, "Node", with_object=False),
        }
    )


def describe_service(kube: Kube, name: str, namespace: str = "default") -> dict[str, Any]:
    """A service's type, ports, selector, ready and not-ready endpoints, and whether the selector matches pods."""
    s = kube.core.read_namespaced_service(name, namespace)
    ready: list[str] = []
    not_ready: list[str] = []
    try:
        ep = kube.core.read_namespaced_endpoints(name, namespace)
        for sub in ep.subsets or []:
            ports = ",".join(str(p.port) for p in sub.ports or [])
            ready += [
                f"{a.ip}:{ports}" + (f" ({a.target_ref.name})" if a.target_ref else "") for a in sub.addresses or []
            ]
            not_ready += [
                f"{a.ip}:{ports}" + (f" ({a.target_ref.name})" if a.target_ref else "")
                for a in sub.not_ready_addresses or []
            ]
    except Exception as exc:
        if getattr(exc, "status", None) != 404:
            raise
    matched = None
    if s.spec.selector:
        sel = ",".join(f"{k}={v}" for k, v in s.spec.selector.items())
        matched = len(kube.core.list_namespaced_pod(namespace, label_selector=sel).items)
    return _drop_none(
        {
            "name": s.metadata.name,
            "namespace": s.metadata.namespace,
            "type": s.spec.type,
            "cluster_ip": s.spec.cluster_ip,
            "ports": [
                _drop_none(
                    {
                        "name": p.name,
                        "port": p.port,
                        "target_port": str(p.target_port) if p.target_port is not None else None,
                        "protocol": p.protocol,
                        "node_port": p.node_port,
                    }
                )
                for p in s.spec.ports or []
            ],
            "selector": s.spec.selector,
            "pods_matching_selector": matched,
            "endpoints_ready": ready or ["<none>"],
            "endpoints_not_ready": not_ready,
            "events": _events_for(kube, namespace, name, "Service", with_object=False),
        }
    )


def pod_logs(
    kube: Kube,
    name: str,
    namespace: str = "default",
    container: str | None = None,
    previous: bool = False,
    tail_lines: int = 200,
    since_seconds: int | None = None,
) -> str:
    """A pod's container log (the previous, crashed container's with previous=true), last lines only."""
    note = ""
    if container is None:
        pod, picked = read_pod(kube, name, namespace, pick=True, logs=True)
        if picked:
            name, note = pod.metadata.name, f" ({picked})"
        names = [c.name for c in pod.spec.containers]
        container = names[0]
        if len(names) > 1:
            note += f" (pod has containers {', '.join(names)}; showing {container})"
    text = kube.core.read_namespaced_pod_log(
        name,
        namespace,
        container=container,
        previous=previous,
        tail_lines=tail_lines,
        since_seconds=since_seconds,
        _preload_content=False,
    ).data.decode("utf-8", "replace")
    which = "previous (terminated) container" if previous else "current container"
    lines = text.rstrip("\n").splitlines()
    head = f"logs of pod/{name} container {container}, {which}, last {len(lines)} line(s){note}:"
    return head + ("\n" + "\n".join(lines) if lines else "\n(empty)")


def rollout_history(kube: Kube, name: str, namespace: str = "default") -> dict[str, Any]:
    """A deployment's revisions (oldest first): ReplicaSet, change cause, images, replicas; current marked."""
    d = kube.apps.read_namespaced_deployment(name, namespace)
    current = _rev(d)
    rows = []
    for rs in sorted(_owned_replicasets(kube, d), key=_rev):
        rows.append(
            {
                "revision": _rev(rs),
                "replicaset": rs.metadata.name,
                "current": _rev(rs) == current,
                "change_cause": (rs.metadata.annotations or {}).get(CHANGE_CAUSE, "<none>"),
                "images": ",".join(c.image for c in rs.spec.template.spec.containers),
                "replicas": f"{rs.status.ready_replicas or 0}/{rs.status.replicas or 0}",
                "age": age(rs.metadata.creation_timestamp),
            }
        )
    return {"deployment": f"{namespace}/{name}", "current_revision": current, "revisions": rows}


def resolve_kind(kube: Kube, kind: str) -> Any:
    """The dynamic resource for a kind, plural, or short name; NotAvailable when the server lacks it."""
    from kubernetes.dynamic.exceptions import ResourceNotFoundError

    want = kind.strip()
    low = want.lower()
    try:
        for query in ({"kind": want}, {"name": low}, {"short_names": [low]}, {"singular_name": low}):
            found = [
                r
                for r in kube.dynamic.resources.search(**query)
                if not getattr(r, "subresource", None) and "/" not in (r.name or "")
            ]
            if not found and "kind" in query:
                found = [
                    r
                    for r in kube.dynamic.resources.search()
                    if getattr(r, "kind", "").lower() == low and "/" not in (r.name or "")
                ]
            if found:
                # prefer the core and apps groups when a kind exists in several (events, ingresses)
                found.sort(key=lambda r: (r.group not in ("", "apps", "batch"), r.group, r.api_version))
                return found[0]
    except ResourceNotFoundError:
        pass
    raise NotAvailable(f"kind {kind!r} is not available on this cluster version (API server {kube.version_text})")


def get_resource_yaml(kube: Kube, kind: str, name: str, namespace: str | None = "default") -> str:
    """The live object as YAML (managedFields and last-applied annotations removed)."""
    res = resolve_kind(kube, kind)
    obj = res.get(name=name, namespace=namespace if res.namespaced else None).to_dict()
    meta = obj.get("metadata", {})
    meta.pop("managedFields", None)
    (meta.get("annotations") or {}).pop("kubectl.kubernetes.io/last-applied-configuration", None)
    return yaml.safe_dump(obj, sort_keys=False, width=120)


def node_conditions(kube: Kube) -> dict[str, Any]:
    """Every node: Ready, cordoned, pressure conditions that are on, taints, kubelet version."""
    rows = []
    for n in kube.core.list_node().items:
        conds = {c.type: c for c in n.status.conditions or []}
        ready = conds.get("Ready")
        problems = [f"{t}={c.status}" for t, c in conds.items() if t != "Ready" and c.status != "False"]
        rows.append(
            {
                "name": n.metadata.name,
                "ready": ready.status if ready else "Unknown",
                "ready_reason": ready.reason if ready and ready.status != "True" else None,
                "cordoned": bool(n.spec.unschedulable),
                "problems": ",".join(problems) or "none",
                "taints": ",".join(f"{t.key}:{t.effect}" for t in n.spec.taints or []) or "none",
                "kubelet": n.status.node_info.kubelet_version if n.status.node_info else None,
                "age": age(n.metadata.creation_timestamp),
            }
        )
    return {"nodes": [_drop_none(r) for r in rows]}


def list_replicasets(kube: Kube, namespace: str = "default", deployment: str | None = None) -> dict[str, Any]:
    """ReplicaSets (optionally of one deployment) with revision, desired/ready and images."""
    if deployment:
        d = kube.apps.read_namespaced_deployment(deployment, namespace)
        items = _owned_replicasets(kube, d)
    else:
        items = kube.apps.list_namespaced_replica_set(namespace).items
    return {
        "replicasets": [
            {
                "name": rs.metadata.name,
                "revision": _rev(rs),
                "desired": rs.spec.replicas or 0,
                "ready": rs.status.ready_replicas or 0,
                "images": ",".join(c.image for c in rs.spec.template.spec.containers),
                "age": age(rs.metadata.creation_timestamp),
            }
            for rs in sorted(items, key=_rev)
        ]
    }


def cluster_version(kube: Kube) -> dict[str, Any]:
    """The API server version and the context in use."""
    major, minor = kube.version
    return {"context": kube.context, "server": kube.api.configuration.host, "version": f"{major}.{minor}"}
