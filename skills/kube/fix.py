"""The kubernetes pack's fixes: resources, env, image, patch, ConfigMap keys, TLS secrets, apply, pause/resume, HPA, jobs.

Every function takes `dry_run`: with it the change goes to the API server with dryRun=All and the
answer is a preview (a unified diff of the live object against the server's dry-run result);
without it the change is made and the answer carries `previous` (the values it replaced) and
`undo` (the call that puts them back), which the audit row records. The same code builds the
request for both, so what the approver reads is what runs.
"""

from __future__ import annotations

import base64
import copy
import difflib
import hashlib
import json
from pathlib import Path
from typing import Any

import yaml

from skills.kube.client import Kube
from skills.kube.schema import STRICT, Doc

STRATEGIC = "application/strategic-merge-patch+json"
MERGE = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
FIELD_MANAGER = "lantern"
"""The field manager of every server-side apply Lantern makes."""
_WORKLOADS = {"deployment": "Deployment", "statefulset": "StatefulSet", "daemonset": "DaemonSet"}
_DROP_META = ("managedFields", "resourceVersion", "generation", "uid", "selfLink", "creationTimestamp")
# kinds applied first, so what a manifest's later documents refer to exists when they arrive
# (Helm's install order, with CRDs early so their custom resources can follow)
_APPLY_ORDER = [
    "Namespace",
    "CustomResourceDefinition",
    "NetworkPolicy",
    "ResourceQuota",
    "LimitRange",
    "PodSecurityPolicy",
    "PodDisruptionBudget",
    "ServiceAccount",
    "Secret",
    "ConfigMap",
    "StorageClass",
    "PersistentVolume",
    "PersistentVolumeClaim",
    "ClusterRole",
    "ClusterRoleBinding",
    "Role",
    "RoleBinding",
    "Service",
    "DaemonSet",
    "Pod",
    "ReplicationController",
    "ReplicaSet",
    "Deployment",
    "HorizontalPodAutoscaler",
    "StatefulSet",
    "Job",
    "CronJob",
    "IngressClass",
    "Ingress",
    "APIService",
]
_APPLY_LAST = ["MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"]
"""Webhooks last: one applied early could refuse the manifest's own objects."""


class FixError(ValueError):
    """A fix's input is wrong (a YAML that does not parse, an unknown container); the message says how."""

    plain = True
    """Shown as it is (skills.kube.client.explain): the message is already the whole story."""


# -- the diff --------------------------------------------------------------------------------------
def clean(obj: dict[str, Any] | None) -> dict[str, Any]:
    """An object as people compare it: no managedFields, status, resourceVersion or last-applied, secret values hidden."""
    if not obj:
        return {}
    out = copy.deepcopy(obj)
    out.pop("status", None)
    meta = out.get("metadata") or {}
    for k in _DROP_META:
        meta.pop(k, None)
    (meta.get("annotations") or {}).pop("kubectl.kubernetes.io/last-applied-configuration", None)
    if out.get("kind") == "Secret":
        # a diff is shown and stored: a secret's values appear only as their size and digest
        for field in ("data", "stringData"):
            for k, v in (out.get(field) or {}).items():
                raw = v.encode() if isinstance(v, str) else b""
                out[field][k] = f"<{len(raw)} bytes, sha256:{hashlib.sha256(raw).hexdigest()[:12]}>"
    return out


def diff_objects(before: dict[str, Any] | None, after: dict[str, Any] | None, label: str) -> str:
    """A unified diff of two API objects as YAML (cleaned); '' when they are the same."""
    a = yaml.safe_dump(clean(before), sort_keys=True, width=200).splitlines() if before else []
    b = yaml.safe_dump(clean(after), sort_keys=True, width=200).splitlines() if after else []
    lines = difflib.unified_diff(a, b, f"live/{label}", f"dry-run/{label}", n=3, lineterm="")
    return "\n".join(lines)


def _ref(obj: dict[str, Any]) -> str:
    meta = obj.get("metadata") or {}
    ns = meta.get("namespace")
    return f"{obj.get('kind')}/{ns + '/' if ns else ''}{meta.get('name')}"


# -- reading and sending ---------------------------------------------------------------------------
def _resource(kube: Kube, kind: str, api_version: str | None = None) -> Any:
    from skills.kube.read import resolve_kind

    if api_version:
        from kubernetes.dynamic.exceptions import ResourceNotFoundError

        try:
            return kube.dynamic.resources.get(api_version=api_version, kind=kind)
        except ResourceNotFoundError:
            from skills.kube.client import NotAvailable

            raise NotAvailable(
                f"{api_version} {kind} is not available on this cluster (API server {kube.version_text})"
            ) from None
    return resolve_kind(kube, kind)


def _live(res: Any, name: str, namespace: str | None) -> dict[str, Any] | None:
    """The object as JSON data, or None when it does not exist."""
    from kubernetes.dynamic.exceptions import NotFoundError

    try:
        return res.get(name=name, namespace=namespace if res.namespaced else None).to_dict()
    except NotFoundError:
        return None


def _send(
    res: Any, method: str, name: str, namespace: str | None, body: Any, dry_run: bool, content_type: str = STRATEGIC
) -> dict[str, Any]:
    """One request (patch, create, replace, apply, delete), dry-run or real; the server's answer as data."""
    ns = namespace if res.namespaced else None
    extra: dict[str, Any] = {"dry_run": "All"} if dry_run else {}
    if method == "patch":
        out = res.patch(body=body, name=name, namespace=ns, content_type=content_type, **extra)
    elif method == "create":
        out = res.create(body=body, namespace=ns, **extra)
    elif method == "replace":
        out = res.replace(body=body, name=name, namespace=ns, **extra)
    elif method == "apply":
        # Strict: servers from 1.25 refuse unknown and duplicate fields instead of dropping them (older ones ignore it)
        out = res.server_side_apply(
            body=body,
            name=name,
            namespace=ns,
            field_manager=FIELD_MANAGER,
            force_conflicts=True,
            query_params=list(STRICT),
            **extra,
        )
    elif method == "delete":
        out = res.delete(name=name, namespace=ns, **extra)
        return {}
    else:  # pragma: no cover - the callers name the method
        raise ValueError(method)
    return out.to_dict()


def change(
    kube: Kube,
    res: Any,
    name: str,
    namespace: str | None,
    body: Any,
    *,
    dry_run: bool,
    method: str = "patch",
    content_type: str = STRATEGIC,
    live: dict[str, Any] | None = None,
    previous: Any = None,
    undo: str = "",
    summary: str = "",
) -> dict[str, Any]:
    """Send one change: with dry_run the preview (diff, objects), else what changed, `previous` and `undo`."""
    if live is None and method != "create":
        live = _live(res, name, namespace)
    label = f"{res.kind}/{(namespace + '/') if namespace and res.namespaced else ''}{name}"
    after = _send(res, method, name, namespace, body, dry_run, content_type)
    if dry_run:
        diff = diff_objects(live, after if method != "delete" else None, label)
        note = "" if diff else "no change: the live object already matches"
        return {"diff": diff, "objects": [label], "note": note, "unchanged": not diff}
    return {"changed": label, "summary": summary, "previous": previous, "undo": undo}


# -- workloads -------------------------------------------------------------------------------------
def _workload(kube: Kube, kind: str, name: str, namespace: str) -> tuple[Any, dict[str, Any]]:
    k = _WORKLOADS.get(kind.lower())
    if k is None:
        raise FixError(f"unknown workload kind {kind!r} (one of: {', '.join(_WORKLOADS)})")
    res = _resource(kube, k, "apps/v1")
    live = _live(res, name, namespace)
    if live is None:
        raise FixError(f"{kind} {namespace}/{name} not found")
    return res, live


def _container(live: dict[str, Any], container: str | None) -> dict[str, Any]:
    containers = live["spec"]["template"]["spec"].get("containers") or []
    if container is None:
        return containers[0]
    for c in containers:
        if c.get("name") == container:
            return c
    raise FixError(
        f"no container {container!r} in {live['metadata']['name']} (containers: {', '.join(c['name'] for c in containers)})"
    )


def _template_patch(container: str, fields: dict[str, Any]) -> dict[str, Any]:
    return {"spec": {"template": {"spec": {"containers": [{"name": container, **fields}]}}}}


def set_resources(
    kube: Kube,
    name: str,
    namespace: str = "default",
    kind: str = "deployment",
    container: str | None = None,
    requests_cpu: str | None = None,
    requests_memory: str | None = None,
    limits_cpu: str | None = None,
    limits_memory: str | None = None,
    *,
    dry_run: bool = False,
) -> dict[str, Any]:
    """Set a container's CPU/memory requests and limits (kubectl set resources); previous values returned."""
    res, live = _workload(kube, kind, name, namespace)
    c = _container(live, container)
    want = {
        "requests": {"cpu": requests_cpu, "memory": requests_memory},
        "limits": {"cpu": limits_cpu, "memory": limits_memory},
    }
    want = {tier: {k: v for k, v in vals.items() if v is not None} for tier, vals in want.items()}
    want = {tier: vals for tier, vals in want.items() if vals}
    if not want:
        raise FixError("give at least one of requests_cpu, requests_memory, limits_cpu, limits_memory")
    old = c.get("resources") or {}
    previous = {tier: {k: (old.get(tier) or {}).get(k) for k in vals} for tier, vals in want.items()}
    undo_args = ", ".join(f"{tier}_{k}={v or 'unset'}" for tier, vals in previous.items() for k, v in vals.items())
    return change(
        kube,
        res,
        name,
        namespace,
        _template_patch(c["name"], {"resources": want}),
        dry_run=dry_run,
        live=live,
        previous={"container": c["name"], **previous},
        undo=f"set_resources {kind}/{name} container={c['name']} {undo_args}",
        summary=f"resources of {c['name']} set to {json.dumps(want)}",
    )


def set_env(
    kube: Kube,
    name: str,
    env_name: str,
    namespace: str = "default",
    kind: str = "deployment",
    container: str | None = None,
    value: str | None = None,
    from_configmap: str | None = None,
    from_secret: str | None = None,
    key: str | None = None,
    unset: bool = False,
    *,
    dry_run: bool = False,
) -> dict[str, Any]:
    """Set (a literal, or a ConfigMap/Secret key) or unset one environment variable of a container (kubectl set env)."""
    res, live = _workload(kube, kind, name, namespace)
    c = _container(live, container)
    sources = [x for x in (value, from_configmap, from_secret) if x is not None]
    if unset:
        entry: dict[str, Any] = {"name": env_name, "$patch": "delete"}
    elif len(sources) != 1:
        raise FixError("give exactly one of value, from_configmap or from_secret (or unset=true)")
    elif value is not None:
        entry = {"name": env_name, "value": str(value)}
    else:
        ref = "configMapKeyRef" if from_configmap else "secretKeyRef"
        entry = {"name": env_name, "valueFrom": {ref: {"name": from_configmap or from_secret, "key": key or env_name}}}
    old = next((e for e in c.get("env") or [] if e.get("name") == env_name), None)
    if old is None:
        undo = f"set_env {kind}/{name} container={c['name']} env_name={env_name} unset=true"
    elif "value" in old:
        undo = f"set_env {kind}/{name} container={c['name']} env_name={env_name} value={old['value']!r}"
    else:
        undo = f"set_env {kind}/{name} container={c['name']} env_name={env_name} with valueFrom {json.dumps(old.get('valueFrom'))}"
    what = "unset" if unset else "set"
    return change(
        kube,
        res,
        name,
        namespace,
        _template_patch(c["name"], {"env": [entry]}),
        dry_run=dry_run,
        live=live,
        previous={"container": c["name"], "env": old},
        undo=undo,
        summary=f"{env_name} {what} in {c['name']}",
    )


def set_image(
    kube: Kube,
    name: str,
    image: str,
    namespace: str = "default",
    kind: str = "deployment",
    container: str | None = None,
    *,
    dry_run: bool = False,
) -> dict[str, Any]:
    """Set a container's image (kubectl set image); the previous image is returned."""
    res, live = _workload(kube, kind, name, namespace)
    c = _container(live, container)
    return change(
        kube,
        res,
        name,
        namespace,
        _template_patch(c["name"], {"image": image}),
        dry_run=dry_run,
        live=live,
        previous={"container": c["name"], "image": c.get("image")},
        undo=f"set_image {kind}/{name} container={c['name']} image={c.get('image')}",
        summary=f"{c['name']} image {c.get('image')} → {image}",
    )


def _pause(kube: Kube, name: str, namespace: str, paused: bool, dry_run: bool) -> dict[str, Any]:
    res, live = _workload(kube, "deployment", name, namespace)
    before = bool((live.get("spec") or {}).get("paused"))
    other = "rollout_resume" if paused else "rollout_pause"
    return change(
        kube,
        res,
        name,
        namespace,
        {"spec": {"paused": paused}},
        dry_run=dry_run,
        live=live,
        previous={"paused": before},
        undo=f"{other} deployment/{name}" if before != paused else "nothing to undo (it already was so)",
        summary=f"paused={paused}",
    )


def rollout_pause(kube: Kube, name: str, namespace: str = "default", *, dry_run: bool = False) -> dict[str, Any]:
    """Pause a deployment's rollout (kubectl rollout pause): template changes wait until resumed."""
    return _pause(kube, name, namespace, True, dry_run)


def rollout_resume(kube: Kube, name: str, namespace: str = "default", *, dry_run: bool = False) -> dict[str, Any]:
    """Resume a paused deployment's rollout (kubectl rollout resume)."""
    return _pause(kube, name, namespace, False, dry_run)


def set_hpa(
    kube: Kube,
    name: str,
    namespace: str = "default",
    min_replicas: int | None = None,
    max_replicas: int | None = None,
    *,
    dry_run: bool = False,
) -> dict[str, Any]:
    """Set a HorizontalPodAutoscaler's minReplicas/maxReplicas; the previous bounds are returned."""
    if min_replicas is None and max_replicas is None:
        raise FixError("give min_replicas, max_replicas or both")
    res = _resource(kube, "HorizontalPodAutoscaler", "autoscaling/v1")
    live = _live(res, name, namespace)
    if live is None:
        raise FixError(f"HorizontalPodAutoscaler {namespace}/{name} not found")
    spec = live.get("spec") or {}
    want = {k: v for k, v in (("minReplicas", min_replicas), ("maxReplicas", max_replicas)) if v is not None}
    previous = {k: spec.get(k) for k in ("minReplicas", "maxReplicas")}
    return change(
        kube,
        res,
        name,
        namespace,
        {"spec": want},
        dry_run=dry_run,
        live=live,
        content_type=MERGE,
        previous=previous,
        undo=f"set_hpa {name} min_replicas={previous['minReplicas']} max_replicas={previous['maxReplicas']}",
        summary=f"hpa bounds {want}",
    )


# -- objects ---------------------------------------------------------------------------------------
def edit_configmap_key(
    kube: Kube,
    name: str,
    key: str,
    namespace: str = "default",
    value: str | None = None,
    remove: bool = False,
    *,
    dry_run: bool = False,
) -> dict[str, Any]:
    """Set or remove one key of a ConfigMap; the previous value is returned."""
    if (value is None) == (not remove):
        raise FixError("give value, or remove=true")
    res = _resource(kube, "ConfigMap", "v1")
    live = _live(res, name, namespace)
    if live is None:
        raise FixError(f"ConfigMap {namespace}/{name} not found")
    old = (live.get("data") or {}).get(key)
    undo = f"edit_configmap_key {name} key={key} " + ("remove=true" if old is None else f"value={old!r}")
    return change(
        kube,
        res,
        name,
        namespace,
        {"data": {key: None if remove else str(value)}},
        dry_run=dry_run,
        live=live,
        content_type=MERGE,
        previous={"key": key, "value": old},
        undo=undo + "; pods read a ConfigMap at start, so restart the workload after",
        summary=f"{name}[{key}] {'removed' if remove else 'set'}",
    )


def _pem(text_or_path: str, what: str) -> str:
    text = text_or_path.strip()
    if not text.startswith("-----BEGIN"):
        try:
            text = Path(text).expanduser().read_text().strip()
        except OSError as exc:
            raise FixError(f"{what}: neither PEM text nor a readable file ({exc.strerror})") from None
    return text + "\n"


def _check_pair(cert_pem: str, key_pem: str) -> str:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    try:
        cert = x509.load_pem_x509_certificate(cert_pem.encode())
    except ValueError:
        raise FixError("cert: not a PEM certificate") from None
    try:
        key = serialization.load_pem_private_key(key_pem.encode(), password=None)
    except (ValueError, TypeError):
        raise FixError("key: not an unencrypted PEM private key") from None
    pub = serialization.PublicFormat.SubjectPublicKeyInfo
    if cert.public_key().public_bytes(serialization.Encoding.PEM, pub) != key.public_key().public_bytes(
        serialization.Encoding.PEM, pub
    ):
        raise FixError("the key does not belong to the certificate")
    return cert.not_valid_after_utc.isoformat()


def set_tls_secret(
    kube: Kube, name: str, cert: str, key: str, namespace: str = "default", *, dry_run: bool = False
) -> dict[str, Any]:
    """Create or replace a kubernetes.io/tls Secret from a certificate and key (PEM text or file paths)."""
    cert_pem, key_pem = _pem(cert, "cert"), _pem(key, "key")
    not_after = _check_pair(cert_pem, key_pem)
    res = _resource(kube, "Secret", "v1")
    live = _live(res, name, namespace)
    b64 = {k: base64.b64encode(v.encode()).decode() for k, v in (("tls.crt", cert_pem), ("tls.key", key_pem))}
    body = {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "kubernetes.io/tls",
        "metadata": {"name": name, "namespace": namespace},
        "data": b64,
    }
    if live is not None:
        body["metadata"] = {
            **{k: v for k, v in live["metadata"].items() if k in ("labels", "annotations")},
            **body["metadata"],
        }
        body["metadata"]["resourceVersion"] = live["metadata"]["resourceVersion"]
    old_crt = (live or {}).get("data", {}).get("tls.crt")
    # the old private key is never recorded; its certificate's digest says which pair it was
    previous = {
        "existed": live is not None,
        "tls.crt sha256": hashlib.sha256(old_crt.encode()).hexdigest()[:16] if old_crt else None,
    }
    return change(
        kube,
        res,
        name,
        namespace,
        body,
        dry_run=dry_run,
        method="replace" if live else "create",
        live=live,
        previous=previous,
        undo="re-create the secret from the previous certificate and key (not stored by Lantern)"
        if live
        else f"delete_resource secret {name}",
        summary=f"secret {name}: certificate valid until {not_after}",
    )


def patch_resource(
    kube: Kube,
    kind: str,
    name: str,
    patch: str,
    namespace: str = "default",
    patch_type: str = "strategic",
    *,
    dry_run: bool = False,
) -> dict[str, Any]:
    """Patch any object with a strategic merge, merge or JSON patch (kubectl patch); the previous object is returned."""
    types = {"strategic": STRATEGIC, "merge": MERGE, "json": JSON_PATCH}
    if patch_type not in types:
        raise FixError(f"unknown patch_type {patch_type!r} (one of: {', '.join(types)})")
    try:
        body = yaml.safe_load(patch)
    except yaml.YAMLError as exc:
        raise FixError(f"patch does not parse as JSON or YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(body, list if patch_type == "json" else dict):
        raise FixError("a json patch is a list of operations" if patch_type == "json" else "a merge patch is a mapping")
    res = _resource(kube, kind)
    live = _live(res, name, namespace)
    if live is None:
        raise FixError(f"{res.kind} {name} not found")
    return change(
        kube,
        res,
        name,
        namespace,
        body,
        dry_run=dry_run,
        live=live,
        content_type=types[patch_type],
        previous=clean(live),
        undo=f"re-apply the previous {res.kind} (recorded in this call's output) with apply_manifest",
        summary=f"{res.kind}/{name} patched",
    )


def _documents(manifest: str) -> list[Doc]:
    """The paste's documents (each knows its position and line), in the order they are applied."""
    from skills.kube.schema import compose, yaml_error

    try:
        docs = compose(manifest)
    except yaml.YAMLError as exc:
        line, message = yaml_error(exc, manifest)
        raise FixError(f"the manifest does not parse: line {line}: {message}") from None
    docs = [d for d in docs if d.data is not None]
    if not docs:
        raise FixError("the manifest is empty")
    for d in docs:
        data = d.data
        if (
            not isinstance(data, dict)
            or not data.get("kind")
            or not data.get("apiVersion")
            or not (data.get("metadata") or {}).get("name")
        ):
            raise FixError(f"document {d.index} (line {d.line}) lacks apiVersion, kind or metadata.name")
    return sorted(docs, key=lambda d: apply_rank(d.data["kind"]))


def apply_rank(kind: str) -> int:
    """Where a kind goes in a manifest's apply order: what others refer to first, custom resources and webhooks last."""
    if kind in _APPLY_LAST:
        return len(_APPLY_ORDER) + 1 + _APPLY_LAST.index(kind)
    return _RANK.get(kind, len(_APPLY_ORDER))


_RANK = {k: i for i, k in enumerate(_APPLY_ORDER)}


def _crd_kinds(docs: list[Doc]) -> dict[tuple[str, str], int]:
    """(group, kind) → document number, for the CustomResourceDefinitions a manifest brings."""
    out: dict[tuple[str, str], int] = {}
    for d in docs:
        if d.data["kind"] == "CustomResourceDefinition":
            spec = d.data.get("spec") or {}
            out[(str(spec.get("group") or ""), str((spec.get("names") or {}).get("kind") or ""))] = d.index
    return out


def _wait_established(kube: Kube, name: str, timeout: float = 30.0) -> None:
    """Wait until a CRD just applied is served, then forget the cached discovery so its kind is found."""
    import time

    res = _resource(kube, "CustomResourceDefinition", "apiextensions.k8s.io/v1")
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        got = _live(res, name, None) or {}
        if any(
            c.get("type") == "Established" and c.get("status") == "True"
            for c in (got.get("status") or {}).get("conditions") or []
        ):
            break
        time.sleep(0.5)
    kube.dynamic.resources.invalidate_cache()


def _as_written(doc: Doc, ns: str | None, why: str) -> tuple[str, str]:
    """(diff, object) of a document that cannot be dry-run yet (what it needs is created by an earlier one)."""
    body = copy.deepcopy(doc.data)
    if ns:
        body["metadata"]["namespace"] = ns
    label = _ref(body)
    lines = yaml.safe_dump(clean(body), sort_keys=True, width=200).splitlines()
    diff = "\n".join(difflib.unified_diff([], lines, f"live/{label}", f"as-written/{label} ({why})", n=3, lineterm=""))
    return diff, label


def _failed(doc: Doc, total: int, exc: BaseException, applied: list[str], rest: list[Doc], dry_run: bool) -> FixError:
    """One line: which document failed (number, kind/name, line), the API server's words at their lines, what did not run and what did."""
    from kubernetes.client.exceptions import ApiException

    from skills.kube.client import explain
    from skills.kube.schema import _message, server_problems

    why = explain(exc)
    if isinstance(exc, ApiException):
        found = [p for p in server_problems(doc, _message(exc)) if p.path]
        if found:
            why = "; ".join(f"line {p.line}: {p.text}" for p in found)
    msg = f"document {doc.index} of {total} ({doc.ref}, line {doc.line}) failed: {why}"
    if rest:
        msg += f"; {'not checked' if dry_run else 'not applied'}: {', '.join(f'document {d.index} ({d.ref})' for d in rest)}"
    if applied:
        msg += f"; applied before it: {', '.join(applied)}"
    return FixError(msg)


def apply_manifest(kube: Kube, manifest: str, namespace: str = "default", *, dry_run: bool = False) -> dict[str, Any]:
    """Server-side apply a (multi-document) manifest as field manager `lantern`, in dependency order; the first failure
    stops the rest and says which document (number, kind/name, line) and why.

    A dry run cannot see what an earlier document would create: a document in a namespace the manifest creates, or of
    a kind its CRD defines, is shown as written (and checked when applied)."""
    docs = _documents(manifest)
    total = max(d.index for d in docs)
    crds = _crd_kinds(docs)
    diffs: list[str] = []
    objects: list[str] = []
    previous: list[dict[str, Any]] = []
    undo: list[str] = []
    applied: list[str] = []
    new_ns: dict[str, int] = {}
    new_kinds: set[tuple[str, str]] = set()
    notes: list[str] = []
    for pos, doc in enumerate(docs):
        d = doc.data
        group = d["apiVersion"].rpartition("/")[0]
        try:
            try:
                res = _resource(kube, d["kind"], d["apiVersion"])
            except Exception:
                if (group, d["kind"]) not in crds:
                    raise
                if not dry_run:
                    raise
                # its CRD comes in this manifest: nothing serves the kind until it is applied
                diff, label = _as_written(
                    doc, d["metadata"].get("namespace") or namespace, f"its CRD is document {crds[(group, d['kind'])]}"
                )
                diffs.append(diff)
                objects.append(label)
                notes.append(f"{label} is shown as written: its kind is defined by document {crds[(group, d['kind'])]}")
                continue
            ns = (d["metadata"].get("namespace") or namespace) if res.namespaced else None
            if ns:
                d["metadata"]["namespace"] = ns
            if dry_run and ns in new_ns:
                diff, label = _as_written(doc, ns, f"namespace {ns} is document {new_ns[ns]}")
                diffs.append(diff)
                objects.append(label)
                notes.append(f"{label} is shown as written: its namespace is created by document {new_ns[ns]}")
                continue
            name = d["metadata"]["name"]
            live = _live(res, name, ns)
            got = change(kube, res, name, ns, d, dry_run=dry_run, method="apply", live=live)
        except Exception as exc:  # noqa: BLE001 - any refusal stops the rest, said in one line
            raise _failed(doc, total, exc, applied, docs[pos + 1 :], dry_run) from None
        if d["kind"] == "Namespace" and live is None:
            new_ns[name] = doc.index
        objects.extend(got.get("objects") or [got.get("changed")])
        if dry_run:
            diffs.append(got["diff"])
            continue
        applied.append(got["changed"])
        previous.append({"object": got["changed"], "before": clean(live) if live else None})
        undo.append(
            f"delete {got['changed']}" if live is None else f"re-apply the previous {got['changed']} (in this output)"
        )
        if d["kind"] == "CustomResourceDefinition":
            spec = d.get("spec") or {}
            new_kinds.add((str(spec.get("group")), str((spec.get("names") or {}).get("kind"))))
            _wait_established(kube, name)
    if dry_run:
        diff = "\n".join(x for x in diffs if x)
        note = "; ".join(notes) or ("" if diff else "no change: the live objects already match")
        return {"diff": diff, "objects": objects, "note": note, "unchanged": not diff and not notes}
    return {"applied": applied, "field_manager": FIELD_MANAGER, "previous": previous, "undo": "; ".join(undo)}


def create_job_from_cronjob(
    kube: Kube, cronjob: str, namespace: str = "default", job_name: str | None = None, *, dry_run: bool = False
) -> dict[str, Any]:
    """Start a Job now from a CronJob's template (kubectl create job --from=cronjob/NAME)."""
    import datetime as dt

    cj_res = None
    for version in ("batch/v1", "batch/v1beta1"):
        try:
            cj_res = _resource(kube, "CronJob", version)
            break
        except Exception:  # noqa: BLE001 - v1 arrived in 1.21; older servers only serve v1beta1
            continue
    if cj_res is None:
        raise FixError(f"CronJob is not available on this cluster (API server {kube.version_text})")
    cj = _live(cj_res, cronjob, namespace)
    if cj is None:
        raise FixError(f"CronJob {namespace}/{cronjob} not found")
    job_name = job_name or f"{cronjob}-manual-{dt.datetime.now(dt.UTC):%H%M%S}"[:63]
    tmpl = cj["spec"]["jobTemplate"]
    meta = {
        "name": job_name,
        "namespace": namespace,
        "labels": (tmpl.get("metadata") or {}).get("labels") or {},
        "annotations": {"cronjob.kubernetes.io/instantiate": "manual"},
        "ownerReferences": [
            {
                "apiVersion": cj["apiVersion"],
                "kind": "CronJob",
                "name": cronjob,
                "uid": cj["metadata"]["uid"],
                "controller": True,
            }
        ],
    }
    body = {"apiVersion": "batch/v1", "kind": "Job", "metadata": meta, "spec": tmpl["spec"]}
    res = _resource(kube, "Job", "batch/v1")
    return change(
        kube,
        res,
        job_name,
        namespace,
        body,
        dry_run=dry_run,
        method="create",
        previous=None,
        undo=f"delete_resource job {job_name}",
        summary=f"job {job_name} created from cronjob {cronjob}",
    )
