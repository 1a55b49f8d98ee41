"""Write and dangerous functions of the kubernetes pack: restart, scale, cordon, delete, undo, drain.

Each runs only after the policy and the operator approved it; each returns what it changed and how
to undo it. `rollout_undo` works the way kubectl does on any server version: it patches the
deployment's pod template back to the chosen earlier ReplicaSet's template.
"""

from __future__ import annotations

import copy
import datetime as dt
import time
from typing import Any

from skills.kube import fix
from skills.kube.client import Kube, NotAvailable
from skills.kube.read import REVISION, _owned_replicasets, read_pod

# annotations kubectl does not copy from a ReplicaSet back to its deployment on rollback
_SKIP_ANNOTATIONS = {
    "kubectl.kubernetes.io/last-applied-configuration",
    REVISION,
    "deployment.kubernetes.io/revision-history",
    "deployment.kubernetes.io/desired-replicas",
    "deployment.kubernetes.io/max-replicas",
    "deprecated.deployment.rollback.to",
}
HASH_LABEL = "pod-template-hash"
"""The label the deployment controller adds to each ReplicaSet's template."""


class RollbackError(Exception):
    """The rollback cannot be done (no history, unknown revision, paused deployment)."""


def _preview(
    kube: Kube,
    kind: str,
    name: str,
    namespace: str | None,
    body: Any,
    *,
    method: str = "patch",
    content_type: str = fix.STRATEGIC,
) -> dict[str, Any]:
    """The dry-run preview of one change (see skills.kube.fix.change)."""
    res = fix._resource(kube, kind)
    return fix.change(kube, res, name, namespace, body, dry_run=True, method=method, content_type=content_type)


def rollout_restart(
    kube: Kube, name: str, namespace: str = "default", kind: str = "deployment", *, dry_run: bool = False
) -> dict[str, Any]:
    """Restart every pod of a deployment/statefulset/daemonset by stamping the template, as kubectl does."""
    now = dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()
    body = {"spec": {"template": {"metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": now}}}}}
    if dry_run:
        return _preview(kube, kind, name, namespace, body)
    fn = {
        "deployment": kube.apps.patch_namespaced_deployment,
        "statefulset": kube.apps.patch_namespaced_stateful_set,
        "daemonset": kube.apps.patch_namespaced_daemon_set,
    }[kind]
    fn(name, namespace, body)
    return {
        "restarted": f"{kind}/{name}",
        "namespace": namespace,
        "restartedAt": now,
        "note": "pods are replaced one by one per the rollout strategy",
    }


def scale(
    kube: Kube, name: str, replicas: int, namespace: str = "default", kind: str = "deployment", *, dry_run: bool = False
) -> dict[str, Any]:
    """Set the replica count of a deployment or statefulset; returns the previous count."""
    if dry_run:
        return _preview(kube, kind, name, namespace, {"spec": {"replicas": replicas}})
    if kind == "deployment":
        # The Scale subresource leaves replicas out when it is 0.
        before = kube.apps.read_namespaced_deployment_scale(name, namespace).spec.replicas or 0
        kube.apps.patch_namespaced_deployment_scale(name, namespace, {"spec": {"replicas": replicas}})
    else:
        before = kube.apps.read_namespaced_stateful_set_scale(name, namespace).spec.replicas or 0
        kube.apps.patch_namespaced_stateful_set_scale(name, namespace, {"spec": {"replicas": replicas}})
    return {
        "scaled": f"{kind}/{name}",
        "namespace": namespace,
        "from": before,
        "to": replicas,
        "previous": {"replicas": before},
        "undo": f"scale back to {before} (scale_deployment {name} kind={kind} replicas={before})",
    }


def _set_unschedulable(kube: Kube, node: str, value: bool, dry_run: bool = False) -> dict[str, Any]:
    if dry_run:
        return _preview(kube, "Node", node, None, {"spec": {"unschedulable": value}})
    before = bool(kube.core.read_node(node).spec.unschedulable)
    kube.core.patch_node(node, {"spec": {"unschedulable": value}})
    return {
        "node": node,
        "unschedulable_before": before,
        "unschedulable_now": value,
        "previous": {"unschedulable": before},
        "undo": f"{'cordon' if before else 'uncordon'}_node {node}"
        if before != value
        else "nothing to undo (it already was so)",
    }


def cordon(kube: Kube, node: str, *, dry_run: bool = False) -> dict[str, Any]:
    """Mark a node unschedulable (running pods stay)."""
    return _set_unschedulable(kube, node, True, dry_run)


def uncordon(kube: Kube, node: str, *, dry_run: bool = False) -> dict[str, Any]:
    """Mark a node schedulable again."""
    return _set_unschedulable(kube, node, False, dry_run)


def delete_pod(
    kube: Kube, name: str, namespace: str = "default", grace_period_seconds: int | None = None, *, dry_run: bool = False
) -> dict[str, Any]:
    """Delete one pod; its controller (if any) creates a replacement."""
    pod, _ = read_pod(kube, name, namespace)
    if dry_run:
        return _preview(kube, "Pod", name, namespace, None, method="delete")
    owner = next((f"{o.kind}/{o.name}" for o in pod.metadata.owner_references or [] if o.controller), None)
    kube.core.delete_namespaced_pod(name, namespace, grace_period_seconds=grace_period_seconds)
    return {
        "deleted": f"pod/{name}",
        "namespace": namespace,
        "controlled_by": owner or "<none>",
        "replaced": "yes, by its controller" if owner else "no: it had no controller",
    }


def _strip_hash(template: dict[str, Any]) -> dict[str, Any]:
    t = copy.deepcopy(template)
    labels = (t.get("metadata") or {}).get("labels") or {}
    labels.pop(HASH_LABEL, None)
    return t


def plan_rollback(
    deployment: dict[str, Any], replicasets: list[dict[str, Any]], to_revision: int | None = None
) -> dict[str, Any]:
    """What kubectl rollout undo would do: the target revision, its ReplicaSet and the JSON patch.

    `deployment` and `replicasets` are API objects as JSON data (camelCase). Raises RollbackError.
    """
    if (deployment.get("spec") or {}).get("paused"):
        raise RollbackError("cannot roll back a paused deployment: resume it first (kubectl rollout resume)")
    history: dict[int, dict[str, Any]] = {}
    for rs in replicasets:
        try:
            rev = int(((rs.get("metadata") or {}).get("annotations") or {}).get(REVISION, "0"))
        except ValueError:
            continue
        if rev > 0:
            history[rev] = rs
    if not history:
        raise RollbackError("no rollout history found for this deployment")
    revisions = sorted(history)
    if not to_revision:
        if len(revisions) < 2:
            raise RollbackError(f"no earlier revision to roll back to (only revision {revisions[-1]} exists)")
        to_revision = revisions[-2]
    if to_revision not in history:
        raise RollbackError(
            f"unable to find revision {to_revision} (known revisions: {', '.join(map(str, revisions))})"
        )
    target = history[to_revision]
    template = _strip_hash(target["spec"]["template"])
    current_template = _strip_hash(deployment["spec"]["template"])
    meta = deployment.get("metadata") or {}
    current_rev = (meta.get("annotations") or {}).get(REVISION)
    plan: dict[str, Any] = {
        "deployment": meta.get("name"),
        "namespace": meta.get("namespace"),
        "from_revision": int(current_rev) if current_rev and current_rev.isdigit() else None,
        "to_revision": to_revision,
        "replicaset": (target.get("metadata") or {}).get("name"),
        "images": [c.get("image") for c in (template.get("spec") or {}).get("containers", [])],
    }
    if template == current_template:
        plan["skip"] = f"the deployment's template already matches revision {to_revision}"
        plan["patch"] = []
        return plan
    annotations = dict(meta.get("annotations") or {})
    for k, v in ((target.get("metadata") or {}).get("annotations") or {}).items():
        if k not in _SKIP_ANNOTATIONS:
            annotations[k] = v
    plan["patch"] = [
        {"op": "replace", "path": "/spec/template", "value": template},
        {"op": "replace", "path": "/metadata/annotations", "value": annotations},
    ]
    return plan


def rollout_undo(
    kube: Kube, name: str, namespace: str = "default", to_revision: int | None = None, *, dry_run: bool = False
) -> dict[str, Any]:
    """Roll a deployment back to the previous (or a given) revision by restoring that ReplicaSet's template."""
    dep = kube.apps.read_namespaced_deployment(name, namespace)
    rss = _owned_replicasets(kube, dep)
    plan = plan_rollback(kube.serialize(dep), [kube.serialize(rs) for rs in rss], to_revision)
    if plan.get("skip"):
        return (
            {"rolled_back": False, "reason": plan["skip"], "deployment": f"{namespace}/{name}"}
            if not dry_run
            else {"diff": "", "objects": [f"Deployment/{namespace}/{name}"], "note": plan["skip"], "unchanged": True}
        )
    if dry_run:
        return _preview(kube, "Deployment", name, namespace, plan["patch"], content_type=fix.JSON_PATCH)
    kube.apps.patch_namespaced_deployment(name, namespace, plan["patch"])
    return {
        "rolled_back": True,
        "deployment": f"{namespace}/{name}",
        "from_revision": plan["from_revision"],
        "to_revision": plan["to_revision"],
        "replicaset": plan["replicaset"],
        "images": plan["images"],
        "note": "the controller creates a new revision with the restored template and scales the old ReplicaSet up",
        "previous": {"revision": plan["from_revision"]},
        "undo": f"rollout_undo {name} to_revision={plan['from_revision']}",
    }


def delete_resource(
    kube: Kube, kind: str, name: str, namespace: str | None = "default", *, dry_run: bool = False
) -> dict[str, Any]:
    """Delete any object by kind and name (its dependents are garbage-collected)."""
    from skills.kube.read import resolve_kind

    res = resolve_kind(kube, kind)
    if dry_run:
        return fix.change(kube, res, name, namespace, None, dry_run=True, method="delete")
    res.delete(name=name, namespace=namespace if res.namespaced else None)
    return {"deleted": f"{res.kind}/{name}", "namespace": namespace if res.namespaced else None}


def _evict(kube: Kube, name: str, namespace: str) -> None:
    body: dict[str, Any] = {"metadata": {"name": name, "namespace": namespace}}
    # policy/v1 Eviction arrived in 1.22; older servers (the sandbox is 1.20) only take v1beta1
    body["apiVersion"] = "policy/v1" if kube.version >= (1, 22) else "policy/v1beta1"
    body["kind"] = "Eviction"
    kube.core.create_namespaced_pod_eviction(name, namespace, body)


def drain(
    kube: Kube,
    node: str,
    ignore_daemonsets: bool = True,
    delete_emptydir_data: bool = False,
    force: bool = False,
    wait_seconds: int = 30,
    *,
    dry_run: bool = False,
) -> dict[str, Any]:
    """Cordon a node and evict its pods (respecting PodDisruptionBudgets), as kubectl drain does."""
    if dry_run:
        got = _set_unschedulable(kube, node, True, dry_run=True)
        pods = _pods_on(kube, node)
        got["note"] = f"then evicts up to {len(pods)} pods on {node} (DaemonSet pods stay)"
        return got

    _set_unschedulable(kube, node, True)
    evict: list[Any] = []
    skipped: list[str] = []
    refused: list[str] = []
    for p in _pods_on(kube, node):
        ref = f"{p.metadata.namespace}/{p.metadata.name}"
        verdict, why = _drain_verdict(p, ignore_daemonsets, delete_emptydir_data, force)
        if verdict == "skip":
            skipped.append(f"{ref} ({why})")
        elif verdict == "refuse":
            refused.append(f"{ref} {why}")
        else:
            evict.append(p)
    if refused:
        return {
            "node": node,
            "cordoned": True,
            "drained": False,
            "refused": refused,
            "note": "the node stays cordoned; nothing was evicted",
        }
    evicted, blocked = _evict_each(kube, evict)
    return {
        "node": node,
        "cordoned": True,
        "evicted": evicted,
        "still_terminating": _wait_until_gone(kube, node, evicted, wait_seconds),
        "blocked": blocked,
        "skipped": skipped,
        "undo": f"uncordon {node} (evicted pods are recreated elsewhere by their controllers)",
    }


def _pods_on(kube: Kube, node: str) -> list[Any]:
    return kube.core.list_pod_for_all_namespaces(field_selector=f"spec.nodeName={node}").items


def _drain_verdict(p: Any, ignore_daemonsets: bool, delete_emptydir_data: bool, force: bool) -> tuple[str, str]:
    """What kubectl drain does with one pod: ("evict", ""), ("skip", why) for mirror and ignored
    DaemonSet pods, or ("refuse", why) for a pod whose loss the caller has not accepted (one refusal
    stops the whole drain)."""
    if "kubernetes.io/config.mirror" in (p.metadata.annotations or {}):
        return "skip", "mirror pod"
    owner = next((o for o in p.metadata.owner_references or [] if o.controller), None)
    if owner is not None and owner.kind == "DaemonSet":
        if ignore_daemonsets:
            return "skip", "DaemonSet"
        return "refuse", "is managed by a DaemonSet (set ignore_daemonsets)"
    if p.status.phase in ("Succeeded", "Failed"):
        return "evict", ""
    if owner is None and not force:
        return "refuse", "has no controller and would not come back (set force)"
    if any(v.empty_dir is not None for v in p.spec.volumes or []) and not delete_emptydir_data:
        return "refuse", "uses emptyDir data that would be lost (set delete_emptydir_data)"
    return "evict", ""


def _evict_each(kube: Kube, pods: list[Any]) -> tuple[list[str], list[str]]:
    """Evict the pods one by one: (evicted or already gone, blocked by a PodDisruptionBudget)."""
    from kubernetes.client.exceptions import ApiException

    evicted: list[str] = []
    blocked: list[str] = []
    for p in pods:
        ref = f"{p.metadata.namespace}/{p.metadata.name}"
        try:
            _evict(kube, p.metadata.name, p.metadata.namespace)
            evicted.append(ref)
        except ApiException as exc:
            if exc.status == 429:
                blocked.append(f"{ref} (a PodDisruptionBudget blocks it)")
            elif exc.status == 404:
                # a 404 naming the Eviction resource is the API's, not the pod's
                if "Eviction" in str(exc.body) or "the server could not find the requested resource" in str(exc.body):
                    raise NotAvailable(
                        f"pod eviction is not available on this cluster version (API server {kube.version_text})"
                    ) from None
                evicted.append(f"{ref} (already gone)")
            else:
                raise
    return evicted, blocked


def _wait_until_gone(kube: Kube, node: str, evicted: list[str], wait_seconds: int) -> list[str]:
    """Wait up to wait_seconds for the evicted pods to leave the node; the ones still terminating."""
    deadline = time.monotonic() + max(0, wait_seconds)
    remaining = evicted
    while remaining and time.monotonic() < deadline:
        still = {f"{p.metadata.namespace}/{p.metadata.name}" for p in _pods_on(kube, node)}
        remaining = [r for r in evicted if r.split(" ")[0] in still]
        if remaining:
            time.sleep(1)
    return remaining
