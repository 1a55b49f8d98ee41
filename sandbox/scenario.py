"""Scenarios: data files that put a live incident into the sandbox, and the rules the node agent follows.

A scenario file (sandbox/scenarios/NAME.yaml) names a namespace, the manifests to create,
rollouts to perform afterwards (so deploy history is real), per-container behaviour rules and log
lines, an optional queue model, and the `symptom` text the console shows as the opening alert.
Rules match on the live pod spec and cluster objects (image, memory limit, env, Services, Secrets,
ConfigMaps), so a remediation that changes the cluster changes what the agent does.
"""

from __future__ import annotations

import base64
import copy
import datetime as dt
import fnmatch
import json
import time
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlparse

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from sandbox import pki

SCENARIO_DIR = Path(__file__).resolve().parent / "scenarios"
SCENARIO_LABEL = "lantern.dev/scenario"
ENDPOINTS_CONFIGMAP = "lantern-sandbox-endpoints"

Behaviour = Literal["healthy", "crash", "oom", "image-pull", "unready"]


class ScenarioError(ValueError):
    """A scenario file is broken or cannot be applied; the message names the file and field."""


class Match(BaseModel):
    """Conditions on a container, its pod and the live cluster; all given ones must hold."""

    model_config = ConfigDict(extra="forbid")
    pod_labels: dict[str, str] | None = None
    container: str | None = None
    image: str | None = None
    memory_limit_below: str | None = None
    env: dict[str, str] | None = None
    env_service_missing: str | None = None
    secret_cert_expired: str | None = None
    configmap_contains: dict[str, str] | None = None
    configmap_lacks: dict[str, str] | None = None


class Rule(BaseModel):
    """What a matching container does, and what it logs."""

    model_config = ConfigDict(extra="forbid")
    match: Match = Field(default_factory=Match)
    behaviour: Behaviour = "healthy"
    exit_code: int | None = None
    run_seconds: float = 3.0
    live: bool = False
    memory_mb: float | None = None
    probe_message: str | None = None
    logs: list[str] = Field(default_factory=list)
    periodic_logs: list[str] = Field(default_factory=list)
    periodic_seconds: float = 15.0


class Rollout(BaseModel):
    """A change applied after the manifests are up, creating a new Deployment revision."""

    model_config = ConfigDict(extra="forbid")
    deployment: str
    patch: dict[str, Any]
    change_cause: str | None = None
    wait_ready: bool = True


class QueueModel(BaseModel):
    """A message queue whose depth follows the producer and consumer Deployments' ready pods."""

    model_config = ConfigDict(extra="forbid")
    name: str
    vhost: str = "/"
    initial_depth: int = 0
    producer: str
    publish_rate_per_pod: float
    consumer: str
    consume_rate_per_pod: float


class TlsEndpoint(BaseModel):
    """A loopback TLS port that serves whatever certificate a Secret holds right now (a host:port to check)."""

    model_config = ConfigDict(extra="forbid")
    secret: str
    server_name: str


class FixStep(BaseModel):
    """One call of a scenario's reference fix: a pack action and its arguments."""

    model_config = ConfigDict(extra="forbid")
    tool: str
    arguments: dict[str, Any] = Field(default_factory=dict)
    renew_cert: dict[str, Any] | None = None
    """Issue a fresh certificate from the sandbox's CA ({common_name, sans}) and pass it as cert/key."""


class Healthy(BaseModel):
    """The scenario's own health condition, read from the cluster."""

    model_config = ConfigDict(extra="forbid")
    deployments: list[str] = Field(default_factory=list)
    """Each has replicas > 0, all updated, ready and available, and the rollout observed."""
    endpoints: list[str] = Field(default_factory=list)
    """Each Service has at least one ready endpoint address."""
    service_ports: list[str] = Field(default_factory=list)
    """Each Service's ports reach a port its ready pods' containers declare (endpoints alone do not say a connection is accepted)."""


class Drill(BaseModel):
    """How a drill judges this scenario: the cause an answer must name, the reference fix, health."""

    model_config = ConfigDict(extra="forbid")
    cause: list[str]
    """Words of which an answer that names the cause contains at least one (case-folded)."""
    investigate: list[FixStep] = Field(default_factory=list)
    """The reads of the reference play: they show the objects the fix acts on (the plan critic wants them seen)."""
    reference: list[FixStep]
    healthy: Healthy
    heal_seconds: float = 60.0
    """How long the cluster gets to become healthy after the fix."""


class Scenario(BaseModel):
    """One incident as data."""

    model_config = ConfigDict(extra="forbid")
    name: str
    title: str
    symptom: str
    namespace: str
    nodes: int = Field(default=2, ge=1, le=3)
    backoff_base: float = 5.0
    backoff_cap: float = 80.0
    manifests: list[dict[str, Any]]
    rollouts: list[Rollout] = Field(default_factory=list)
    rules: list[Rule] = Field(default_factory=list)
    queue: QueueModel | None = None
    tls_endpoint: TlsEndpoint | None = None
    drill: Drill | None = None
    source: str = ""

    @field_validator("manifests")
    @classmethod
    def _kinds(cls, v: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for i, m in enumerate(v):
            if (
                not isinstance(m, dict)
                or "kind" not in m
                or "apiVersion" not in m
                or not (m.get("metadata") or {}).get("name")
            ):
                raise ValueError(f"manifest #{i} needs apiVersion, kind and metadata.name")
        return v


def scenario_path(name: str) -> Path:
    """The file of a named scenario, or a path given directly."""
    p = Path(name)
    if p.suffix in (".yaml", ".yml") and p.is_file():
        return p
    return SCENARIO_DIR / f"{name}.yaml"


def list_scenarios() -> list[Scenario]:
    """Every bundled scenario (broken files raise with their name)."""
    return [load_scenario(p) for p in sorted(SCENARIO_DIR.glob("*.yaml"))]


def load_scenario(name: str | Path) -> Scenario:
    """Parse and validate one scenario file."""
    path = scenario_path(str(name))
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in SCENARIO_DIR.glob("*.yaml")))
        raise ScenarioError(f"no scenario {name!r} (known: {known})")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ScenarioError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise ScenarioError(f"{path}: expected a mapping at the top")
    try:
        sc = Scenario.model_validate(raw)
    except ValidationError as exc:
        errs = "; ".join(f"{'.'.join(str(x) for x in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise ScenarioError(f"{path}: {errs}") from exc
    sc.source = str(path)
    return sc


# ---------------------------------------------------------------- rule evaluation

_UNITS = {
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
    "K": 10**3,
    "k": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
}


def parse_quantity(q: str | int | float | None) -> float | None:
    """A Kubernetes memory quantity in bytes (None for none)."""
    if q is None:
        return None
    s = str(q).strip()
    for suf in sorted(_UNITS, key=len, reverse=True):
        if s.endswith(suf):
            return float(s[: -len(suf)]) * _UNITS[suf]
    if s.endswith("m"):
        return float(s[:-1]) / 1000
    return float(s)


class World:
    """A per-tick view of the objects rules look at, in one namespace (plain dicts from the API)."""

    def __init__(self, services: list[dict], secrets: list[dict], configmaps: list[dict]) -> None:
        self.services = {(s["metadata"]["namespace"], s["metadata"]["name"]) for s in services}
        self.secrets = {(s["metadata"]["namespace"], s["metadata"]["name"]): s for s in secrets}
        self.configmaps = {(c["metadata"]["namespace"], c["metadata"]["name"]): c for c in configmaps}

    def env_value(self, ns: str, container: dict, var: str) -> str | None:
        """The value of an env var as the container would see it (literal or from a ConfigMap/Secret)."""
        for e in container.get("env") or []:
            if e.get("name") != var:
                continue
            if "value" in e:
                return e.get("value") or ""
            ref = e.get("valueFrom") or {}
            if ref.get("configMapKeyRef"):
                r = ref["configMapKeyRef"]
                cm = self.configmaps.get((ns, r.get("name")))
                return ((cm or {}).get("data") or {}).get(r.get("key"))
            if ref.get("secretKeyRef"):
                r = ref["secretKeyRef"]
                sec = self.secrets.get((ns, r.get("name")))
                raw = ((sec or {}).get("data") or {}).get(r.get("key"))
                return base64.b64decode(raw).decode(errors="replace") if raw else None
        for src in container.get("envFrom") or []:
            if src.get("configMapRef"):
                cm = self.configmaps.get((ns, src["configMapRef"].get("name")))
                val = ((cm or {}).get("data") or {}).get(var)
                if val is not None:
                    return val
        return None

    def missing_refs(self, ns: str, container: dict) -> str | None:
        """Why the kubelet could not create this container's config (a referenced ConfigMap/Secret/key is gone)."""
        for e in container.get("env") or []:
            ref = e.get("valueFrom") or {}
            for kind, table, label in (
                ("configMapKeyRef", self.configmaps, "configmap"),
                ("secretKeyRef", self.secrets, "secret"),
            ):
                r = ref.get(kind)
                if not r or r.get("optional"):
                    continue
                obj = table.get((ns, r.get("name")))
                if obj is None:
                    return f'{label} "{r.get("name")}" not found'
                if r.get("key") not in (obj.get("data") or {}):
                    return f"couldn't find key {r.get('key')} in {label.capitalize() if label == 'secret' else 'ConfigMap'} {ns}/{r.get('name')}"
        return None

    def cert_not_after(self, ns: str, secret: str) -> dt.datetime | None:
        """notAfter of tls.crt in a Secret, if present and parseable."""
        sec = self.secrets.get((ns, secret))
        raw = ((sec or {}).get("data") or {}).get("tls.crt")
        if not raw:
            return None
        try:
            return pki.not_after(base64.b64decode(raw))
        except Exception:  # noqa: BLE001 - a garbled cert counts as unusable, like a TLS server would
            return dt.datetime.min.replace(tzinfo=dt.UTC)

    def service_exists_for(self, ns: str, value: str | None) -> bool:
        """Whether the host in a URL or host:port names an existing Service (cluster DNS semantics)."""
        if not value:
            return False
        host = urlparse(value).hostname if "://" in value else value.split(":")[0]
        if not host:
            return False
        parts = host.split(".")
        name = parts[0]
        svc_ns = parts[1] if len(parts) > 1 and parts[1] != "svc" else ns
        return (svc_ns, name) in self.services


def rule_matches(m: Match, pod: dict, container: dict, world: World, now: dt.datetime) -> bool:
    """Whether every condition in m holds for this container right now."""
    ns = pod["metadata"]["namespace"]
    labels = pod["metadata"].get("labels") or {}
    if m.pod_labels and any(labels.get(k) != v for k, v in m.pod_labels.items()):
        return False
    if m.container and container.get("name") != m.container:
        return False
    if m.image and not fnmatch.fnmatchcase(container.get("image", ""), m.image):
        return False
    if m.memory_limit_below:
        limit = parse_quantity(((container.get("resources") or {}).get("limits") or {}).get("memory"))
        if limit is None or limit >= (parse_quantity(m.memory_limit_below) or 0):
            return False
    if m.env:
        for var, pattern in m.env.items():
            val = world.env_value(ns, container, var)
            if val is None or not fnmatch.fnmatchcase(val, pattern):
                return False
    if m.env_service_missing and world.service_exists_for(ns, world.env_value(ns, container, m.env_service_missing)):
        return False
    if m.secret_cert_expired:
        na = world.cert_not_after(ns, m.secret_cert_expired)
        if na is not None and na > now:
            return False
    for spec, want in ((m.configmap_contains, True), (m.configmap_lacks, False)):
        if spec:
            cm = world.configmaps.get((ns, spec.get("name")))
            text = str(((cm or {}).get("data") or {}).get(spec.get("key", ""), ""))
            if (spec.get("text", "") in text) != want:
                return False
    return True


def pick_rule(sc: Scenario | None, pod: dict, container: dict, world: World, now: dt.datetime) -> Rule:
    """The first matching rule, or a plain healthy container."""
    for rule in sc.rules if sc else []:
        if rule_matches(rule.match, pod, container, world, now):
            return rule
    return Rule()


# ---------------------------------------------------------------- applying


def _render_generated(obj: dict[str, Any]) -> dict[str, Any]:
    """Fill `x-lantern-generate` blocks (TLS secrets with a chosen validity window) with real data."""
    obj = copy.deepcopy(obj)
    gen = obj.pop("x-lantern-generate", None)
    if not gen:
        return obj
    if gen.get("kind") != "tls":
        raise ScenarioError(f"unknown x-lantern-generate kind {gen.get('kind')!r} in {obj['metadata']['name']}")
    now = dt.datetime.now(dt.UTC)
    nb = now - dt.timedelta(days=float(gen.get("issued_days_ago", 90)))
    na = now + dt.timedelta(days=float(gen.get("expires_in_days", 90)))
    cn = gen.get("common_name", "example.internal")
    crt, key = pki.self_signed(cn, list(gen.get("sans") or [cn]), nb, na)
    obj.setdefault("type", "kubernetes.io/tls")
    obj["data"] = {
        **(obj.get("data") or {}),
        "tls.crt": base64.b64encode(crt).decode(),
        "tls.key": base64.b64encode(key).decode(),
    }
    return obj


def _api(kubeconfig: Path):
    from kubernetes import config

    return config.new_client_from_config(config_file=str(kubeconfig), context="lantern-sandbox")


def reset(home: Path | str | None = None, timeout: float = 90.0) -> list[str]:
    """Delete every scenario namespace and wait until they are gone; returns their names."""
    from kubernetes import client

    from sandbox.cluster import Layout

    lay = Layout(home)
    api = _api(lay.kubeconfig)
    core = client.CoreV1Api(api)
    names = [n.metadata.name for n in core.list_namespace(label_selector=SCENARIO_LABEL).items]
    for n in names:
        try:
            core.delete_namespace(n)
        except client.ApiException as exc:
            if exc.status != 404:
                raise
    try:
        core.delete_namespaced_config_map(ENDPOINTS_CONFIGMAP, "kube-system")
    except client.ApiException as exc:
        if exc.status != 404:
            raise
    deadline = time.monotonic() + timeout
    while names and time.monotonic() < deadline:
        left = {n.metadata.name for n in core.list_namespace(label_selector=SCENARIO_LABEL).items}
        if not left & set(names):
            break
        time.sleep(0.3)
    else:
        if names:
            raise ScenarioError(
                f"namespaces {', '.join(names)} still terminating after {timeout:.0f}s; is the node agent running?"
            )
    sc_file = lay.scenario
    if sc_file.exists():
        sc_file.unlink()
    api.close()
    return names


def apply_scenario(name: str, home: Path | str | None = None, timeout: float = 120.0) -> Scenario:
    """Reset the sandbox and start one scenario: namespace, manifests, rollouts, endpoints ConfigMap."""
    from sandbox.cluster import locked

    sc = load_scenario(name)  # a bad name or file fails before anything is torn down
    with locked(home):
        return _apply(sc, home, timeout)


def _apply(sc: Scenario, home: Path | str | None, timeout: float) -> Scenario:
    from kubernetes import client, utils

    from sandbox.cluster import Layout, info, set_nodes

    lay = Layout(home)
    if not lay.kubeconfig.is_file():
        raise ScenarioError("the sandbox is not up; run `lantern sandbox up` first")
    reset(lay.home)
    if int(lay.read_state().get("nodes") or 0) != sc.nodes:
        set_nodes(sc.nodes, lay.home)
    record = {
        "name": sc.name,
        "path": sc.source,
        "symptom": sc.symptom,
        "title": sc.title,
        "namespace": sc.namespace,
        "started_at": time.time(),
        "applied": False,
        "tls_endpoint": sc.tls_endpoint.model_dump() if sc.tls_endpoint else None,
    }
    _write_json(lay.scenario, record)
    api = _api(lay.kubeconfig)
    core = client.CoreV1Api(api)
    apps = client.AppsV1Api(api)
    core.create_namespace(
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": sc.namespace, "labels": {SCENARIO_LABEL: sc.name}},
        }
    )
    _wait_default_sa(core, sc.namespace, timeout)
    for m in sc.manifests:
        obj = _render_generated(m)
        ns = (obj.get("metadata") or {}).get("namespace") or sc.namespace
        try:
            utils.create_from_dict(api, obj, namespace=ns)
        except utils.FailToCreateError as exc:
            msgs = "; ".join(str(getattr(e, "body", e))[:300] for e in exc.api_exceptions)
            raise ScenarioError(
                f"{sc.source}: creating {obj['kind']}/{obj['metadata']['name']} failed: {msgs}"
            ) from exc
    for r in sc.rollouts:
        _wait_available(apps, sc.namespace, r.deployment, timeout)
        body = copy.deepcopy(r.patch)
        if r.change_cause:
            body.setdefault("metadata", {}).setdefault("annotations", {})["kubernetes.io/change-cause"] = r.change_cause
        apps.patch_namespaced_deployment(r.deployment, sc.namespace, body)
        if r.wait_ready:
            _wait_available(apps, sc.namespace, r.deployment, timeout)
    si = info(lay.home)
    if si.endpoints:
        core.create_namespaced_config_map(
            "kube-system",
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": ENDPOINTS_CONFIGMAP, "labels": {"app.kubernetes.io/part-of": "lantern-sandbox"}},
                "data": dict(si.endpoints),
            },
        )
    record["applied"] = True
    _write_json(lay.scenario, record)
    api.close()
    return sc


def _write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2), encoding="utf-8")
    tmp.replace(path)


def _wait_default_sa(core: Any, ns: str, timeout: float) -> None:
    """Pods are refused until the namespace's default ServiceAccount exists; wait for the controller."""
    from kubernetes import client

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            sa = core.read_namespaced_service_account("default", ns)
            if sa.secrets:  # 1.20's admission also wants the token Secret before it admits a pod
                return
        except client.ApiException as exc:
            if exc.status != 404:
                raise
        time.sleep(0.2)
    raise ScenarioError(f"no default ServiceAccount in {ns} after {timeout:.0f}s; is kube-controller-manager running?")


def _wait_available(apps: Any, ns: str, name: str, timeout: float) -> None:
    """Until a Deployment's rollout is complete (all updated replicas available)."""
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        d = apps.read_namespaced_deployment(name, ns)
        st = d.status
        want = d.spec.replicas or 0
        if (
            (st.observed_generation or 0) >= d.metadata.generation
            and (st.updated_replicas or 0) == want
            and (st.available_replicas or 0) == want
            and (st.replicas or 0) == want
        ):
            return
        last = f"{st.available_replicas or 0}/{want} available"
        time.sleep(0.3)
    raise ScenarioError(f"deployment {ns}/{name} not available after {timeout:.0f}s ({last})")
