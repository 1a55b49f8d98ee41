"""Policy files and decisions: what may run, after whose approval, decided without the model.

A policy file (YAML) has `rules` matched in order (first match wins), `defaults` by risk, `roles`
(named groups of users) and `trusted_packs` (packs whose writes may run after a confirmation;
any other pack's writes need approval: a new pack enters as require_approval). The org file is
read first, then a per-user override file whose rules apply before the org's (except org rules
marked `final: true`, such as a change freeze, which come before everything).

`decide(policy, action, args, user, now)` is a pure function. A policy file with a mistake
fails to load with file, line and field; the engine then runs with `Policy.safest()`, under
which everything that writes needs approval. Nothing here asks the model anything.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

Outcome = Literal["allow", "confirm", "approve", "block"]
RISK_ORDER = {"read": 0, "write": 1, "dangerous": 2}
_ALIASES = {
    "require_approval": "approve",
    "require-approval": "approve",
    "approval": "approve",
    "deny": "block",
    "run": "allow",
}
_DAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


class PolicyError(Exception):
    """A policy file that cannot be used, located by file, line and field."""

    def __init__(self, path: str, line: int | None, fld: str, message: str) -> None:
        self.path, self.line, self.field, self.message = path, line, fld, message
        where = f"{path}:{line}" if line else path
        super().__init__(f"{where}: {fld}: {message}" if fld else f"{where}: {message}")


# -- the file format ------------------------------------------------------------------------


def _as_list(v: Any) -> Any:
    return [v] if isinstance(v, (str, int)) else v


class Window(BaseModel):
    """A time window: weekdays and/or hours in a timezone, and/or an absolute from/until range."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    days: list[str] | None = None
    """mon..sun, or ranges like mon-fri."""
    hours: str | None = None
    """HH:MM-HH:MM (may wrap past midnight)."""
    tz: str = "UTC"
    start: dt.datetime | None = Field(None, alias="from")
    until: dt.datetime | None = None

    @field_validator("days", mode="before")
    @classmethod
    def _days(cls, v: Any) -> Any:
        if v is None:
            return v
        out: list[str] = []
        for item in _as_list(v):
            s = str(item).lower().strip()
            if "-" in s:
                a, b = s.split("-", 1)
                if a not in _DAYS or b not in _DAYS:
                    raise ValueError(f"unknown day range {item!r} (use mon..sun)")
                i, j = _DAYS.index(a), _DAYS.index(b)
                out.extend(_DAYS[i : j + 1] if i <= j else _DAYS[i:] + _DAYS[: j + 1])
            elif s[:3] in _DAYS:
                out.append(s[:3])
            else:
                raise ValueError(f"unknown day {item!r} (use mon..sun)")
        return out

    @field_validator("hours")
    @classmethod
    def _hours(cls, v: str | None) -> str | None:
        if v is not None and not re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d-([01]\d|2[0-4]):[0-5]\d", v.strip()):
            raise ValueError(f"hours must look like 09:00-17:30, got {v!r}")
        return v

    @field_validator("tz")
    @classmethod
    def _tz(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown timezone {v!r}") from None
        return v

    def contains(self, now: dt.datetime) -> bool:
        """True when `now` (aware) falls in the window."""
        if now.tzinfo is None:
            now = now.replace(tzinfo=dt.UTC)
        if self.start is not None and now < _aware(self.start):
            return False
        if self.until is not None and now >= _aware(self.until):
            return False
        local = now.astimezone(ZoneInfo(self.tz))
        if self.days is not None and _DAYS[local.weekday()] not in self.days:
            return False
        if self.hours:
            a, b = self.hours.split("-")
            minute = local.hour * 60 + local.minute
            lo = int(a[:2]) * 60 + int(a[3:])
            hi = int(b[:2]) * 60 + int(b[3:])
            inside = lo <= minute < hi if lo <= hi else (minute >= lo or minute < hi)
            if not inside:
                return False
        return True


def _aware(t: dt.datetime) -> dt.datetime:
    return t if t.tzinfo else t.replace(tzinfo=dt.UTC)


class Match(BaseModel):
    """What a rule applies to; every given field must match (lists: any of; strings: globs)."""

    model_config = ConfigDict(extra="forbid")

    pack: list[str] | None = None
    action: list[str] | None = None
    risk: list[Literal["read", "write", "dangerous", "unknown"]] | None = None
    namespace: list[str] | None = None
    """Namespaces the action touches (a rule on a namespace also covers the namespace object itself)."""
    kind: list[str] | None = None
    """Kinds of the objects the action touches (pod, deployment, namespace ...)."""
    name: list[str] | None = None
    """Names of the objects the action touches."""
    context: list[str] | None = None
    users: list[str] | None = None
    """Users (or role:NAME) the rule applies to."""
    when: list[Window] | None = None
    """The rule applies inside any of these windows (change freezes, office hours)."""
    args: dict[str, Any] | None = None
    """Argument values (globs for strings) that must all match."""

    @field_validator("pack", "action", "risk", "namespace", "kind", "name", "context", "users", mode="before")
    @classmethod
    def _listify(cls, v: Any) -> Any:
        return _as_list(v)

    @field_validator("when", mode="before")
    @classmethod
    def _windows(cls, v: Any) -> Any:
        return [v] if isinstance(v, dict) else v


class Rule(BaseModel):
    """One policy rule: a match and a decision."""

    model_config = ConfigDict(extra="forbid")

    id: str
    match: Match = Field(default_factory=Match)
    decision: Outcome
    reason: str = ""
    approvers: list[str] | None = None
    """Who may approve (users or role:NAME); anyone else is blocked."""
    final: bool = False
    """Org rules only: evaluated before user overrides (freezes, hard blocks)."""

    @field_validator("decision", mode="before")
    @classmethod
    def _alias(cls, v: Any) -> Any:
        if isinstance(v, str):
            return _ALIASES.get(v.strip().lower(), v.strip().lower())
        return v

    @field_validator("approvers", mode="before")
    @classmethod
    def _listify(cls, v: Any) -> Any:
        return _as_list(v)


class Defaults(BaseModel):
    """Decisions by risk when no rule matches."""

    model_config = ConfigDict(extra="forbid")

    read: Outcome = "allow"
    write: Outcome = "confirm"
    dangerous: Outcome = "approve"
    unknown: Outcome = "approve"

    @field_validator("read", "write", "dangerous", "unknown", mode="before")
    @classmethod
    def _alias(cls, v: Any) -> Any:
        return _ALIASES.get(v.strip().lower(), v.strip().lower()) if isinstance(v, str) else v


class PolicyFile(BaseModel):
    """The YAML file as written."""

    model_config = ConfigDict(extra="forbid")

    version: Literal[1] = 1
    defaults: Defaults = Field(default_factory=Defaults)
    roles: dict[str, list[str]] = Field(default_factory=dict)
    trusted_packs: list[str] = Field(default_factory=list)
    rules: list[Rule] = Field(default_factory=list)
    read_only: bool = False
    """An org's switch: no write or dangerous action runs, whatever the rules or a user's config say."""

    @model_validator(mode="after")
    def _unique(self) -> PolicyFile:
        seen: set[str] = set()
        for r in self.rules:
            if r.id in seen:
                raise ValueError(f"duplicate rule id {r.id!r}")
            seen.add(r.id)
        return self


@dataclass
class Policy:
    """The effective policy: org file plus one user's overrides."""

    org: PolicyFile = field(default_factory=PolicyFile)
    user_rules: list[Rule] = field(default_factory=list)
    source: str = "built-in defaults"
    """Where it came from, for people."""
    errors: list[str] = field(default_factory=list)
    """Load errors; non-empty means the safest default is in force."""

    @classmethod
    def safest(cls, errors: list[str] | None = None) -> Policy:
        """Reads run; everything that writes, or is unknown, needs explicit approval."""
        pf = PolicyFile(defaults=Defaults(read="allow", write="approve", dangerous="approve", unknown="approve"))
        return cls(org=pf, source="safest default (policy failed to load)", errors=list(errors or []))

    @classmethod
    def permissive(cls, writes: Outcome = "allow") -> Policy:
        """For scripts and tests: reads run, and writes get `writes` (allow, or confirm/approve
        to exercise the approval path)."""
        pf = PolicyFile(defaults=Defaults(read="allow", write=writes, dangerous=writes, unknown=writes))
        return cls(org=pf, source="permissive (scripts and tests)")

    def ordered(self) -> list[tuple[str, Rule]]:
        """Rules in evaluation order, each with its origin."""
        finals = [("org", r) for r in self.org.rules if r.final]
        rest = [("org", r) for r in self.org.rules if not r.final]
        return finals + [("user", r) for r in self.user_rules] + rest


# -- loading --------------------------------------------------------------------------------


def _line_of(node: Any, loc: tuple[Any, ...]) -> int | None:
    """The 1-based line of a field path in a composed YAML node tree."""
    line = node.start_mark.line + 1 if node is not None else None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            nxt = None
            for k, v in node.value:
                if k.value == part:
                    nxt = (k, v)
                    break
            if nxt is None:
                return line
            line = nxt[0].start_mark.line + 1
            node = nxt[1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            return line
    return line


def _field_path(loc: tuple[Any, ...]) -> str:
    out = ""
    for p in loc:
        out += f"[{p}]" if isinstance(p, int) else (("." if out else "") + str(p))
    return out


def parse_policy(text: str, path: str = "<policy>") -> PolicyFile:
    """Parse and validate policy YAML; raises PolicyError with file, line and field."""
    try:
        node = yaml.compose(text)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise PolicyError(
            path, mark.line + 1 if mark else None, "", f"not valid YAML: {getattr(exc, 'problem', exc)}"
        ) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise PolicyError(path, 1, "", "a policy file is a mapping with version, defaults, roles, trusted_packs, rules")
    try:
        return PolicyFile.model_validate(data)
    except ValidationError as exc:
        # A typo shows up twice (unknown field + missing field): report the typo, it is the cause.
        errs = sorted(exc.errors(), key=lambda e: {"extra_forbidden": 0, "literal_error": 1}.get(e.get("type", ""), 2))
        err = errs[0]
        loc = tuple(p for p in err.get("loc", ()) if not (isinstance(p, str) and p.startswith("function-")))
        # pydantic appends the union/literal branch to loc; keep the path that exists in the file
        msg = err.get("msg", "invalid")
        if err.get("type") == "extra_forbidden":
            parent = _model_at(loc[:-1])
            names = [f.alias or n for n, f in parent.model_fields.items()] if parent else []
            import difflib

            near = difflib.get_close_matches(str(loc[-1]), names, n=1) if loc else []
            msg = (
                "unknown field"
                + (f", did you mean {near[0]!r}?" if near else "")
                + (f" (valid: {', '.join(names)})" if names else "")
            )
        elif (
            err.get("type") == "literal_error"
            and loc
            and loc[-1] in ("decision", "read", "write", "dangerous", "unknown")
        ):
            msg = f"bad decision {err.get('input')!r} (use allow, confirm, approve (require_approval) or block)"
        more = len(exc.errors()) - 1
        if more:
            msg += f" (and {more} more problem{'s' if more > 1 else ''})"
        raise PolicyError(path, _line_of(node, loc), _field_path(loc), msg) from None


def _model_at(loc: tuple[Any, ...]) -> type[BaseModel] | None:
    model: type[BaseModel] | None = PolicyFile
    for p in loc:
        if isinstance(p, int) or model is None:
            continue
        f = model.model_fields.get(p)
        if f is None:
            return None
        ann = f.annotation
        model = None
        for cand in (Rule, Match, Window, Defaults):
            if ann is cand or cand.__name__ in str(ann):
                model = cand
                break
    return model


def _read(path: Path) -> str:
    """A policy file's text, or a PolicyError naming the file and what to fix."""
    from engine.config import UnreadableFile, read_text_file

    try:
        return read_text_file(path)
    except UnreadableFile as exc:
        raise PolicyError(str(path), exc.line, "", exc.reason) from None


def load_policy(org_path: str | Path | None = None, user_path: str | Path | None = None) -> Policy:
    """Load the org file and a user's overrides; raises PolicyError on any mistake."""
    org = PolicyFile()
    source = "built-in defaults"
    if org_path is not None:
        p = Path(org_path)
        org = parse_policy(_read(p), str(p))
        source = str(p)
    user_rules: list[Rule] = []
    if user_path is not None and Path(user_path).exists():
        up = Path(user_path)
        uf = parse_policy(_read(up), str(up))
        for r in uf.rules:
            if r.final:
                raise PolicyError(str(up), None, f"rules[{r.id}].final", "only the org policy may mark rules final")
        user_rules = uf.rules
        source += f" + {up}"
    return Policy(org=org, user_rules=user_rules, source=source)


def load_policy_safe(org_path: str | Path | None = None, user_path: str | Path | None = None) -> Policy:
    """Like load_policy, but a broken file yields `Policy.safest()` carrying the error (never a silent allow)."""
    try:
        return load_policy(org_path, user_path)
    except PolicyError as exc:
        return Policy.safest([str(exc)])


# -- deciding -------------------------------------------------------------------------------


# -- what a call touches ----------------------------------------------------------------------

_DASHES = "\u2010\u2011\u2012\u2013\u2014\u2015\u2043\u2212\u02d7\ufe58\ufe63\uff0d\u058a\u1400\u2e3a\u2e3b"
_INVISIBLE = "\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180e\u200b\u200c\u200d\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2060\u2061\u2062\u2063\u2064\ufeff"
# Letters that render as Latin ones (Unicode's confusables.txt, the lowercase Latin targets;
# upper case is folded first).
_LOOKALIKES = {
    "a": "\u0430\u03b1\u0251",
    "c": "\u0441\u03f2\u217d",
    "d": "\u0501\u217e",
    "e": "\u0435\u0454\u04bd",
    "h": "\u04bb\u0570",
    "i": "\u0456\u03b9\u0131\u0269\u2170",
    "j": "\u0458\u03f3",
    "k": "\u03ba\u043a",
    "l": "\u04cf\u0399\u217c\u01c0",
    "m": "\u217f",
    "n": "\u0578\u057c",
    "o": "\u043e\u03bf\u0585\u03c3",
    "p": "\u0440\u03c1",
    "q": "\u051b\u0566",
    "s": "\u0455",
    "t": "\u03c4",
    "u": "\u03c5\u057d",
    "v": "\u03bd\u0475\u2174",
    "w": "\u051d\u0461",
    "x": "\u0445\u03c7\u2179",
    "y": "\u0443\u03b3\u04af",
    "z": "\u1d22",
}
_FOLD = (
    {ord(c): "-" for c in _DASHES}
    | {ord(c): None for c in _INVISIBLE}
    | {ord(c): latin for latin, cs in _LOOKALIKES.items() for c in cs}
)


def fold(text: str) -> str:
    """Text as a policy compares it: NFKC, case-folded, look-alike letters and dashes folded to
    ASCII and invisible characters removed, so `KUBE-SYSTEM` and `kube‐system` (U+2010) are `kube-system`."""
    once = unicodedata.normalize("NFKC", text).casefold().translate(_FOLD)
    return unicodedata.normalize("NFKC", once)


NAMESPACE_KINDS = frozenset({"namespace", "namespaces", "ns"})
"""Names of the Namespace kind: deleting one touches every object in it."""
CLUSTER_KINDS = frozenset(
    {
        "node",
        "nodes",
        "no",
        "persistentvolume",
        "persistentvolumes",
        "pv",
        "storageclass",
        "storageclasses",
        "sc",
        "clusterrole",
        "clusterroles",
        "clusterrolebinding",
        "clusterrolebindings",
        "customresourcedefinition",
        "customresourcedefinitions",
        "crd",
        "crds",
        "ingressclass",
        "ingressclasses",
        "priorityclass",
        "priorityclasses",
        "pc",
        "mutatingwebhookconfiguration",
        "mutatingwebhookconfigurations",
        "validatingwebhookconfiguration",
        "validatingwebhookconfigurations",
        "apiservice",
        "apiservices",
        "csidriver",
        "csidrivers",
        "csinode",
        "csinodes",
        "runtimeclass",
        "runtimeclasses",
        "volumeattachment",
        "volumeattachments",
    }
    | NAMESPACE_KINDS
)
"""Kubernetes kinds that live in no namespace (a `namespace` argument means nothing to them)."""
_NAME_KEYS = ("name", "resource_name", "object")


@dataclass(frozen=True)
class Target:
    """One object a call touches, folded for matching."""

    kind: str = ""
    name: str = ""
    namespace: str | None = None
    """None for cluster-scoped kinds."""


def _filled(template: Any, args: dict[str, Any]) -> str:
    if not isinstance(template, str):
        return ""
    out = re.sub(
        r"\{([A-Za-z_][A-Za-z0-9_]*)\}",
        lambda m: str(args.get(m.group(1)) if args.get(m.group(1)) is not None else ""),
        template,
    )
    return fold(out)


def resolve_targets(
    action_name: str, args: dict[str, Any], declared: Mapping[str, Any] | None, default_namespace: str | None = None
) -> tuple[Target, ...]:
    """What a call touches: the action's declared `touches` (templates over its parameters) filled
    from the arguments after defaults and coercion, else read from the usual argument names
    (kind/resource, name, namespace) and the action's noun (delete_pod → pod, drain_node → node)."""
    noun = fold(action_name.rsplit(".", 1)[-1]).partition("_")[2]
    if declared:
        kind = _filled(declared.get("kind"), args)
        name = _filled(declared.get("name"), args)
        ns_raw = _filled(declared.get("namespace"), args) if declared.get("namespace") else ""
    else:
        kind = fold(str(args.get("kind") or args.get("resource") or args.get("resource_type") or noun or ""))
        name = next((fold(str(args[k])) for k in (*_NAME_KEYS, noun) if k and isinstance(args.get(k), (str, int))), "")
        ns_raw = fold(str(args["namespace"])) if isinstance(args.get("namespace"), str) else ""
    if not (kind or name or ns_raw):
        return ()
    namespace: str | None = ns_raw or (fold(default_namespace) if default_namespace else None)
    if kind in CLUSTER_KINDS:
        namespace = None
    return (Target(kind, name, namespace),)


def touched_namespaces(action: Action, args: dict[str, Any]) -> set[str]:
    """Every namespace a call reaches: its targets' namespaces and any namespace it touches as an object."""
    if not action.targets:
        ns = args.get("namespace") if isinstance(args.get("namespace"), str) else action.namespace
        return {fold(ns)} if ns else set()
    out: set[str] = set()
    for t in action.targets:
        if t.namespace:
            out.add(t.namespace)
        if t.kind in NAMESPACE_KINDS and t.name:
            out.add(t.name)
    return out


@dataclass(frozen=True)
class Action:
    """What is about to run, as the policy sees it."""

    name: str
    pack: str = ""
    risk: str = "unknown"
    """Declared risk, already raised by `effective_risk` where the tool's metadata says more."""
    namespace: str | None = None
    context: str | None = None
    targets: tuple[Target, ...] = ()
    """The objects the call touches (resolve_targets); empty: only `namespace` is known."""


@dataclass(frozen=True)
class Decision:
    """The outcome for one call, and the rule that made it."""

    outcome: Outcome
    rule_id: str
    reason: str
    approvers: tuple[str, ...] = ()
    """Who may approve when outcome is approve (empty: the session's user)."""
    risk: str = "unknown"


WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
"""HTTP methods that change state (DELETE is dangerous, the others write)."""
# The action's leading verb (delete_pod, drain_node, scale_deployment): only the first word counts,
# so reads such as rollout_history or label_values stay reads.
_DANGEROUS_VERBS = {
    "delete",
    "destroy",
    "drop",
    "purge",
    "terminate",
    "kill",
    "evict",
    "drain",
    "wipe",
    "truncate",
    "remove",
    "uninstall",
    "rm",
}
_WRITE_VERBS = {
    "create",
    "update",
    "patch",
    "put",
    "post",
    "scale",
    "restart",
    "apply",
    "cordon",
    "uncordon",
    "deploy",
    "rollback",
    "set",
    "edit",
    "replace",
    "pause",
    "resume",
    "suspend",
    "merge",
    "rerun",
    "cancel",
}


def effective_risk(name: str, declared: str, method: str | None = None) -> str:
    """The higher of the declared risk and what the HTTP method it sends and the action's verb imply."""
    risk = declared if declared in RISK_ORDER else "unknown"
    implied = "read"
    method = (method or "").upper()
    if method == "DELETE":
        implied = "dangerous"
    elif method in WRITE_METHODS:
        implied = "write"
    verb = re.split(r"[_\-]|(?<=[a-z])(?=[A-Z])", name.rsplit(".", 1)[-1])[0].lower()
    if verb in _DANGEROUS_VERBS:
        implied = "dangerous"
    elif verb in _WRITE_VERBS and implied == "read":
        implied = "write"
    if risk == "unknown":
        return "unknown" if implied == "read" else implied
    return risk if RISK_ORDER[risk] >= RISK_ORDER[implied] else implied


def _glob_any(value: str | None, patterns: list[str]) -> bool:
    if value is None:
        return False
    return any(fnmatch.fnmatchcase(value, p) for p in patterns)


def _folded_any(values: set[str], patterns: list[str]) -> bool:
    folded = [fold(p) for p in patterns]
    return any(fnmatch.fnmatchcase(v, p) for v in values for p in folded)


def _expand(names: list[str], roles: dict[str, list[str]]) -> set[str]:
    out: set[str] = set()
    for n in names:
        if n.startswith("role:"):
            out.update(roles.get(n[5:], []))
        else:
            out.add(n)
    return out


def _matches(
    rule: Rule, action: Action, args: dict[str, Any], user: str, now: dt.datetime, roles: dict[str, list[str]]
) -> bool:
    m = rule.match
    if m.pack is not None and not _glob_any(action.pack, m.pack):
        return False
    if m.action is not None and not (
        _glob_any(action.name, m.action) or _glob_any(action.name.rsplit(".", 1)[-1], m.action)
    ):
        return False
    if m.risk is not None and action.risk not in m.risk:
        return False
    if m.namespace is not None and not _folded_any(touched_namespaces(action, args), m.namespace):
        return False
    if m.kind is not None and not _folded_any({t.kind for t in action.targets if t.kind}, m.kind):
        return False
    if m.name is not None and not _folded_any({t.name for t in action.targets if t.name}, m.name):
        return False
    if m.context is not None and not _glob_any(action.context, m.context):
        return False
    if m.users is not None and user not in _expand(m.users, roles):
        return False
    if m.when is not None and not any(w.contains(now) for w in m.when):
        return False
    if m.args is not None:
        for k, want in m.args.items():
            got = args.get(k)
            if isinstance(want, str) and isinstance(got, str):
                if not fnmatch.fnmatchcase(fold(got), fold(want)):
                    return False
            elif got != want:
                return False
    return True


def decide(
    policy: Policy, action: Action | str, args: dict[str, Any], user: str, now: dt.datetime, *, routed: bool = False
) -> Decision:
    """The decision for one call: a pure function of the policy, the action, its arguments, the user and the time.

    `routed`: approval requests reach other people (a server's faces), so a rule's approvers need
    not include the user who asks; alone at a terminal, a call only others may approve is blocked."""
    if isinstance(action, str):
        pack = action.split(".", 1)[0] if "." in action else ""
        action = Action(name=action, pack=pack, risk="unknown")
    roles = policy.org.roles
    for origin, rule in policy.ordered():
        if not _matches(rule, action, args, user, now, roles):
            continue
        reason = rule.reason or f"{origin} policy rule {rule.id}"
        if rule.decision == "approve" and rule.approvers:
            allowed = _expand(rule.approvers, roles)
            if user not in allowed and not routed:
                names = ", ".join(sorted(rule.approvers))
                return Decision(
                    "block",
                    rule.id,
                    f"{reason}; only {names} may approve this, not {user}",
                    tuple(sorted(allowed)),
                    action.risk,
                )
            return Decision("approve", rule.id, reason, tuple(sorted(allowed)), action.risk)
        return Decision(rule.decision, rule.id, reason, (), action.risk)
    d = policy.org.defaults
    risk = action.risk if action.risk in RISK_ORDER else "unknown"
    outcome: Outcome = getattr(d, risk)
    why = "safest default: " + policy.errors[0] if policy.errors else f"default for {risk} actions"
    if risk == "unknown":
        why = "unknown risk: approval required" + (f" ({policy.errors[0]})" if policy.errors else "")
    if (
        risk == "write"
        and outcome in ("allow", "confirm")
        and action.pack
        and not _glob_any(action.pack, policy.org.trusted_packs)
    ):
        return Decision(
            "approve",
            "default:new-pack-writes",
            f"writes of pack {action.pack!r} need approval until a policy lists it in trusted_packs",
            (),
            risk,
        )
    return Decision(outcome, f"default:{risk}", why, (), risk)
