"""Manifest checks for the inspector: multi-document YAML parsing with line numbers, then a
structural check against the connected cluster's own OpenAPI schema (skills.kube.schema), or,
with no cluster to ask, against the kubernetes client's model classes.

Pure functions, no UI: the inspector runs them in a thread (the model classes take ~1-2 s to import).
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from typing import Any

import yaml

PRIMITIVES = {"str", "int", "float", "bool", "bytes", "datetime", "object", "date"}
"""Scalar openapi types in the client's model classes."""


@dataclass(frozen=True)
class Issue:
    """One problem, at a 1-based line of the pasted text."""

    line: int
    message: str
    level: str = "error"
    """error | warning."""
    doc: int = 1
    """Which document (1-based)."""


@dataclass
class Document:
    """One parsed document of the paste."""

    index: int
    """1-based position in the paste."""
    start_line: int
    """Line where it starts."""
    data: Any
    node: yaml.Node | None
    issues: list[Issue] = field(default_factory=list)

    @property
    def title(self) -> str:
        """'Deployment payments/api' or '(document 2)'."""
        if isinstance(self.data, dict):
            kind = self.data.get("kind") or "?"
            meta = self.data.get("metadata") or {}
            name = meta.get("name") if isinstance(meta, dict) else None
            ns = meta.get("namespace") if isinstance(meta, dict) else None
            return f"{kind} {ns + '/' if ns else ''}{name or '?'}"
        return f"(document {self.index})"


@dataclass
class Report:
    """The result of checking a paste."""

    documents: list[Document]
    issues: list[Issue]
    schema_checked: bool = True
    """False when no schema was at hand (only YAML and required fields checked)."""
    checked_against: str = ""
    """What the fields were checked against: 'lantern-sandbox (v1.20) openapi/v2', 'the client's built-in schema'."""
    note: str = ""
    """Why the cluster's schema was not used (one line), or ''."""
    server_checked: bool = False
    """True when the API server's dry run also passed judgement."""

    @property
    def ok(self) -> bool:
        """True when nothing is wrong."""
        return not any(i.level == "error" for i in self.issues)


def parse(text: str) -> tuple[list[Document], list[Issue]]:
    """Split and parse every document; a syntax error is reported at its line and stops parsing."""
    docs: list[Document] = []
    issues: list[Issue] = []
    index = 0
    loader: yaml.SafeLoader | None = None
    try:
        loader = yaml.SafeLoader(text)  # reads the whole text first: a character YAML forbids fails here
        while loader.check_node():
            node = loader.get_node()
            index += 1
            if node is None:
                continue
            data = loader.construct_document(node)
            docs.append(Document(index=index, start_line=node.start_mark.line + 1, data=data, node=node))
    except yaml.YAMLError as exc:
        from skills.kube.schema import yaml_error

        line, message = yaml_error(exc, text)
        issues.append(Issue(line, message, doc=index + 1))
    finally:
        if loader is not None:
            loader.dispose()
    return docs, issues


def _line(node: yaml.Node | None, default: int) -> int:
    return node.start_mark.line + 1 if node is not None else default


def _child(node: yaml.Node | None, key: str) -> tuple[yaml.Node | None, yaml.Node | None]:
    """(key node, value node) of a mapping node's entry."""
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            if isinstance(k, yaml.ScalarNode) and k.value == key:
                return k, v
    return None, None


def check_required(doc: Document) -> list[Issue]:
    """apiVersion, kind and metadata.name (or generateName) must be there."""
    out: list[Issue] = []
    d = doc.data
    line = doc.start_line
    if d is None:
        return [Issue(line, "empty document", "warning", doc.index)]
    if not isinstance(d, dict):
        return [Issue(line, f"a Kubernetes object is a mapping, this is a {type(d).__name__}", doc=doc.index)]
    for f in ("apiVersion", "kind"):
        if not d.get(f):
            out.append(Issue(line, f"missing required field {f}", doc=doc.index))
        elif not isinstance(d[f], str):
            out.append(Issue(_line(_child(doc.node, f)[1], line), f"{f} must be a string", doc=doc.index))
    meta = d.get("metadata")
    _, meta_node = _child(doc.node, "metadata")
    if not isinstance(meta, dict):
        out.append(Issue(_line(meta_node, line), "missing required field metadata (with metadata.name)", doc=doc.index))
    elif not (meta.get("name") or meta.get("generateName")):
        out.append(Issue(_line(meta_node, line), "missing required field metadata.name", doc=doc.index))
    return out


def model_class(api_version: str, kind: str, models: Any) -> Any:
    """The client's model class for an apiVersion/kind, or None when the kind is not built in."""
    group, _, version = api_version.rpartition("/")
    ver = version[:1].upper() + version[1:]
    candidates = [f"{ver}{kind}"]
    if group:
        g = group.split(".")[0]
        candidates.append(f"{g[:1].upper()}{g[1:]}{ver}{kind}")
    else:
        candidates.append(f"Core{ver}{kind}")
    for name in candidates:
        cls = getattr(models, name, None)
        if cls is not None and hasattr(cls, "openapi_types"):
            return cls
    return None


_LIST = re.compile(r"^List\[(.+)\]$")
_DICT = re.compile(r"^Dict\[str, (.+)\]$")


def _check(
    value: Any, node: yaml.Node | None, typ: str, path: str, models: Any, doc: Document, out: list[Issue]
) -> None:
    line = _line(node, doc.start_line)
    if value is None:
        return
    m = _LIST.match(typ)
    if m:
        if not isinstance(value, list):
            out.append(Issue(line, f"{path}: expected a list, got {type(value).__name__}", doc=doc.index))
            return
        items = node.value if isinstance(node, yaml.SequenceNode) else [None] * len(value)
        for i, (v, n) in enumerate(zip(value, items)):
            _check(v, n, m.group(1), f"{path}[{i}]", models, doc, out)
        return
    m = _DICT.match(typ)
    if m:
        if not isinstance(value, dict):
            out.append(Issue(line, f"{path}: expected a mapping, got {type(value).__name__}", doc=doc.index))
            return
        inner = m.group(1)
        if inner not in PRIMITIVES or inner == "str":
            for k, v in value.items():
                _, vn = _child(node, str(k))
                _check(v, vn, inner, f"{path}.{k}", models, doc, out)
        return
    if typ in PRIMITIVES:
        if typ == "object":
            return
        if isinstance(value, (dict, list)):
            out.append(
                Issue(
                    line,
                    f"{path}: expected {typ}, got a {'mapping' if isinstance(value, dict) else 'list'}",
                    doc=doc.index,
                )
            )
        elif typ == "bool" and not isinstance(value, bool):
            out.append(Issue(line, f"{path}: expected true or false, got {value!r}", doc=doc.index))
        elif typ in ("int", "float") and (isinstance(value, bool) or not isinstance(value, (int, float))):
            out.append(Issue(line, f"{path}: expected a number, got {value!r}", doc=doc.index))
        return
    cls = getattr(models, typ, None)
    if cls is None or not hasattr(cls, "openapi_types"):
        return
    if not isinstance(value, dict):
        out.append(Issue(line, f"{path}: expected a mapping ({typ}), got {type(value).__name__}", doc=doc.index))
        return
    json_to_attr = {j: a for a, j in cls.attribute_map.items()}
    for key, v in value.items():
        kn, vn = _child(node, str(key))
        attr = json_to_attr.get(str(key))
        where = f"{path}.{key}" if path else str(key)
        if attr is None:
            close = difflib.get_close_matches(str(key), list(json_to_attr), n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            out.append(Issue(_line(kn, line), f"{where}: unknown field{hint}", doc=doc.index))
            continue
        _check(v, vn, cls.openapi_types[attr], where, models, doc, out)


def check_schema(doc: Document, models: Any) -> list[Issue]:
    """Unknown fields and wrong shapes, against the client's model class for the object's kind."""
    d = doc.data
    if not isinstance(d, dict) or not isinstance(d.get("apiVersion"), str) or not isinstance(d.get("kind"), str):
        return []
    cls = model_class(d["apiVersion"], d["kind"], models)
    if cls is None:
        return [
            Issue(
                doc.start_line,
                f"{d['apiVersion']}/{d['kind']} is not a built-in kind; only required fields were checked",
                "warning",
                doc.index,
            )
        ]
    out: list[Issue] = []
    _check(d, doc.node, cls.__name__, "", models, doc, out)
    return out


def load_models() -> Any:
    """The kubernetes client's model module, or None when it cannot be imported."""
    try:
        import kubernetes.client.models as models
    except Exception:  # noqa: BLE001 - no client: fall back to YAML and required-field checks
        return None
    return models


def check(text: str, models: Any = None, *, schema: Any = None, note: str = "") -> Report:
    """Parse and validate a paste (call from a thread: importing the client is slow).

    With `schema` (a skills.kube.schema.ClusterSchema) the fields are checked against the cluster's
    own; otherwise against the client's model classes, and `note` says why."""
    from skills.kube.schema import Doc

    docs, issues = parse(text)
    if schema is None and models is None:
        models = load_models()
    for doc in docs:
        doc.issues.extend(check_required(doc))
        if schema is not None and doc.node is not None:
            doc.issues.extend(
                Issue(p.line, p.text, p.level, p.doc) for p in schema.check(Doc(doc.index, doc.node, doc.data))
            )
        elif models is not None:
            doc.issues.extend(check_schema(doc, models))
        issues.extend(doc.issues)
    issues.sort(key=lambda i: (i.line, i.level != "error"))
    against = (
        f"{schema.label} {schema.source}"
        if schema is not None
        else ("the client's built-in schema" if models is not None else "")
    )
    return Report(
        documents=docs,
        issues=issues,
        schema_checked=schema is not None or models is not None,
        checked_against=against,
        note=note,
    )


def add_server_check(report: Report, cluster: Any, namespace: str = "default") -> Report:
    """The API server's dry run of a report's documents (a skills.kube.schema.ClusterCheck), its findings added at their lines."""
    from skills.kube.schema import Doc

    docs = [Doc(d.index, d.node, d.data) for d in report.documents if d.node is not None and isinstance(d.data, dict)]
    if not docs:
        return report
    try:
        problems = cluster.dry_run(docs, namespace)
    except Exception as exc:  # noqa: BLE001 - the cluster went away between the schema and the dry run: one line
        report.note = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return report
    report.issues.extend(Issue(p.line, p.text, p.level, p.doc) for p in problems)
    report.issues.sort(key=lambda i: (i.line, i.level != "error"))
    report.server_checked = True
    return report
