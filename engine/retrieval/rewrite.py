"""Deterministic query rewriting: the latest user message plus recent turns → a standalone query.

Cheap by design (regular expressions, no model): strip filler, pick up the entities recently
seen (resource names, services, namespaces, PRs, commits) from user messages, tool-call
arguments and tool outputs, and resolve pronouns ("restart it"), "the other one", and ellipsis
("what about staging?") against them. The context helper keeps a richer fact ledger; this one
only needs enough to make tool retrieval see what the user means.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from engine.retrieval.text import IMPERATIVES, STOPWORDS, terms

K8S_KINDS: dict[str, str] = {
    "deployment": "deployment",
    "deployments": "deployment",
    "deploy": "deployment",
    "deploys": "deployment",
    "pod": "pod",
    "pods": "pod",
    "po": "pod",
    "service": "service",
    "services": "service",
    "svc": "service",
    "statefulset": "statefulset",
    "statefulsets": "statefulset",
    "sts": "statefulset",
    "daemonset": "daemonset",
    "daemonsets": "daemonset",
    "ds": "daemonset",
    "replicaset": "replicaset",
    "rs": "replicaset",
    "job": "job",
    "jobs": "job",
    "cronjob": "cronjob",
    "node": "node",
    "nodes": "node",
    "ingress": "ingress",
    "configmap": "configmap",
    "cm": "configmap",
    "secret": "secret",
    "pvc": "pvc",
    "hpa": "hpa",
    "namespace": "namespace",
    "ns": "namespace",
    "repo": "repo",
    "repository": "repo",
    "branch": "branch",
    "pr": "pr",
    "commit": "commit",
    "cluster": "cluster",
    "host": "host",
    "instance": "instance",
    "database": "database",
    "db": "database",
    "queue": "queue",
    "topic": "topic",
    "bucket": "bucket",
    "alert": "alert",
    "incident": "incident",
    "dashboard": "dashboard",
    "app": "service",
    "application": "service",
    "workload": "deployment",
    "container": "container",
    "volume": "pvc",
    "table": "table",
    "channel": "channel",
}
"""Words that name a kind of thing (and their canonical kind)."""

_NAME = r"[a-z0-9](?:[a-z0-9_.\-]*[a-z0-9])?"
_KIND_SLASH = re.compile(r"\b([a-z]+)/(" + _NAME + r")\b", re.IGNORECASE)
_NS = re.compile(
    r"(?:\bnamespace[s]?\s+|\bns\s+|(?:^|\s)-n\s+|--namespace[= ])("
    + _NAME
    + r")|\b(?:in|on|for)\s+(?:the\s+)?("
    + _NAME
    + r")\s+(?:namespace|ns)\b",
    re.IGNORECASE,
)
_PR = re.compile(r"(?:\bPR\s*#?|\bpull request\s*#?|#)(\d{1,7})\b", re.IGNORECASE)
_SHA = re.compile(r"\b([0-9a-f]{7,40})\b")
_HYPHENATED = re.compile(r"\b([a-z][a-z0-9]*(?:-[a-z0-9]+)+)\b")
_QUOTED = re.compile(r"[`'\"]([A-Za-z0-9][\w.\-/:]{1,80})[`'\"]")
_ENV_WORDS = frozenset(
    {"prod", "production", "staging", "stage", "dev", "development", "qa", "canary", "preprod", "sandbox", "test"}
)

_PRONOUN = re.compile(r"\b(it|its|that|this|them|those|these|same|there|him|her|one)\b", re.IGNORECASE)
_OTHER = re.compile(
    r"\b(the\s+other(?:\s+one)?|the\s+second\s+one|the\s+previous\s+one|the\s+first\s+one)\b", re.IGNORECASE
)
_ELLIPSIS = re.compile(
    r"^\s*(?:ok(?:ay)?[, ]+)?(?:(?:and\s+)?(?:what|how)\s+about|and(?:\s+(?:for|in|on))?|same\s+(?:for|with|in|on)|also\s+(?:for|in|on)|now\s+(?:for|in|on))\s+(?:the\s+)?(.+?)\s*\??\s*$",
    re.IGNORECASE,
)
_WORKLOAD = frozenset(
    {
        "deployment",
        "pod",
        "service",
        "statefulset",
        "daemonset",
        "replicaset",
        "job",
        "cronjob",
        "container",
        "resource",
        "instance",
        "host",
        "database",
        "queue",
    }
)
_PLACE = frozenset({"namespace", "environment", "cluster"})


def _compatible(a: str, b: str) -> bool:
    """Whether an entity of kind `a` can stand in for one of kind `b` ('staging' for 'prod')."""
    return a == b or (a in _WORKLOAD and b in _WORKLOAD) or (a in _PLACE and b in _PLACE)


_FILLER = re.compile(
    r"^\s*(?:(?:hey|hi|hello|ok(?:ay)?|so|um+|uh+|well|alright|right|great|cool|thanks|thank you)[,.!\s]+)+"
    r"|\b(?:can|could|would|will)\s+you\s+(?:please\s+)?|\bplease\b|\bi\s+(?:think|guess|wonder|need|want)\s+(?:you\s+)?(?:to\s+)?"
    r"|\b(?:for me|real quick|quickly|if you can|if possible|when you get a chance)\b"
    r"|[,.!\s]*(?:thanks|thank you|thx|ty)[.!]*\s*$",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Entity:
    """Something the conversation is about: a named resource, namespace, PR, commit…"""

    name: str
    kind: str = "resource"
    """deployment | pod | service | namespace | pr | commit | resource | …"""

    def phrase(self) -> str:
        """How the entity reads in a rewritten query ('deployment payments-api')."""
        if self.kind in ("resource", ""):
            return self.name
        if self.kind == "pr":
            return f"pull request #{self.name}"
        return f"{self.kind} {self.name}"


@dataclass
class Exchange:
    """One piece of recent conversation the rewriter may draw entities from."""

    role: str
    """user | assistant | call (a tool call: name + arguments) | tool (a tool's output)."""
    text: str
    turn: int = 0


@dataclass
class Rewrite:
    """The standalone query and what went into it."""

    query: str
    """Standalone query for retrieval."""
    original: str
    context: str = ""
    """Keywords of the recent conversation (a separate, lower-weight BM25 signal)."""
    resolved: dict[str, str] = field(default_factory=dict)
    """Phrase in the message → the entity it was resolved to."""
    entities: list[Entity] = field(default_factory=list)
    """Entities seen recently, most recent first."""


def extract_entities(text: str, *, from_tool: bool = False) -> list[Entity]:
    """Entities named in `text`, in order of appearance (kind/name, 'namespace x', PRs, SHAs, names)."""
    found: list[tuple[int, Entity]] = []
    taken: list[tuple[int, int]] = []

    def add(pos: int, end: int, ent: Entity) -> None:
        if any(a <= pos < b for a, b in taken):
            return
        taken.append((pos, end))
        found.append((pos, ent))

    for m in _KIND_SLASH.finditer(text):
        kind = K8S_KINDS.get(m.group(1).lower())
        if kind:
            add(m.start(), m.end(), Entity(m.group(2), kind))
    for m in _NS.finditer(text):
        name = m.group(1) or m.group(2)
        if name and name.lower() not in STOPWORDS:
            add(m.start(), m.end(), Entity(name, "namespace"))
    for m in _PR.finditer(text):
        add(m.start(), m.end(), Entity(m.group(1), "pr"))
    # "the payments deployment" / "deployment payments-api": a kind word next to a name.
    words = list(re.finditer(r"[A-Za-z0-9][\w.\-]*", text))
    for i, w in enumerate(words):
        kind = K8S_KINDS.get(w.group(0).lower())
        if not kind:
            continue
        cand = []
        if i + 1 < len(words):
            cand.append(words[i + 1])
        if i > 0:
            cand.append(words[i - 1])
        for c in cand:
            name = c.group(0).rstrip(".")
            low = name.lower()
            if low in STOPWORDS or low in K8S_KINDS or len(low) < 2 or not re.fullmatch(_NAME, low):
                continue
            if not ("-" in name or any(ch.isdigit() for ch in name) or name == low and c.start() < w.start()):
                continue
            # "payments-api pods" names the app that owns the pods, not one pod.
            plural_after = (
                c.start() < w.start() and w.group(0).lower().endswith("s") and kind not in ("namespace", "service")
            )
            add(min(c.start(), w.start()), max(c.end(), w.end()), Entity(name, "resource" if plural_after else kind))
            break
    for m in _QUOTED.finditer(text):
        add(m.start(), m.end(), Entity(m.group(1)))
    for m in _HYPHENATED.finditer(text):
        name = m.group(1)
        if len(name) > 3 and not from_tool or len(name) > 5:
            add(m.start(), m.end(), Entity(name))
    for m in _SHA.finditer(text):
        s = m.group(1)
        if any(ch.isalpha() for ch in s) and any(ch.isdigit() for ch in s):
            add(m.start(), m.end(), Entity(s, "commit"))
    for m in re.finditer(r"\b(" + "|".join(sorted(_ENV_WORDS)) + r")\b", text, re.IGNORECASE):
        add(m.start(), m.end(), Entity(m.group(1).lower(), "environment"))
    found.sort(key=lambda pe: pe[0])
    return [e for _, e in found]


def _call_entities(text: str) -> list[Entity]:
    """Entities in a tool call's JSON arguments: argument names say the kind."""
    try:
        payload = json.loads(text)
    except ValueError:
        return extract_entities(text)
    args = payload.get("arguments", payload) if isinstance(payload, dict) else {}
    out = []
    if isinstance(args, dict):
        for key, val in args.items():
            if not isinstance(val, (str, int)) or isinstance(val, bool):
                continue
            v = str(val)
            if not v or len(v) > 80 or any(ch in v for ch in " =,{}[]"):
                continue
            kind = K8S_KINDS.get(key.lower().removesuffix("_name").removesuffix("name").strip("_"), "resource")
            if key.lower() in ("name", "resource", "target"):
                kind = K8S_KINDS.get(str(args.get("kind", args.get("resource_type", ""))).lower(), "resource")
            out.append(Entity(v, kind))
    return out


def entities_of(history: list[Exchange]) -> list[Entity]:
    """Entities of the recent conversation, most recent first (user and call mentions first within a turn)."""
    ranked: list[tuple[int, int, int, int, Entity]] = []
    pri = {"user": 3, "call": 2, "assistant": 1, "tool": 0}
    for pos, ex in enumerate(history):
        if ex.role == "call":
            ents = _call_entities(ex.text)
        else:
            ents = extract_entities(ex.text[:4000], from_tool=ex.role == "tool")
            if ex.role == "tool":
                ents = ents[:12]
        for j, e in enumerate(ents):
            ranked.append((ex.turn, pri.get(ex.role, 0), -pos, -j, e))
    # Newest turn first; within a turn what the user named, then call arguments, then outputs.
    ranked.sort(key=lambda r: r[:4], reverse=True)
    out: list[Entity] = []
    seen: set[str] = set()
    for *_, e in ranked:
        key = e.name.lower()
        if key not in seen:
            seen.add(key)
            out.append(e)
    return out


def strip_filler(text: str) -> str:
    """Remove greetings, politeness and hedges that carry no retrieval signal."""
    prev = None
    out = text
    while prev != out:
        prev = out
        out = _FILLER.sub(" ", out)
    return re.sub(r"\s+", " ", out).strip(" ,")


class Rewriter:
    """Rewrites the latest message into a standalone query using the last few turns."""

    def __init__(self, *, recent_turns: int = 3, context_terms: int = 24) -> None:
        self.recent_turns = recent_turns
        """How many earlier turns feed entities and context keywords."""
        self.context_terms = context_terms
        """At most this many keywords of recent conversation are kept."""

    def rewrite(self, text: str, history: list[Exchange] | None = None) -> Rewrite:
        """The standalone form of `text` given earlier exchanges (oldest first)."""
        history = [h for h in (history or []) if h.text]
        if history:
            last_turn = max(h.turn for h in history)
            history = [h for h in history if h.turn > last_turn - self.recent_turns]
        clean = strip_filler(text) or text.strip()
        own = extract_entities(clean)
        recent = entities_of(history)
        sources = _sources(history)
        resolved: dict[str, str] = {}
        query = clean

        prev_user = next((h.text for h in reversed(history) if h.role == "user"), "")
        m = _ELLIPSIS.match(clean)
        if m and prev_user and _swaps_in(m.group(1)):
            # "what about staging?" → the previous request with the new entity swapped in.
            new = extract_entities(m.group(1)) or [Entity(m.group(1).strip(" ?"))]
            base = strip_filler(prev_user)
            swapped = False
            olds = extract_entities(base)
            for old in sorted(olds, key=lambda o: o.kind != new[0].kind):
                if _compatible(new[0].kind, old.kind):
                    base = re.sub(re.escape(old.name), new[0].name, base, count=1)
                    swapped = True
                    break
            query = base if swapped else f"{base} {new[0].phrase()}"
            resolved[m.group(0).strip()] = new[0].phrase()
        else:
            om = _OTHER.search(clean)
            if om and recent:
                focus = recent[0]
                alt = next((e for e in recent[1:] if e.kind == focus.kind and e.name != focus.name), None)
                alt = alt or next(
                    (e for e in recent[1:] if _compatible(e.kind, focus.kind) and e.name != focus.name), None
                )
                if alt is not None:
                    query = clean[: om.start()] + alt.phrase() + clean[om.end() :]
                    resolved[om.group(0)] = alt.phrase()
            elif (one := _list_one(clean, sources)) is not None:
                query, phrase = one
                resolved[phrase] = query
            elif recent and not own:
                pm = _PRONOUN.search(clean)
                if pm:
                    focus = _pronoun_focus(history, recent)
                    query = clean[: pm.start()] + focus.phrase() + clean[pm.end() :]
                    resolved[pm.group(0)] = focus.phrase()
                elif len(terms(clean)) <= 3:
                    # Terse follow-ups ("logs?", "restart") act on what the last turn was about.
                    query = f"{clean} {recent[0].phrase()}"
                    resolved["(ellipsis)"] = recent[0].phrase()
        query = _type_mentions(query, recent, sources)
        # Context keywords: words of recent user messages and tool names called (not outputs:
        # they are long and drown the signal).
        ctx_terms: list[str] = []
        for h in reversed(history):
            if h.role == "user":
                ctx_terms.extend(terms(h.text))
            elif h.role == "call":
                try:
                    ctx_terms.extend(terms(str(json.loads(h.text).get("name", ""))))
                except (ValueError, AttributeError):
                    pass
        ctx = " ".join(list(dict.fromkeys(ctx_terms))[: self.context_terms])
        return Rewrite(
            query=re.sub(r"\s+", " ", query).strip(),
            original=text,
            context=ctx,
            resolved=resolved,
            entities=own + recent,
        )


def _swaps_in(tail: str) -> bool:
    """Whether an ellipsis tail names another thing for the previous request ("and prod?"). "and
    is redis-master up?" is a question of its own, "and kick metrics-server" a command of its own,
    and "and the pods?" asks about a kind of thing, not another one of the same: the new turn's
    query keeps its own words then, and the conversation only adds the entity."""
    words = tail.split()
    if not words or len(words) > 3 or words[0].lower() in STOPWORDS | IMPERATIVES:
        return False
    return not all(w.strip("?.,!").lower() in K8S_KINDS for w in words)


def _pronoun_focus(history: list[Exchange], recent: list[Entity]) -> Entity:
    """What "it" stands for: the newest turn's first thing that is not a place. In "there's a pod
    in ns batch called migrate-once-x7" → "what's it printing", "it" is the pod, not the namespace
    named first; a place is the answer only when the turn named nothing else."""
    newest = max((h.turn for h in history), default=0)
    latest = {e.name.lower() for e in entities_of([h for h in history if h.turn == newest])}
    return next(
        (e for e in recent if e.name.lower() in latest and e.kind not in _PLACE and e.kind != "environment"), recent[0]
    )


_MENTION = re.compile(r"(?<![\w.\-/#])([a-z0-9][\w.\-]*[a-z0-9])(?![\w\-/])", re.IGNORECASE)
_LIST_ONE = re.compile(r"\bthe\s+([a-z0-9][\w\-]*)\s+one\b", re.IGNORECASE)


def _noun_of(tool: str) -> str:
    """The resource a listing tool enumerates, from its name: github.list_deployments →
    deployment (a get or describe output is about one thing and names many others)."""
    words = re.split(r"[._]", tool.lower())
    if len(words) < 3 or words[1] != "list":
        return ""
    noun = words[-1]
    return noun[:-1] if noun.endswith("s") and not noun.endswith("ss") else noun


def _sources(history: list[Exchange]) -> list[tuple[str, str]]:
    """(tool output, the resource its tool lists), newest first, for turns that made one call."""
    calls: dict[int, list[str]] = {}
    for h in history:
        if h.role == "call":
            try:
                calls.setdefault(h.turn, []).append(str(json.loads(h.text).get("name", "")))
            except (ValueError, AttributeError):
                calls.setdefault(h.turn, []).append("")
    out = []
    for h in reversed(history):
        names = calls.get(h.turn, [])
        noun = _noun_of(names[0]) if h.role == "tool" and len(names) == 1 else ""
        if noun:
            out.append((h.text, noun))
    return out


def _source_noun(word: str, sources: list[tuple[str, str]]) -> str:
    """The resource of the newest listing whose output names `word` ('' if none)."""
    pat = re.compile(r"(?<![\w\-])" + re.escape(word) + r"(?![\w\-])", re.IGNORECASE)
    return next((noun for text, noun in sources if pat.search(text)), "")


def _list_one(text: str, sources: list[tuple[str, str]]) -> tuple[str, str] | None:
    """'the disk one' → ('the disk monitor …', 'the disk one') when the newest listing that
    mentions 'disk' listed monitors; None when there is no such phrase or listing."""
    lm = _LIST_ONE.search(text)
    if not lm or lm.group(1).lower() in STOPWORDS:
        return None
    noun = _source_noun(lm.group(1), sources)
    if not noun:
        return None
    return text[: lm.end() - 3] + noun + text[lm.end() :], lm.group(0)


def _type_mentions(query: str, recent: list[Entity], sources: list[tuple[str, str]]) -> str:
    """Give an opaque id the user repeats from earlier turns its kind: 'is ip-10-3-4-5 alive' →
    'is node ip-10-3-4-5 alive' when an output said 'node ip-10-3-4-5'; 'did 90233 go green' →
    'did deployment 90233 go green' when 90233 came out of list_deployments. Only ids with a digit:
    a worded name ('redis-master') already tells the embedder what it is."""
    kinds = {e.name.lower(): e.kind for e in recent if e.kind not in ("resource", "", "environment")}
    out: list[str] = []
    last = 0
    for m in _MENTION.finditer(query):
        word = m.group(1)
        low = word.lower()
        if not any(ch.isdigit() for ch in word) or len(word) < 3 or low in K8S_KINDS:
            continue
        before = query[: m.start()].split()
        if before and K8S_KINDS.get(before[-1].lower().strip(",:;(")):
            continue  # already typed: "node ip-10-3-4-5"
        kind = kinds.get(low) or _source_noun(word, sources)
        if kind and kind not in low:
            out.append(query[last : m.start()] + f"{kind} ")
            last = m.start()
    return "".join(out) + query[last:]


def exchanges_from_events(
    events: list[Any], *, before_turn: int | None = None, output_chars: int = 2000
) -> list[Exchange]:
    """The session's user messages, tool calls and tool outputs as Exchanges (oldest first)."""
    out: list[Exchange] = []
    for e in events:
        t = getattr(e, "turn", 0)
        if before_turn is not None and t >= before_turn:
            continue
        kind = getattr(e, "kind", "")
        if kind == "user-message":
            out.append(Exchange("user", e.text, t))
        elif kind == "assistant-message":
            if e.text:
                out.append(Exchange("assistant", e.text[:output_chars], t))
            for c in e.tool_calls:
                out.append(
                    Exchange("call", json.dumps({"name": c.get("name"), "arguments": c.get("arguments") or {}}), t)
                )
        elif kind == "tool-call-finished":
            out.append(Exchange("tool", (e.output or e.summary or "")[:output_chars], t))
    return out
