"""The replay executor: answers actions from a recorded Cloud-OpsBench case instead of a live cluster.

A case folder holds `tool_cache.json` (keys `ToolName:{json args}`) and `raw_data/logs.json`. Lookups
normalise the arguments (resource aliases, default namespace, key order, cluster-scoped kinds), and a
call that was not recorded answers the way kubectl would (NotFound) rather than inventing output.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import yaml

from engine.jsonfile import load_json
from engine.tools import ToolOutput

RESOURCE_ALIASES: dict[str, str] = {
    "po": "pods",
    "pod": "pods",
    "svc": "services",
    "service": "services",
    "deploy": "deployments",
    "deployment": "deployments",
    "sts": "statefulsets",
    "statefulset": "statefulsets",
    "ds": "daemonsets",
    "daemonset": "daemonsets",
    "cm": "configmaps",
    "configmap": "configmaps",
    "secret": "secrets",
    "pvc": "persistentvolumeclaims",
    "persistentvolumeclaim": "persistentvolumeclaims",
    "rs": "replicasets",
    "replicaset": "replicasets",
    "ing": "ingresses",
    "ingress": "ingresses",
    "netpol": "networkpolicies",
    "networkpolicy": "networkpolicies",
    "sa": "serviceaccounts",
    "serviceaccount": "serviceaccounts",
    "job": "jobs",
    "ep": "endpoints",
    "endpoint": "endpoints",
    "pv": "persistentvolumes",
    "persistentvolume": "persistentvolumes",
    "no": "nodes",
    "node": "nodes",
    "sc": "storageclasses",
    "storageclass": "storageclasses",
    "ev": "events",
    "event": "events",
    "quota": "resourcequota",
    "resourcequotas": "resourcequota",
    "ns": "namespaces",
    "namespace": "namespaces",
    "rolebinding": "rolebindings",
}
"""kubectl short names and singulars → the plural the recordings use."""
CLUSTER_SCOPED = {"nodes", "persistentvolumes", "storageclasses", "namespaces"}
"""Kinds without a namespace (recordings may still carry one in the key)."""


def canonical(args: dict[str, Any]) -> str:
    """Arguments as a key-order-independent JSON string."""
    return json.dumps(args, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


@dataclass
class ReplayCase:
    """One recorded case: its cache (indexed by tool and canonical args) and raw logs."""

    case_dir: Path
    """The case folder."""
    namespace: str = "boutique"
    """The application namespace (metadata.json)."""
    index: dict[tuple[str, str], Any] = field(default_factory=dict)
    """(tool, canonical args) → recorded output."""
    logs: dict[str, list[str]] = field(default_factory=dict)
    """service → recent log lines."""
    calls: list[dict[str, Any]] = field(default_factory=list)
    """Every call answered, in order (tool, args, hit) for trajectory scoring."""
    notices: list[str] = field(default_factory=list)
    """Files of the case that could not be read (empty, cut off, binary): read as absent."""

    @classmethod
    def open(cls, case_dir: Path | str) -> ReplayCase:
        """Read a case folder; raises FileNotFoundError with the path when it is not one. A file
        that is empty, cut off or binary is read as absent, with a line in `notices`."""
        d = Path(case_dir)
        cache_path = d / "tool_cache.json"
        if not cache_path.is_file():
            raise FileNotFoundError(f"{d} is not a Cloud-OpsBench case (no tool_cache.json)")
        case = cls(case_dir=d)
        cache = load_json(cache_path, {}, case.notices, expect=dict)
        meta = load_json(d / "metadata.json", {}, case.notices, expect=dict)
        if isinstance(meta.get("namespace"), str) and meta["namespace"]:
            case.namespace = meta["namespace"]
        for key, value in cache.items():
            tool, sep, raw = key.partition(":")
            if not sep:
                continue
            try:
                args = json.loads(raw) if raw.strip() else {}
            except ValueError:
                continue
            if isinstance(args, dict):
                case.index[(tool, canonical(args))] = value
        raw_logs = load_json(d / "raw_data" / "logs.json", {}, case.notices, expect=dict)
        case.logs = {str(k): v for k, v in raw_logs.items() if isinstance(v, list)}
        return case

    def lookup(self, tool: str, candidates: list[dict[str, Any]]) -> tuple[bool, Any]:
        """The first recorded answer among candidate argument sets."""
        for args in candidates:
            key = (tool, canonical(args))
            if key in self.index:
                return True, self.index[key]
        return False, None


def _kind(resource_type: str | None) -> str:
    r = (resource_type or "").strip().lower()
    return RESOURCE_ALIASES.get(r, r)


def _ns_candidates(case: ReplayCase, kind: str, namespace: str | None) -> list[str | None]:
    ns = namespace or case.namespace
    if kind in CLUSTER_SCOPED:
        out: list[str | None] = []
        for n in (ns, case.namespace, "", None, "default"):
            if n not in out:
                out.append(n)
        return out
    return [ns]


def _with_ns(base: dict[str, Any], ns: str | None) -> dict[str, Any]:
    out = dict(base)
    if ns is not None:
        out["namespace"] = ns
    return out


def _not_found(kind: str, name: str | None, namespace: str | None) -> str:
    singular = kind[:-1] if kind.endswith("s") else kind
    if name:
        return f'Error from server (NotFound): {kind} "{name}" not found' + (
            f" in namespace {namespace!r}" if namespace and kind not in CLUSTER_SCOPED else ""
        )
    if kind in CLUSTER_SCOPED:
        return "No resources found"
    del singular
    return f"No resources found in {namespace} namespace."


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return yaml.safe_dump(value, sort_keys=False, width=120, allow_unicode=True).rstrip()


def answer(case: ReplayCase, tool: str, args: dict[str, Any]) -> ToolOutput:
    """The recorded output of `tool(args)` in this case, or a NotFound-style answer."""
    a = {k: v for k, v in args.items() if v is not None}
    got = _ANSWERERS.get(tool, _recorded_answer)(case, tool, a)
    case.calls.append({"tool": tool, "args": a, "hit": got.hit})
    return ToolOutput(text=got.text, data=got.value if got.hit else None, status=got.status)


class _Answer(NamedTuple):
    """Whether the call was recorded, the recorded value, and the text and status kubectl would give."""

    hit: bool
    value: Any
    text: str
    status: str


def _resource_answer(case: ReplayCase, tool: str, a: dict[str, Any]) -> _Answer:
    """GetResources and DescribeResource: looked up under each namespace the kind could be recorded in."""
    kind = _kind(a.get("resource_type"))
    name = a.get("name") or ""
    if tool == "DescribeResource" and not name:
        return _Answer(False, None, "error: you must specify the name of the resource to describe", "error")
    cands = []
    for ns in _ns_candidates(case, kind, a.get("namespace")):
        base: dict[str, Any] = {"resource_type": kind, "name": name}
        if tool == "GetResources":
            if a.get("output_wide"):
                base["output_wide"] = True
            if a.get("show_labels"):
                base["show_labels"] = True
            if a.get("label_selector"):
                base["label_selector"] = a["label_selector"]
        cands.append(_with_ns(base, ns))
    hit, value = case.lookup(tool, cands)
    text = _text(value) if hit else _not_found(kind, name, a.get("namespace") or case.namespace)
    if hit and not text.strip():
        text = _not_found(kind, name, a.get("namespace") or case.namespace)
    return _Answer(hit, value, text, "ok" if hit else "error")


def _logs_answer(case: ReplayCase, tool: str, a: dict[str, Any]) -> _Answer:
    """GetRecentLogs: the last lines of the service's recorded logs; a case whose logs.json could not
    be read says so rather than claiming there are none."""
    svc = str(a.get("service_name", ""))
    try:
        lines = max(1, int(a.get("lines") or 50))
    except (TypeError, ValueError):
        lines = 50
    entries = case.logs.get(svc)
    hit = entries is not None
    unread = [n for n in case.notices if n.startswith("logs.json")]
    if entries:
        return _Answer(hit, None, "\n".join(str(x) for x in entries[-lines:]), "ok")
    if hit:
        return _Answer(
            hit, None, f"No recent logs found for {svc} in {a.get('namespace') or case.namespace} namespace.", "ok"
        )
    if unread:
        return _Answer(hit, None, f"No recent logs available for {svc}: the recorded {unread[0]}.", "ok")
    return _Answer(hit, None, f'Error from server (NotFound): no logs recorded for service "{svc}"', "error")


def _snapshot_answer(case: ReplayCase, tool: str, a: dict[str, Any]) -> _Answer:
    """GetAlerts and GetClusterConfiguration: one recorded answer per case, whatever the arguments."""
    hit, value = case.lookup(tool, [{}])
    if not hit:
        return _Answer(hit, value, f"Error: {tool} was not recorded for this case.", "error")
    if value in ({}, [], "", None):
        empty = "No active metric anomalies detected at this time." if tool == "GetAlerts" else "(empty)"
        return _Answer(hit, value, empty, "ok")
    return _Answer(hit, value, _text(value), "ok")


def _recorded_answer(case: ReplayCase, tool: str, a: dict[str, Any]) -> _Answer:
    """Any other tool: looked up by its arguments as given (namespace defaulted where the tool takes one,
    a port as a number)."""
    cand = dict(a)
    if tool in ("GetErrorLogs", "CheckServiceConnectivity"):
        cand["namespace"] = a.get("namespace") or case.namespace
    if "port" in cand:
        try:
            cand["port"] = int(cand["port"])
        except (TypeError, ValueError):
            pass
    hit, value = case.lookup(tool, [cand])
    if not hit:
        what = ", ".join(f"{k}={v}" for k, v in a.items())
        text = f"Error from server (NotFound): {tool} has no recorded result for {what or 'these arguments'}"
        return _Answer(hit, value, text, "error")
    if value in ("", None, {}, []) or (isinstance(value, dict) and value.get("total_errors") == 0):
        if tool == "GetErrorLogs":
            return _Answer(
                hit,
                value,
                f"No error logs found for {a.get('service_name')} in {cand.get('namespace')} namespace.",
                "ok",
            )
        return _Answer(hit, value, "(empty)", "ok")
    text = json.dumps(value, indent=1, ensure_ascii=False) if isinstance(value, dict) else _text(value)
    return _Answer(hit, value, text, "ok")


_ANSWERERS: dict[str, Callable[[ReplayCase, str, dict[str, Any]], _Answer]] = {
    "GetResources": _resource_answer,
    "DescribeResource": _resource_answer,
    "GetRecentLogs": _logs_answer,
    "GetAlerts": _snapshot_answer,
    "GetClusterConfiguration": _snapshot_answer,
}
"""The tools answered by a rule of their own; every other tool by _recorded_answer."""


async def run_replay(
    action: Any, args: dict[str, Any], *, credential_resolver: Any = None, replay: ReplayCase | None = None, **_: Any
) -> ToolOutput:
    """Answer the action from the bound replay case."""
    if replay is None:
        return ToolOutput(
            text=f"{action.qualified_name}: no replay case is bound (use skills.replay.replay_tools(case_dir))",
            status="error",
        )
    return answer(replay, action.tool, args)
