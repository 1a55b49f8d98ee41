"""Manifests checked by the cluster itself: its own OpenAPI schema, and its API server's verdict.

    paste ─ compose (PyYAML nodes keep their lines) ─┬▶ ClusterSchema.check(node) ─▶ Problem(line, path, message)
                                                     └▶ dry_run_problems (server-side apply, dryRun=All,
                                                        fieldValidation=Strict) ─ locate(path) ─▶ Problem

The schema comes from /openapi/v3 (one document per group-version, fetched when a kind of that
group-version is first checked) or, on servers before 1.24, /openapi/v2; it is fetched once per
cluster and kept for the process (a console session). A cluster that cannot be reached is
remembered for RETRY_S, so a check on every edit does not wait on it each time.
"""

from __future__ import annotations

import difflib
import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import yaml

from skills.kube.client import Kube, explain, kube_for

RETRY_S = 20.0
"""Seconds a failed schema fetch is remembered before the next check tries again."""
TIMEOUT = (3.0, 30.0)
"""(connect, read) seconds for a schema request: the v2 document is a few MB."""
STRICT = [("fieldValidation", "Strict")]
"""Query parameters of a strict request (servers from 1.25 report unknown and duplicate fields; older ones ignore it)."""
_FREE = {"io.k8s.apimachinery.pkg.api.resource.Quantity", "io.k8s.apimachinery.pkg.util.intstr.IntOrString"}
# YAML tags → the JSON type a value of that tag is sent as
_TAGS = {
    "tag:yaml.org,2002:str": "string",
    "tag:yaml.org,2002:int": "integer",
    "tag:yaml.org,2002:float": "number",
    "tag:yaml.org,2002:bool": "boolean",
    "tag:yaml.org,2002:null": "null",
    "tag:yaml.org,2002:timestamp": "string",
    "tag:yaml.org,2002:binary": "string",
}
_MERGE = "tag:yaml.org,2002:merge"


class SchemaUnavailable(Exception):
    """The cluster's schema could not be had (no kubeconfig, unreachable, forbidden); the message says which, in one line."""

    plain = True
    """Shown as it is (skills.kube.client.explain)."""


@dataclass(frozen=True)
class Problem:
    """One finding, at a 1-based line of the pasted text."""

    line: int
    """Where it is."""
    path: str
    """The field path, e.g. spec.template.spec.containers[0].image ('' for the whole document)."""
    message: str
    """What is wrong."""
    level: str = "error"
    """error | warning."""
    doc: int = 1
    """Which document of the paste (1-based)."""

    @property
    def text(self) -> str:
        """'spec.replicas: expected integer, got string "two"'."""
        return f"{self.path}: {self.message}" if self.path else self.message


@dataclass
class Doc:
    """One document of a paste: its position, its node (for lines) and its data."""

    index: int
    """1-based position in the paste."""
    node: yaml.Node
    data: Any

    @property
    def line(self) -> int:
        """The line it starts at."""
        return self.node.start_mark.line + 1

    @property
    def ref(self) -> str:
        """'Deployment shop/api' (what a person calls it)."""
        d: dict[str, Any] = self.data if isinstance(self.data, dict) else {}
        meta: dict[str, Any] = d["metadata"] if isinstance(d.get("metadata"), dict) else {}
        ns = meta.get("namespace")
        return f"{d.get('kind') or '?'} {ns + '/' if ns else ''}{meta.get('name') or '?'}"


def compose(text: str) -> list[Doc]:
    """The documents of a paste with their nodes; raises yaml.YAMLError as PyYAML does."""
    loader = yaml.SafeLoader(text)
    out: list[Doc] = []
    try:
        index = 0
        while loader.check_node():
            node = loader.get_node()
            index += 1
            if node is not None:
                out.append(Doc(index, node, loader.construct_document(node)))
    finally:
        loader.dispose()
    return out


def yaml_error(exc: yaml.YAMLError, text: str = "") -> tuple[int, str]:
    """(line, one-line message) for a YAML error, including unreadable characters (a paste's stray control code)."""
    if isinstance(exc, yaml.reader.ReaderError):
        line = text.count("\n", 0, exc.position) + 1 if text else 1
        ch = exc.character
        code = f"#x{ord(ch):04x}" if isinstance(ch, str) else f"#x{ch:04x}" if isinstance(ch, int) else repr(ch)
        return line, f"YAML: character {code} is not allowed in YAML ({exc.reason})"
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        ctx = f" ({exc.context})" if exc.context else ""
        return (
            mark.line + 1 if mark is not None else 1
        ), f"YAML syntax: {exc.problem or str(exc).splitlines()[0]}{ctx}"
    return 1, f"YAML: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"


def _pairs(node: yaml.MappingNode) -> list[tuple[yaml.Node, yaml.Node]]:
    """A mapping's entries with `<<: *anchor` merges spread in (the merged ones first, as PyYAML gives way to the explicit ones)."""
    merged: list[tuple[yaml.Node, yaml.Node]] = []
    own: list[tuple[yaml.Node, yaml.Node]] = []
    for k, v in node.value:
        if k.tag == _MERGE:
            for m in v.value if isinstance(v, yaml.SequenceNode) else [v]:
                if isinstance(m, yaml.MappingNode):
                    merged.extend(_pairs(m))
        else:
            own.append((k, v))
    return merged + own


def _kind_of(node: yaml.Node) -> str:
    if isinstance(node, yaml.MappingNode):
        return "mapping"
    if isinstance(node, yaml.SequenceNode):
        return "list"
    return _TAGS.get(node.tag, "string")


def _shown(node: yaml.Node) -> str:
    kind = _kind_of(node)
    if isinstance(node, yaml.ScalarNode):
        value = node.value if len(node.value) <= 40 else node.value[:39] + "…"
        return f'{kind} "{value}"' if kind == "string" else f"{kind} {value}"
    return f"a {kind}"


def _line(node: yaml.Node) -> int:
    return node.start_mark.line + 1


class ClusterSchema:
    """One cluster's OpenAPI definitions, and the check of a document node against them."""

    def __init__(
        self,
        fetch: Callable[[str], dict[str, Any]],
        *,
        label: str = "the cluster",
        served: Callable[[str, str], bool | None] | None = None,
    ) -> None:
        self._fetch = fetch
        self.label = label
        """Which cluster and document, for the inspector's status ('lantern-sandbox v1.20, /openapi/v2')."""
        self._served = served
        self._defs: dict[str, dict[str, Any]] = {}
        self._gvk: dict[tuple[str, str], str] = {}
        self._v3: dict[str, str] | None = None
        self._loaded: set[str] = set()
        self._lock = threading.Lock()
        self.source = ""
        """'openapi/v3' or 'openapi/v2'."""

    # -- loading -----------------------------------------------------------------------------------
    def load(self) -> ClusterSchema:
        """Read the v3 index (or the whole v2 document); raises what the fetch raises."""
        try:
            index = self._fetch("/openapi/v3")
        except LookupError:  # the server predates v3
            index = None
        if index is not None and isinstance(index.get("paths"), dict):
            self.source = "openapi/v3"
            self._v3 = {
                gv: str((entry or {}).get("serverRelativeURL") or f"/openapi/v3/{gv}")
                for gv, entry in index["paths"].items()
            }
        else:
            self.source = "openapi/v2"
            self._add(self._fetch("/openapi/v2").get("definitions") or {})
        return self

    def _add(self, defs: dict[str, Any]) -> None:
        for name, d in defs.items():
            self._defs.setdefault(name, d)
            for gvk in d.get("x-kubernetes-group-version-kind") or []:
                group, version = gvk.get("group") or "", gvk.get("version") or ""
                self._gvk.setdefault((f"{group}/{version}" if group else version, gvk.get("kind") or ""), name)

    def definition(self, api_version: str, kind: str) -> str | None:
        """The definition name for an apiVersion and kind, or None when this cluster's schema has none."""
        if self._v3 is not None:
            gv = f"apis/{api_version}" if "/" in api_version else f"api/{api_version}"
            with self._lock:
                if gv not in self._loaded and gv in self._v3:
                    self._loaded.add(gv)
                    self._add(((self._fetch(self._v3[gv]).get("components") or {}).get("schemas")) or {})
        return self._gvk.get((api_version, kind))

    # -- checking ----------------------------------------------------------------------------------
    def check(self, doc: Doc) -> list[Problem]:
        """Unknown, duplicate and missing required fields and wrong types in one document, at their lines."""
        node, data = doc.node, doc.data
        if not isinstance(node, yaml.MappingNode) or not isinstance(data, dict):
            return []
        api_version, kind = data.get("apiVersion"), data.get("kind")
        if not isinstance(api_version, str) or not isinstance(kind, str):
            return []
        name = self.definition(api_version, kind)
        if name is None:
            served = self._served(api_version, kind) if self._served else None
            if served is False:
                return [Problem(doc.line, "", f"{api_version} {kind} is not served by {self.label}", doc=doc.index)]
            return [
                Problem(
                    doc.line,
                    "",
                    f"{api_version} {kind} has no published schema on {self.label}; the server's dry run checks it",
                    "warning",
                    doc.index,
                )
            ]
        out: list[Problem] = []
        self._walk({"$ref": name}, node, "", doc.index, out)
        return out

    def _deref(self, s: dict[str, Any]) -> tuple[dict[str, Any], str]:
        """The schema behind $ref and allOf (v3 wraps a ref in allOf to give it a default), and its definition name."""
        name = ""
        for _ in range(32):
            ref = s.get("$ref")
            if ref is None and len(s.get("allOf") or []) == 1 and not s.get("properties"):
                ref = s["allOf"][0].get("$ref")
            if not ref:
                break
            name = ref.rsplit("/", 1)[-1]
            s = self._defs.get(name, {})
        return s, name

    def _walk(self, schema: dict[str, Any], node: yaml.Node, path: str, doc: int, out: list[Problem]) -> None:
        s, name = self._deref(schema)
        got = _kind_of(node)
        if got == "null" or not s:
            return  # null means "not set" to the API server; no schema means anything goes
        if name in _FREE or s.get("x-kubernetes-int-or-string") or s.get("format") == "int-or-string":
            if got not in ("string", "integer", "number"):
                out.append(Problem(_line(node), path, f"expected a string or a number, got {_shown(node)}", doc=doc))
            return
        branches = s.get("oneOf") or s.get("anyOf")
        if branches and not s.get("type"):
            return  # a union: the server's dry run decides
        typ = s.get("type") or ("object" if "properties" in s or "additionalProperties" in s else "")
        if typ == "object":
            self._object(s, node, path, doc, out)
        elif typ == "array":
            if not isinstance(node, yaml.SequenceNode):
                out.append(Problem(_line(node), path, f"expected a list, got {_shown(node)}", doc=doc))
                return
            for i, item in enumerate(node.value):
                self._walk(s.get("items") or {}, item, f"{path}[{i}]", doc, out)
        elif typ in ("string", "integer", "number", "boolean"):
            ok = got == typ or (typ == "number" and got == "integer")
            if not ok:
                hint = f' (quote it: "{node.value}")' if typ == "string" and isinstance(node, yaml.ScalarNode) else ""
                out.append(Problem(_line(node), path, f"expected {typ}, got {_shown(node)}{hint}", doc=doc))
            elif s.get("enum") and isinstance(node, yaml.ScalarNode) and node.value not in [str(e) for e in s["enum"]]:
                out.append(
                    Problem(
                        _line(node),
                        path,
                        f"must be one of {', '.join(map(str, s['enum']))}; got {node.value!r}",
                        doc=doc,
                    )
                )

    def _object(self, s: dict[str, Any], node: yaml.Node, path: str, doc: int, out: list[Problem]) -> None:
        if not isinstance(node, yaml.MappingNode):
            out.append(Problem(_line(node), path, f"expected a mapping, got {_shown(node)}", doc=doc))
            return
        props: dict[str, Any] | None = s.get("properties")
        extra = s.get("additionalProperties")
        free = s.get("x-kubernetes-preserve-unknown-fields") or props is None and not isinstance(extra, dict)
        seen: dict[str, int] = {}
        merged = {id(k) for k, _ in _pairs(node)} - {id(k) for k, _ in node.value}
        for k, v in _pairs(node):
            key = str(k.value)
            where = f"{path}.{key}" if path else key
            if key in seen and id(k) not in merged:
                out.append(
                    Problem(
                        _line(k),
                        where,
                        f"duplicate field (also at line {seen[key]}); only the last one would count",
                        doc=doc,
                    )
                )
            seen.setdefault(key, _line(k))
            if props is not None and key in props:
                self._walk(props[key], v, where, doc, out)
            elif isinstance(extra, dict):
                self._walk(extra, v, where, doc, out)
            elif not free and extra is not True:
                close = difflib.get_close_matches(key, list(props or {}), n=1)
                out.append(
                    Problem(
                        _line(k), where, "unknown field" + (f" (did you mean {close[0]}?)" if close else ""), doc=doc
                    )
                )
        for req in s.get("required") or []:
            if req not in seen:
                out.append(Problem(_line(node), f"{path}.{req}" if path else req, "missing required field", doc=doc))


# -- the cluster's own copy ------------------------------------------------------------------------
_schemas: dict[tuple[str, str, str], ClusterSchema] = {}
_failed: dict[tuple[str, str, str], tuple[float, str]] = {}
_cache_lock = threading.Lock()


def _getter(kube: Kube) -> Callable[[str], dict[str, Any]]:
    def fetch(path: str) -> dict[str, Any]:
        from kubernetes.client.exceptions import ApiException

        resource, _, query = path.partition("?")
        params = [tuple(p.split("=", 1)) for p in query.split("&") if "=" in p]
        req = kube.api.param_serialize(
            "GET",
            resource,
            query_params=params or None,
            header_params={"Accept": "application/json"},
            auth_settings=["BearerToken"],
        )
        resp = kube.api.call_api(*req, _request_timeout=TIMEOUT)
        resp.read()
        if resp.status == 404:
            raise LookupError(path)
        if not 200 <= resp.status < 300:
            raise ApiException(http_resp=resp)
        return json.loads(resp.data)

    return fetch


def _served(kube: Kube) -> Callable[[str, str], bool | None]:
    def served(api_version: str, kind: str) -> bool | None:
        try:
            kube.dynamic.resources.get(api_version=api_version, kind=kind)
        except Exception as exc:  # noqa: BLE001 - discovery's own failure means "cannot tell"
            return False if type(exc).__name__ == "ResourceNotFoundError" else None
        return True

    return served


def schema_for(kube: Kube) -> ClusterSchema:
    """The cluster's schema, fetched once per cluster (kubeconfig, context, server); raises SchemaUnavailable."""
    key = (str(kube.kubeconfig), kube.context or "", str(kube.api.configuration.host))
    with _cache_lock:
        if key in _schemas:
            return _schemas[key]
        failed = _failed.get(key)
        if failed and time.monotonic() - failed[0] < RETRY_S:
            raise SchemaUnavailable(failed[1])
    try:
        try:
            version = kube.version_text
        except Exception:  # noqa: BLE001 - the version only labels the schema; its fetch says what is wrong
            version = ""
        schema = ClusterSchema(
            _getter(kube),
            label=f"{kube.context or 'the cluster'}" + (f" ({version})" if version else ""),
            served=_served(kube),
        ).load()
    except Exception as exc:  # noqa: BLE001 - every failure becomes one line for the inspector
        msg = _why(exc)
        with _cache_lock:
            _failed[key] = (time.monotonic(), msg)
        raise SchemaUnavailable(msg) from None
    with _cache_lock:
        _failed.pop(key, None)
        _schemas[key] = schema
    return schema


def _why(exc: BaseException) -> str:
    status = getattr(exc, "status", None)
    if status in (401, 403):
        return f"the kube user may not read the cluster's OpenAPI schema (HTTP {status})"
    if isinstance(exc, ValueError) and not getattr(exc, "plain", False):
        return "the cluster's OpenAPI schema is not valid JSON"
    text = explain(exc)
    if "urllib3" in type(exc).__module__ or "timed out" in text.lower():
        return "cannot reach the Kubernetes API server (is the cluster up? try `lantern sandbox status`)"
    return text.splitlines()[0] if text else type(exc).__name__


def cluster_schema(context: str | None = None) -> ClusterSchema:
    """The schema of the cluster `context` names (None: as the kubernetes pack picks it); raises SchemaUnavailable."""
    return schema_for(_kube(context))


def _kube(context: str | None) -> Kube:
    from skills.kube.client import KubeConfigMissing

    try:
        return kube_for(context)
    except KubeConfigMissing:
        where = f"no kube context {context!r}" if context else "no kube context"
        raise SchemaUnavailable(f"{where}; `lantern sandbox up` starts a local cluster") from None
    except Exception as exc:  # noqa: BLE001 - a broken kubeconfig: one line
        raise SchemaUnavailable(explain(exc).splitlines()[0]) from None


def clear() -> None:
    """Forget fetched schemas and failures (tests; after a cluster is rebuilt)."""
    with _cache_lock:
        _schemas.clear()
        _failed.clear()


# -- the API server's own verdict ------------------------------------------------------------------
# structured-merge-diff (server-side apply): '.spec.containers[name="api"].x: field not declared in schema', one per
# line after 'errors:', or inline after 'failed to create typed patch object: ' when there is one
_SMD = re.compile(r"(?:^|\s)(\.[A-Za-z_$][^\s:\[]*(?:\[[^\]]*\][^\s:\[]*)*): (.+)$", re.MULTILINE)
_STRICT = re.compile(r'(unknown|duplicate) field "([^"]+)"')
_SEG = re.compile(r"\.([^.\[]+)|\[([^\]]*)\]")
_KV = re.compile(r'([\w.-]+)=("(?:[^"\\]|\\.)*"|[^,]*)')


def locate(node: yaml.Node, path: str) -> tuple[int, str]:
    """(line, field path with list indices) of an API server path in a document: `.spec.containers[name="api"].x`
    (server-side apply) or `spec.containers[0].x` (strict decoding); the deepest part found when the rest is not there."""
    line, shown = _line(node), ""
    cur: yaml.Node | None = node
    raw = path if path.startswith((".", "[")) else "." + path
    for m in _SEG.finditer(raw):
        key, sel = m.group(1), m.group(2)
        if key is not None:
            shown = f"{shown}.{key}" if shown else key
            nxt = None
            if isinstance(cur, yaml.MappingNode):
                for k, v in _pairs(cur):
                    if str(k.value) == key:
                        line, nxt = _line(k), v
            cur = nxt
            continue
        idx = _select(cur, sel or "")
        shown += f"[{idx}]" if idx is not None else f"[{sel}]"
        if idx is None or not isinstance(cur, yaml.SequenceNode):
            cur = None
            continue
        cur = cur.value[idx]
        line = _line(cur)
    return line, shown


def _select(seq: yaml.Node | None, sel: str) -> int | None:
    """The index a list selector picks: `0`, `name="api"`, `containerPort=80,protocol="TCP"`, `="a"` (a set's value)."""
    if sel.isdigit():
        return int(sel)
    if not isinstance(seq, yaml.SequenceNode):
        return None
    want: dict[str, str] = {}
    for k, v in _KV.findall(sel):
        try:
            want[k] = str(json.loads(v))
        except ValueError:
            want[k] = v.strip('"')
    for i, item in enumerate(seq.value):
        if sel.startswith("=") and isinstance(item, yaml.ScalarNode) and item.value == want.get("", sel[1:].strip('"')):
            return i
        if isinstance(item, yaml.MappingNode):
            fields = {str(k.value): str(v.value) for k, v in _pairs(item) if isinstance(v, yaml.ScalarNode)}
            if all(fields.get(k, "TCP" if k == "protocol" else None) == v for k, v in want.items() if k):
                return i
    return None


_GO_VALUE = re.compile(r"&value\.valueUnstructured\{Value:(.*?)\}")


def _plain(what: str) -> str:
    """The API server's Go-flavoured words made readable ('got &value.valueUnstructured{Value:8}' → 'got 8')."""
    what = _GO_VALUE.sub(r"\1", what.strip())
    return what.replace("*value.valueUnstructured", "a value of another type")


def server_problems(doc: Doc, message: str) -> list[Problem]:
    """An API server's refusal of one document as problems at their lines (the whole message at the document's line
    when it names no field)."""
    out: list[Problem] = []
    for kind, path in _STRICT.findall(message):
        line, shown = locate(doc.node, path)
        out.append(Problem(line, shown, f"{kind} field (API server)", doc=doc.index))
    if not out:
        for path, what in _SMD.findall(message):
            line, shown = locate(doc.node, path)
            out.append(Problem(line, shown, f"{_plain(what)} (API server)", doc=doc.index))
    if not out:
        first = " ".join(message.split())
        out.append(Problem(doc.line, "", f"document {doc.index} ({doc.ref}): {first[:300]}", doc=doc.index))
    return out


def dry_run(kube: Kube, docs: list[Doc], namespace: str = "default") -> list[Problem]:
    """The API server's verdict on each document: a server-side apply with dryRun=All and fieldValidation=Strict, as
    apply_manifest sends it. A document whose namespace another document of the paste creates is not sent."""
    from kubernetes.client.exceptions import ApiException

    from skills.kube.fix import FIELD_MANAGER, _resource

    creates = {
        str((d.data.get("metadata") or {}).get("name")): d.index
        for d in docs
        if isinstance(d.data, dict) and d.data.get("kind") == "Namespace" and isinstance(d.data.get("metadata"), dict)
    }
    out: list[Problem] = []
    for doc in docs:
        d = doc.data
        if not isinstance(d, dict) or not isinstance(d.get("kind"), str) or not isinstance(d.get("apiVersion"), str):
            continue
        meta: dict[str, Any] = d["metadata"] if isinstance(d.get("metadata"), dict) else {}
        name = meta.get("name")
        if not name:
            continue
        try:
            res = _resource(kube, d["kind"], d["apiVersion"])
        except Exception as exc:  # noqa: BLE001 - not served: said at the document
            out.append(Problem(doc.line, "", f"document {doc.index} ({doc.ref}): {explain(exc)}", doc=doc.index))
            continue
        ns = (meta.get("namespace") or namespace) if res.namespaced else None
        body = json.loads(json.dumps(d, default=str))
        if ns:
            body["metadata"]["namespace"] = ns
        try:
            res.server_side_apply(
                body=body,
                name=name,
                namespace=ns,
                field_manager=FIELD_MANAGER,
                force_conflicts=True,
                dry_run="All",
                query_params=list(STRICT),
                _request_timeout=TIMEOUT,
            )
        except ApiException as exc:
            msg = _message(exc)
            if exc.status == 404 and ns in creates and "namespaces" in msg:
                out.append(
                    Problem(
                        doc.line,
                        "",
                        f"document {doc.index} ({doc.ref}) is checked when applied: its namespace {ns} "
                        f"is created by document {creates[ns]}",
                        "warning",
                        doc.index,
                    )
                )
                continue
            out.extend(server_problems(doc, msg))
        except Exception as exc:  # noqa: BLE001 - unreachable mid-check: one line, at the document
            out.append(Problem(doc.line, "", f"document {doc.index} ({doc.ref}): {_why(exc)}", doc=doc.index))
    return out


def _message(exc: Any) -> str:
    try:
        body = json.loads(exc.body or "{}")
        return str(body.get("message") or exc.reason or "")
    except (ValueError, TypeError, AttributeError):
        return str(exc.body or exc.reason or "")[:500]


class ClusterCheck:
    """What the inspector asks of one cluster: its schema (cached) and its API server's dry run."""

    def __init__(self, context: str | None = None) -> None:
        self.context = context
        """The kube context (None: as the kubernetes pack picks it)."""

    def schema(self) -> ClusterSchema:
        """The cluster's schema; raises SchemaUnavailable with one line."""
        return cluster_schema(self.context)

    def dry_run(self, docs: list[Doc], namespace: str = "default") -> list[Problem]:
        """The API server's verdict on the documents (server-side apply, dryRun=All, fieldValidation=Strict)."""
        return dry_run(_kube(self.context), docs, namespace)
