"""The fact ledger: identifiers, error codes, metric values and timestamps pulled deterministically
from every tool output and message, each pointing back to the event it came from.

The ledger is pinned in the prompt and compaction never rewrites it, so the facts an
investigation rests on (pod names with their generated suffixes, `OOMKilled`, `exit code 137`,
`HTTP 429`, `java.sql.SQLException: ...`, `1.8GB`, `2025-10-08 14:45:00 UTC`, `abc123f`)
survive however hard the conversation around them is squeezed. Extraction is regular
expressions plus a light reading of kubectl tables; no model is involved.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

KINDS: tuple[str, ...] = (
    "namespace",
    "node",
    "deployment",
    "pod",
    "resource",
    "image",
    "host",
    "reason",
    "exit_code",
    "http_status",
    "exception",
    "error_line",
    "config",
    "metric",
    "timestamp",
    "version",
    "sha",
)
"""Fact kinds, in the order the ledger renders them."""

LABELS: dict[str, str] = {
    "namespace": "namespaces",
    "node": "nodes",
    "deployment": "workloads",
    "pod": "pods",
    "resource": "other resources",
    "image": "images",
    "host": "hosts",
    "reason": "reasons",
    "exit_code": "exit codes",
    "http_status": "HTTP",
    "exception": "exceptions",
    "error_line": "error lines",
    "config": "config",
    "metric": "metrics",
    "timestamp": "times",
    "version": "versions",
    "sha": "commits/digests",
}
"""Kind → heading in the rendered ledger."""


_COUNTED = ("reason", "error_line", "exception", "http_status")
"""Kinds whose repeat count is shown (how often an error recurred matters; a pod name's does not)."""


@dataclass
class Fact:
    """One fact: its kind, its exact text, and the events it was seen in."""

    kind: str
    """One of KINDS."""
    value: str
    """The exact string as it appeared (what a later answer must be able to quote)."""
    seq: int
    """The event it was first seen in."""
    step: int = 0
    """The model step of that event (0 for user messages)."""
    label: str = ""
    """What a metric measures, or the context of a timestamp ('memory usage', 'Started')."""
    count: int = 1
    """How many times it was seen (repeated log lines collapse into one fact)."""
    last_seq: int = 0
    """The latest event it was seen in."""

    @property
    def ref(self) -> str:
        """The event reference the fact points back to ('e12')."""
        return f"e{self.seq}"

    def render(self) -> str:
        """The compact text the prompt carries for this fact."""
        text = f"{self.label} {self.value}" if self.label else self.value
        if self.count > 1 and self.kind in _COUNTED:
            text += f" ×{self.count}"
        return text


@dataclass
class _Found:
    kind: str
    value: str
    label: str = ""
    key: str = ""


# -- vocabularies -----------------------------------------------------------------------------
REASONS = {
    "OOMKilled",
    "CrashLoopBackOff",
    "ImagePullBackOff",
    "ErrImagePull",
    "ErrImageNeverPull",
    "InvalidImageName",
    "CreateContainerConfigError",
    "CreateContainerError",
    "RunContainerError",
    "ContainerCannotRun",
    "Evicted",
    "Preempting",
    "FailedScheduling",
    "FailedMount",
    "FailedAttachVolume",
    "FailedCreatePodSandBox",
    "FailedKillPod",
    "FailedSync",
    "FailedCreate",
    "BackOff",
    "Unhealthy",
    "NodeNotReady",
    "NodeNotSchedulable",
    "NotReady",
    "Pending",
    "Error",
    "Terminating",
    "ContainerCreating",
    "PodInitializing",
    "Init:Error",
    "Init:CrashLoopBackOff",
    "DeadlineExceeded",
    "ProgressDeadlineExceeded",
    "MinimumReplicasUnavailable",
    "Killing",
    "NetworkNotReady",
    "MemoryPressure",
    "DiskPressure",
    "PIDPressure",
    "Unschedulable",
    "SchedulingDisabled",
    "Forbidden",
    "ExceededQuota",
    "FailedValidation",
    "ReplicaFailure",
    "OutOfmemory",
    "OutOfcpu",
    "NodeAffinity",
    "Completed",
    "Failed",
    "Probe failed",
    "Liveness probe failed",
    "Readiness probe failed",
    "Startup probe failed",
    "Back-off",
    "connection refused",
    "no such host",
    "i/o timeout",
    "context deadline exceeded",
    "Connection refused",
    "too many open files",
    "permission denied",
    "Permission denied",
    "x509: certificate",
    "certificate has expired",
    "ServiceUnavailable",
    "Timeout",
}
"""Kubernetes reasons and the error phrases an investigation turns on (matched exactly)."""

_REASON_WORD_RE = re.compile(
    r"\b(?:[A-Z][a-z]+)+(?:BackOff|Killed|Exceeded|NotReady|Unhealthy|Evicted|Pressure|Failure|Failed|Unavailable|Refused|Timeout|Throttled)\b"
    r"|\bFailed[A-Z][A-Za-z]+\b"
)
_VOCAB_RE = re.compile("|".join(re.escape(r) for r in sorted(REASONS, key=len, reverse=True)))

HTTP_PHRASES = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    409: "Conflict",
    410: "Gone",
    413: "Payload Too Large",
    422: "Unprocessable Entity",
    429: "Too Many Requests",
    500: "Internal Server Error",
    501: "Not Implemented",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}
_HTTP_PHRASE_RE = re.compile(
    r"\b([1-5]\d\d)\s+("
    + "|".join(re.escape(p) for p in HTTP_PHRASES.values())
    + r"|OK|Created|No Content|Rate Limit Exceeded)\b"
)
_HTTP_CODE_RE = re.compile(
    r"\bHTTP(?:/\d(?:\.\d)?)?[\s:]+([1-5]\d\d)\b|\b(?:status|status_code|statusCode|http_status|http_code|response_code|response)[\"']?\s*[:=]\s*[\"']?([1-5]\d\d)\b",
    re.I,
)

_EXIT_RE = re.compile(r"\b(?:exit(?:ed)?[ _]?(?:with\s+)?(?:code|status)|ExitCode)[\"']?\s*[:=]?\s*(-?\d{1,3})\b", re.I)

_EXC_RE = re.compile(
    r"(?<![\w.$])((?:[A-Za-z_][\w$]*\.)*[A-Z][\w$]*(?:Exception|Error|Fault|Panic))\b(?:(?::\s+|\s+-\s+)([^\n]{1,220}))?"
)
_EXC_SKIP = {
    "Error",
    "IOError",
    "OSError",
}  # too generic to identify anything on their own, unless they carry a message

_LEVEL_RE = re.compile(
    r"(?:^|[\s\[|\"'])(?:ERROR|FATAL|CRITICAL|SEVERE|PANIC|panic:|level=(?:error|fatal|critical)|\[(?:error|fatal|crit)\]|E\d{4} \d\d:)(?:[\]\s:|\"',]|$)"
)
_JSON_LEVEL_RE = re.compile(r"\"(?:level|severity|lvl)\"\s*:\s*\"(error|fatal|critical|severe|panic)\"", re.I)
_JSON_MSG_RE = re.compile(r"\"(?:message|msg|error|err)\"\s*:\s*\"((?:[^\"\\]|\\.){1,300})\"")

_UNIT = (
    r"%|ms|µs|us|ns|s|sec|secs|seconds|min|mins|minutes|h|hrs|hours|d|days|m|Mi|Gi|Ki|Ti|MiB|GiB|KiB|TiB|MB|GB|KB|TB|B|bytes|"
    r"req/s|reqs/s|rps|qps|ops/s|MB/s|GB/s|KB/s|Mbps|Gbps|cores?|millicores|connections|conns|restarts|msgs|messages|items|jobs"
)
_NUMBER = r"(?:\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?)"
_KV_NUM_RE = re.compile(
    r"\b([A-Za-z][A-Za-z _-]{1,30}):\**\s*\**\s*(\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d{2,}(?:\.\d+)?)(?=\s|$|[),;])"
)
_METRIC_RE = re.compile(
    r"(?<![\w./:])(" + _NUMBER + r"(?:\s?(?:-|–|to)\s?" + _NUMBER + r")?)\+?\s?(" + _UNIT + r")(?![\w/])"
)
_LABEL_BEFORE_RE = re.compile(r"([A-Za-z][\w .()/-]{0,40}?)\s*(?:[:=]|was|is|at|of|to|from)\s*[\"']?$")

_TS_RE = re.compile(
    r"\b\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2}|\s?UTC)?"
    r"|\b(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{1,2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2}(?: [+-]\d{4}| UTC| GMT)?"
    r"|\b\d{1,2}:\d{2}(?::\d{2})? UTC\b"
)
_TS_KEY_RE = re.compile(
    r"(?i)\b(start(?:ed)?(?: time)?|finished|last(?: transition| probe| update)?(?: time)?|changed(?: at)?|deployed|rolled? ?out|created|updated|restarted|killed|since|began|first seen|last seen|spike|at|timestamp|time)\b"
)

_VERSION_RE = re.compile(
    r"(?<![\w.\-])v\d+(?:\.\d+){1,3}(?:-[0-9A-Za-z.]+)?\b|(?i:\bversion)[\"']?\s*[:=]?\s*[\"']?(\d+(?:\.\d+){1,3}(?:-[0-9A-Za-z.]+)?)\b"
)
_SHA_RE = re.compile(r"(?i)\b(?:commit|sha|revision|git[ _-]?sha|rev)\b[\s:=#\"']*([0-9a-f]{7,40})\b")
_SHA40_RE = re.compile(r"(?<![\w-])([0-9a-f]{40})(?![\w-])")
_TAG_SHA_RE = re.compile(r"-([0-9a-f]{7,12})$")

_NAME = r"[a-z0-9](?:[a-z0-9.-]{0,251}[a-z0-9])?"
_POD_GEN_RE = re.compile(r"(?<![\w.-])([a-z0-9](?:[a-z0-9-]{0,60}[a-z0-9])?)-([a-z0-9]{6,10})-([a-z0-9]{5})(?![\w-])")
_KIND_NAME_RE = re.compile(
    r"(?<![\w-])(pods?|po|deployments?(?:\.apps)?|deploy|replicasets?(?:\.apps)?|rs|statefulsets?(?:\.apps)?|sts|daemonsets?(?:\.apps)?|ds|"
    r"nodes?|no|namespaces?|ns|services?|svc|jobs?(?:\.batch)?|cronjobs?(?:\.batch)?|configmaps?|cm|secrets?|ingress(?:es)?|ing|"
    r"persistentvolumeclaims?|pvc|horizontalpodautoscalers?(?:\.autoscaling)?|hpa)/(" + _NAME + r")(?![\w-])",
    re.I,
)
_KUBECTL_RE = re.compile(
    r"kubectl\s+(?:-n\s+\S+\s+)?(?:get|describe|logs|delete|edit|scale|rollout\s+\w+|set\s+\w+|top|cordon|uncordon|drain|exec|port-forward)\s+"
    r"(?:(pods?|po|deployments?|deploy|statefulsets?|sts|daemonsets?|ds|nodes?|no|services?|svc|replicasets?|rs|jobs?|cronjobs?|configmaps?|cm|secrets?|namespaces?|ns|hpa|pvc)\s+)?"
    r"(" + _NAME + r")"
)
_NS_RE = re.compile(
    r"(?:(?<![\w-])-n\s+|--namespace[= ]|\bNamespace:\s+|\bnamespace[\"']?\s*[:=]\s*[\"']?|\bin namespace\s+|\bns/)("
    + _NAME
    + r")\b"
)
_NODE_RE = re.compile(
    r"(?:\bNode:\s+|\bnodeName[\"']?\s*[:=]\s*[\"']?|\bnode/|\bon node\s+|\bnode\s+)([a-z0-9][\w.-]*\d[\w.-]*|[a-z0-9][\w.-]*-node[\w.-]*)(?:/[\d.]+)?"
)
_IMAGE_RE = re.compile(
    r"(?:\bImage:\s+|\bimage[\"']?\s*[:=]\s*[\"']?)([\w.-]+(?::\d+)?(?:/[\w.-]+)*(?::[\w][\w.-]{0,127})?(?:@sha256:[0-9a-f]{12,64})?)"
    r"|(?<![\w./-])((?:[a-z0-9.-]+\.[a-z]{2,}(?::\d+)?/)?[a-z0-9._-]+(?:/[a-z0-9._-]+)*:v?\d[\w.-]{0,60})(?![\w/])"
)
_SLASH_KINDS = {
    "pod": "pod",
    "po": "pod",
    "deployment": "deployment",
    "deploy": "deployment",
    "statefulset": "deployment",
    "sts": "deployment",
    "daemonset": "deployment",
    "ds": "deployment",
    "replicaset": "deployment",
    "rs": "deployment",
    "node": "node",
    "no": "node",
    "namespace": "namespace",
    "ns": "namespace",
}
"""The kind of a `kind/name` reference (singular, short names kept) → the ledger's kind; every
workload counts as a deployment. Other kinds are kept as `resource`."""
_KUBECTL_KINDS = {
    "pod": "pod",
    "pods": "pod",
    "po": "pod",
    "deployment": "deployment",
    "deployments": "deployment",
    "deploy": "deployment",
    "node": "node",
    "nodes": "node",
    "no": "node",
    "namespace": "namespace",
    "namespaces": "namespace",
    "ns": "namespace",
}
"""The resource type of a kubectl command line → the ledger's kind. Other types are kept as `resource`."""
_CONTROLLED_RE = re.compile(r"\bControlled By:\s+(\w+)/(" + _NAME + r")")
_TLD = r"com|net|org|io|dev|app|cloud|local|internal|svc|co|ai|sh|us|uk|de|gov|edu|info|biz|xyz|me|tech|site"
_HOST_RE = re.compile(
    r"(?<![\w@/.-])((?:[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?\.)+(?:" + _TLD + r"))(?::(\d{2,5}))?(?![\w-])"
    r"|(?<![\w.])((?:25[0-5]|2[0-4]\d|1?\d?\d)(?:\.(?:25[0-5]|2[0-4]\d|1?\d?\d)){3})(?::(\d{2,5}))?(?![\w.])",
)
_CONFIG_RE = re.compile(
    r"\b([A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+)\b[\"']?\s*(?:[:=]|->|→|changed from|from)\s*[\"']?([^\s\"'`,;}\]]{1,60})"
)
_ENV_YAML_RE = re.compile(r"name:\s*[\"']?([A-Z][A-Z0-9_]+)[\"']?\s*\n\s*[-+]?\s*value:\s*[\"']?([^\"'\n]{1,60})")
_SOURCE_FILE_RE = re.compile(r"\.(?:go|py|java|js|ts|rb|c|cc|cpp|h|rs|kt|scala|php|cs):\d+$")
_LOG_PREFIX_RE = re.compile(
    r"^\W*(?:\d{4}-\d{2}-\d{2}[T ][\d:.,]+(?:Z|[+-]\d{2}:?\d{2})?|[A-Z][a-z]{2} \d{1,2} [\d:]+)?\s*[\[(]?(?:ERROR|FATAL|CRITICAL|SEVERE|PANIC|E\d{4})[\])]?:?\s*(?:\[[^\]]{1,40}\]\s*)?"
)
_TABLE_SPLIT = re.compile(r"\s{2,}")
_HEADER_RE = re.compile(r"^\s*[A-Z][A-Z0-9_/%-]*(?:\([a-z]+\))?(?:\s{2,}[A-Z][A-Z0-9_/% -]*(?:\([a-z]+\))?){1,}\s*$")

_NAME_STOP = {
    "the",
    "a",
    "an",
    "is",
    "was",
    "has",
    "manifest",
    "history",
    "update",
    "rollout",
    "spec",
    "config",
    "status",
    "of",
    "for",
    "to",
    "and",
    "in",
    "with",
    "that",
    "yaml",
    "json",
    "name",
    "names",
    "it",
    "all",
    "logs",
    "log",
    "events",
    "this",
    "these",
    "those",
    "pod",
    "pods",
    "node",
    "nodes",
    "deployment",
    "deployments",
    "service",
    "services",
    "namespace",
    "namespaces",
    "get",
    "describe",
    "wide",
    "are",
    "be",
    "not",
    "on",
    "at",
    "by",
    "from",
    "as",
    "or",
    "if",
    "then",
    "now",
    "issues",
    "issue",
}


def _clean_message(msg: str) -> str:
    msg = msg.strip().rstrip("\"'`,;)]}").strip()
    return msg


_NORM_RE = re.compile(r"\d+|0x[0-9a-f]+|[0-9a-f]{8,}", re.I)


def _norm(text: str) -> str:
    """Collapse numbers and ids so repeats of one log line count as one fact."""
    return _NORM_RE.sub("#", text.lower())


def _subset(text: str, needles: tuple[str, ...], *, lower: bool = False) -> str:
    """Only the lines of `text` that hold one of `needles` (regexes then scan far less text)."""
    src = text.lower() if lower else text
    if not any(n in src for n in needles):
        return ""
    if len(text) < 2000:
        return text
    out = []
    for line in text.splitlines():
        ln = line.lower() if lower else line
        for n in needles:
            if n in ln:
                out.append(line)
                break
    return "\n".join(out)


def _pod_like(base: str, hash_part: str, suffix: str) -> bool:
    # A generated pod name: the replica-set hash or the random suffix carries a digit, and neither is a word.
    if not any(c.isdigit() for c in hash_part):
        return False
    if hash_part.isdigit() and suffix.isdigit():
        return False
    return True


def _label_before(line: str, start: int) -> str:
    head = line[:start].rstrip()
    m = _LABEL_BEFORE_RE.search(head[-48:])
    if m:
        label = m.group(1).strip(" -*`\"'|([")
        words = label.split()
        return " ".join(words[-3:])[:40]
    words = re.findall(r"[A-Za-z][\w-]*", head[-40:])
    return " ".join(words[-2:])[:40]


class Extractor:
    """Finds facts in one text; stateless and deterministic."""

    def extract(self, text: str, *, args: dict | None = None) -> list[_Found]:
        """Every fact in `text` (and in the tool-call arguments `args`), in order of appearance."""
        out: list[_Found] = []
        if args:
            self._from_args(args, out)
        if not text:
            return out
        table_lines = self._tables(text, out)
        self._identifiers(text, out)
        self._errors(text, out)
        self._values(text, out, table_lines)
        return out

    # -- arguments ------------------------------------------------------------------------------
    def _from_args(self, args: dict, out: list[_Found]) -> None:
        for key, value in args.items():
            if not isinstance(value, str) or not value or len(value) > 200:
                continue
            k = key.lower()
            if k in ("namespace", "ns"):
                out.append(_Found("namespace", value))
            elif k in ("node", "node_name", "nodename"):
                out.append(_Found("node", value))
            elif k in ("pod", "pod_name", "podname"):
                out.append(_Found("pod", value))
            elif k in ("deployment", "deployment_name", "workload"):
                out.append(_Found("deployment", value))
            elif k in ("name", "service", "resource_name") and re.fullmatch(_NAME, value):
                rtype = str(args.get("resource_type") or args.get("kind") or args.get("type") or "").lower()
                kind = {
                    "pods": "pod",
                    "pod": "pod",
                    "deployments": "deployment",
                    "deployment": "deployment",
                    "nodes": "node",
                    "node": "node",
                }.get(rtype)
                if kind:
                    out.append(_Found(kind, value))
                else:
                    out.append(_Found("resource", f"{rtype.rstrip('s') + '/' if rtype else ''}{value}"))
            elif k in ("command", "cmd", "query"):
                self._identifiers(value, out)

    # -- tables ---------------------------------------------------------------------------------
    def _tables(self, text: str, out: list[_Found]) -> set[int]:
        """Read kubectl-style tables: NAME/NODE/NAMESPACE/STATUS/IMAGE columns; returns row line numbers."""
        rows: set[int] = set()
        lines = text.splitlines()
        header: list[str] | None = None
        kind = "resource"
        for i, line in enumerate(lines):
            if _HEADER_RE.match(line):
                header = [h.strip() for h in _TABLE_SPLIT.split(line.strip())]
                if "READY" in header and ("RESTARTS" in header or "STATUS" in header) and "UP-TO-DATE" not in header:
                    kind = "pod"
                elif "UP-TO-DATE" in header or "AVAILABLE" in header:
                    kind = "deployment"
                elif "ROLES" in header or "VERSION" in header and "INTERNAL-IP" in header:
                    kind = "node"
                else:
                    kind = "resource"
                rows.add(i)
                continue
            if header is None:
                continue
            if not line.strip():
                header = None
                continue
            cells = _TABLE_SPLIT.split(line.strip())
            if len(cells) < max(2, len(header) - 3):
                header = None
                continue
            rows.add(i)
            row = dict(zip(header, cells))
            name = row.get("NAME", "")
            if name and re.fullmatch(r"[\w./:-]{1,253}", name) and kind != "resource":
                out.append(_Found(kind, name.split("/", 1)[-1]))
            elif name and "/" in name:
                out.append(_Found("resource", name))
            for col, fk in (("NODE", "node"), ("NAMESPACE", "namespace"), ("IMAGE", "image"), ("IMAGES", "image")):
                v = row.get(col, "")
                if v and v not in ("<none>", "<unknown>") and re.fullmatch(r"[\w./:@-]{1,200}", v):
                    out.append(_Found(fk, v))
            status = row.get("STATUS", "") or row.get("REASON", "")
            if status and status not in ("Running", "Ready", "Active", "Bound", "Succeeded"):
                out.append(_Found("reason", status))
            restarts = row.get("RESTARTS", "")
            if name and restarts and restarts.split(" ")[0] not in ("0", ""):
                out.append(_Found("metric", restarts, label=f"{name} restarts", key=f"{name} restarts"))
            for col, v in row.items():
                if col.startswith(("CPU", "MEMORY")) and v and v[0].isdigit() and name:
                    out.append(_Found("metric", v, label=f"{name} {col.split('(')[0].lower()}", key=f"{name} {col}"))
        return rows

    # -- identifiers ----------------------------------------------------------------------------
    def _identifiers(self, text: str, out: list[_Found]) -> None:
        """Kubernetes objects by the ways output names them (generated pod names, kind/name, kubectl
        arguments, Controlled By, namespace and node fields), then images and hosts."""
        for m in _POD_GEN_RE.finditer(text):
            if _pod_like(m.group(1), m.group(2), m.group(3)):
                out.append(_Found("pod", m.group(0)))
                out.append(_Found("deployment", m.group(1)))
        for m in _KIND_NAME_RE.finditer(_subset(text, ("/",))):
            k = (
                m.group(1).lower().split(".")[0].rstrip("s")
                if m.group(1).lower() not in ("ds", "rs", "ns")
                else m.group(1).lower()
            )
            name = m.group(2)
            kind = _SLASH_KINDS.get(k)
            if kind:
                out.append(_Found(kind, name))
            else:
                out.append(_Found("resource", f"{k}/{name}"))
        for m in _KUBECTL_RE.finditer(_subset(text, ("kubectl",))):
            rtype, name = (m.group(1) or "").lower(), m.group(2)
            if name in _NAME_STOP or name.startswith("-"):
                continue
            kind = _KUBECTL_KINDS.get(rtype)
            if kind:
                out.append(_Found(kind, name))
            elif rtype:
                out.append(_Found("resource", f"{rtype.rstrip('s')}/{name}"))
        for m in _CONTROLLED_RE.finditer(_subset(text, ("Controlled By",))):
            out.append(_Found("deployment", m.group(2)))
        for m in _NS_RE.finditer(_subset(text, ("-n ", "--namespace", "amespace", "ns/"))):
            if m.group(1) not in _NAME_STOP and re.search(r"[a-z]", m.group(1)):
                out.append(_Found("namespace", m.group(1)))
        for m in _NODE_RE.finditer(_subset(text, ("Node:", "nodeName", "node/", "node "))):
            if m.group(1).lower() not in _NAME_STOP:
                out.append(_Found("node", m.group(1)))
        self._images(text, out)
        self._hosts(text, out)

    def _images(self, text: str, out: list[_Found]) -> None:
        """Container images (and the commit a tag carries); a bare name:port is a host, not an image."""
        for m in _IMAGE_RE.finditer(text):
            img = (m.group(1) or m.group(2) or "").rstrip(".,;")
            if not img or len(img) < 3 or ("/" not in img and ":" not in img):
                continue
            if re.fullmatch(r"[\d.:]+", img) or re.match(r"^\d{1,2}:\d{2}", img) or _SOURCE_FILE_RE.search(img):
                continue
            if m.group(2) and "/" not in img and re.search(r":\d+$", img):
                # name:6379 without an image keyword is a host and port far more often than an image
                continue
            out.append(_Found("image", img))
            tag = img.rsplit(":", 1)[-1] if ":" in img.split("/")[-1] else ""
            t = _TAG_SHA_RE.search(tag)
            if t and any(c.isalpha() for c in t.group(1)) and any(c.isdigit() for c in t.group(1)):
                out.append(_Found("sha", t.group(1)))

    def _hosts(self, text: str, out: list[_Found]) -> None:
        """Host names and IP addresses, with their port (a name whose first label is a number is left out)."""
        for m in _HOST_RE.finditer(text):
            host = m.group(1) or m.group(3)
            port = m.group(2) or m.group(4)
            if m.group(1) and "." in host and host.split(".")[0].isdigit():
                continue
            out.append(_Found("host", f"{host}:{port}" if port else host))

    # -- errors ---------------------------------------------------------------------------------
    def _errors(self, text: str, out: list[_Found]) -> None:
        for m in _VOCAB_RE.finditer(text):
            s, e = m.span()
            if (s > 0 and text[s - 1].isalnum()) or (e < len(text) and text[e].isalnum()):
                continue
            out.append(_Found("reason", m.group(0)))
        for m in _REASON_WORD_RE.finditer(text):
            if not m.group(0).endswith(("Exception", "Error")):
                out.append(_Found("reason", m.group(0)))
        for m in _EXIT_RE.finditer(_subset(text, ("exit",), lower=True)):
            out.append(_Found("exit_code", m.group(0).strip(), key=f"exit {m.group(1)}"))
        for m in _HTTP_PHRASE_RE.finditer(text):
            out.append(_Found("http_status", m.group(0), key=m.group(0).lower()))
        for m in _HTTP_CODE_RE.finditer(_subset(text, ("http", "status", "response"), lower=True)):
            out.append(_Found("http_status", m.group(0).strip(), key=m.group(0).strip().lower()))
        for m in _EXC_RE.finditer(text):
            cls, msg = m.group(1), m.group(2)
            if msg:
                before = text[max(0, m.start() - 1) : m.start()]
                if before in "'\"`" and before and before in msg:
                    # quoted in prose: the message ends where the quote closes
                    msg = msg[: msg.index(before)]
                msg = _clean_message(msg)
                out.append(_Found("exception", f"{cls}: {msg}", key=_norm(f"{cls}: {msg}")))
            elif cls not in _EXC_SKIP and "." in cls or (cls not in _EXC_SKIP and len(cls) > 9):
                out.append(_Found("exception", cls))
        for line in text.splitlines():
            if len(line) > 2000:
                line = line[:2000]
            msg = ""
            if _JSON_LEVEL_RE.search(line):
                mm = _JSON_MSG_RE.search(line)
                msg = mm.group(1) if mm else line.strip()
            elif _LEVEL_RE.search(line):
                msg = line.strip()
            if msg:
                # the time is kept as its own fact; the message is what identifies the error
                msg = _LOG_PREFIX_RE.sub("", msg.strip(), count=1)[:200] or msg[:200]
                out.append(_Found("error_line", msg, key=_norm(_TS_RE.sub("", msg))))

    # -- values ---------------------------------------------------------------------------------
    def _values(self, text: str, out: list[_Found], table_rows: set[int]) -> None:
        stamps: list[tuple[str, str, bool]] = []
        metrics: list[_Found] = []
        for i, line in enumerate(text.splitlines()):
            if len(line) > 2000:
                line = line[:2000]
            in_table = i in table_rows
            if not in_table:
                for m in _METRIC_RE.finditer(line):
                    _num, unit = m.group(1), m.group(2)
                    if unit in ("s", "m", "h", "d", "x", "B") and not re.search(
                        r"[:=]\s*$|\b(?:after|took|latency|duration|wait|timeout|cpu|memory|usage)\b",
                        line[: m.start()],
                        re.I,
                    ):
                        # bare '5m'/'30s' are mostly ages and intervals; keep them only with a measuring word before
                        continue
                    label = _label_before(line, m.start())
                    value = m.group(0)
                    metrics.append(_Found("metric", value, label=label, key=f"{label.lower()}|{value}"))
                for m in _KV_NUM_RE.finditer(line):
                    label = m.group(1).strip()[-30:]
                    if label.lower().endswith(("exit code", "restart count", "priority", "port")):
                        continue  # kept as their own kind, or noise
                    metrics.append(_Found("metric", m.group(2), label=label, key=f"{label.lower()}|{m.group(2)}"))
            is_error = bool(_JSON_LEVEL_RE.search(line) or _LEVEL_RE.search(line))
            for m in _TS_RE.finditer(line):
                before = line[: m.start()]
                label = ""
                if _TS_KEY_RE.search(before[-40:]):
                    km = re.search(r"([A-Za-z][\w ]{0,30}?)\s*[:=]?\s*$", before)
                    label = km.group(1).strip() if km and len(km.group(1)) < 30 else "at"
                stamps.append((m.group(0).strip(), label, is_error))
        # A log's timestamps mostly say when a line was printed: keep its first and last, the ones
        # a field names (Started:, changed at) and those on error lines (first of each kind).
        seen_err: set[str] = set()
        for i, (value, label, is_error) in enumerate(stamps):
            keep = bool(label) or i == 0 or i == len(stamps) - 1
            if is_error and not keep:
                msg_key = value[:16]
                keep = msg_key not in seen_err
                seen_err.add(msg_key)
            if keep:
                out.append(_Found("timestamp", value, label=label if label != "at" else "", key=value))
        per_label: dict[str, int] = {}
        kept: list[_Found] = []
        values_seen: set[str] = set()
        for f in metrics:
            if f.value in values_seen:
                continue
            values_seen.add(f.value)
            n = per_label.get(f.label.lower(), 0)
            per_label[f.label.lower()] = n + 1
            # the same measurement repeated down a log: its first values say enough (the output is recallable)
            if n < 3:
                kept.append(f)
        out.extend(kept)
        for m in _VERSION_RE.finditer(text):
            out.append(_Found("version", (m.group(1) or m.group(0)).strip()))
        for m in _SHA_RE.finditer(_subset(text, ("commit", "sha", "rev"), lower=True)):
            sha = m.group(1)
            if not (any(c.isdigit() for c in sha) and any(c.isalpha() for c in sha)):
                continue
            out.append(_Found("sha", sha))
        for m in _SHA40_RE.finditer(text):
            out.append(_Found("sha", m.group(1)))
        for m in _CONFIG_RE.finditer(_subset(text, ("_",))):
            out.append(_Found("config", f"{m.group(1)}={m.group(2)}"))
        for m in _ENV_YAML_RE.finditer(text):
            out.append(_Found("config", f"{m.group(1)}={m.group(2).strip()}"))


@dataclass
class Ledger:
    """Every fact seen in a session, deduplicated, each with the event it came from."""

    facts: dict[tuple[str, str], Fact] = field(default_factory=dict)
    """(kind, key) → fact, in insertion order."""
    version: int = 0
    """Bumped whenever a fact is added or its count changes (render caches key on it)."""
    extractor: Extractor = field(default_factory=Extractor)
    seen: set[int] = field(default_factory=set)
    """Event seqs already read (each event is read once)."""

    def __post_init__(self) -> None:
        self._by_kind: dict[str, list[Fact]] = {}
        self._prefixes: set[str] = set()
        self._lines: dict[str, str] = {}
        self._dirty: set[str] = set()
        for (_kind, _), f in self.facts.items():
            self._index(f)

    def _index(self, f: Fact) -> None:
        self._by_kind.setdefault(f.kind, []).append(f)
        self._dirty.add(f.kind)
        if f.kind == "pod":
            v = f.value
            self._prefixes.update(v[:i] for i, ch in enumerate(v) if ch == "-")
            self._dirty.add("deployment")

    def add(self, text: str, seq: int, *, step: int = 0, args: dict | None = None) -> list[Fact]:
        """Read one event's text (and tool arguments); returns the facts that were new."""
        if seq in self.seen:
            return []
        self.seen.add(seq)
        new: list[Fact] = []
        for f in self.extractor.extract(text, args=args):
            value = f.value.strip()
            if not value or len(value) > 260:
                continue
            key = (f.kind, f.key or value)
            old = self.facts.get(key)
            if old is not None:
                if old.last_seq != seq:
                    old.count += 1
                    old.last_seq = seq
                    if old.kind in _COUNTED or old.kind == "deployment":
                        self._dirty.add(old.kind)
                        self.version += 1
                continue
            fact = Fact(f.kind, value, seq, step, label=f.label, last_seq=seq)
            self.facts[key] = fact
            self._index(fact)
            new.append(fact)
        if new:
            self.version += 1
        return new

    def by_kind(self, kind: str) -> list[Fact]:
        """Facts of one kind, in the order first seen."""
        return list(self._by_kind.get(kind, []))

    def values(self) -> list[str]:
        """Every fact's exact text."""
        return [f.value for f in self.facts.values()]

    def _line(self, kind: str, held: str = "") -> str:
        per_event: dict[int, list[str]] = {}
        for f in self._by_kind.get(kind, []):
            if held and f.value in held:
                continue
            if kind == "deployment" and f.count == 1 and f.value in self._prefixes:
                # A workload name that is only the prefix of a pod already listed adds nothing.
                continue
            per_event.setdefault(f.seq, []).append(f.render())
        if not per_event:
            return ""
        return f"{LABELS[kind]}: " + "; ".join(", ".join(vals) + f" [e{seq}]" for seq, vals in per_event.items())

    def render(self, kinds: Iterable[str] = KINDS) -> str:
        """The compact pinned block: one line per kind, facts grouped by the event they came from.

        Lines are cached per kind; only kinds that changed since the last render are rebuilt.
        """
        for kind in self._dirty:
            self._lines[kind] = self._line(kind)
        self._dirty.clear()
        return "\n".join(line for kind in kinds if (line := self._lines.get(kind)))

    def render_missing(self, held: str, kinds: Iterable[str] = KINDS) -> str:
        """The pinned block for a prompt that already holds `held` verbatim: only the facts whose
        exact text it lacks (a fact the history still shows in full needs no second copy)."""
        return "\n".join(line for kind in kinds if (line := self._line(kind, held)))

    def __len__(self) -> int:
        return len(self.facts)


def extract_facts(text: str) -> list[tuple[str, str]]:
    """(kind, exact text) of every fact in one text: the ledger's extractor on its own."""
    seen: set[tuple[str, str]] = set()
    out: list[tuple[str, str]] = []
    for f in Extractor().extract(text):
        item = (f.kind, f.value.strip())
        if item not in seen:
            seen.add(item)
            out.append(item)
    return out
