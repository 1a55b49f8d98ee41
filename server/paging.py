"""What a page starts: the notification's shapes (Alertmanager's webhook v4, a generic JSON one),
the `Page` each becomes, the investigation it opens with its playbook's first reads, and the
rules that keep one investigation per alert group.

```
firing,   group never paged, or its session opened ≥ WINDOW_S ago and resolved → a new session:
          the page as its opening user message, the matched playbook's first reads before the
          model's first step, watchers told (Hub.announce), the first turn run as the pager
firing,   the group's session still open                 → deduplicated: new alerts noted in it
firing,   the group's session resolved < WINDOW_S ago    → rate-limited: attached to that session
resolved, the group's session open                       → the session marked resolved, watchers told
```

The group key → session row (`page_groups`) and the session's status live in the store, so a
restarted server finds the group again. The HTTP side (authentication, bodies, audit) is
server/hooks.py.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import time
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import parse_qs, urlsplit

from pydantic import BaseModel, ConfigDict, Field

from engine import events as ev
from engine.store import PageGroup
from engine.textsafe import display_safe
from server.pages import Page

if TYPE_CHECKING:
    from server.hub import Hub, LiveSession
    from server.identity import Identity
    from skills.playbooks import Playbook

WINDOW_S = 15 * 60.0
"""At most one new session per alert group in this many seconds; later firings attach to the last."""
MAX_KEY = 2_000
"""Characters of a group key."""
READS = 3
"""Playbook checks run before the model's first step (as many as a matched runbook brings)."""
LISTED_ALERTS = 20
"""Alerts of a group written out in the page's message (the rest are counted)."""

Status = Literal["firing", "resolved"]
Labels = dict[str, str]


# -- the shapes senders post ------------------------------------------------------------------------
class AmAlert(BaseModel):
    """One alert of an Alertmanager notification."""

    model_config = ConfigDict(extra="ignore")

    status: Status
    labels: Labels
    annotations: Labels = Field(default_factory=dict)
    startsAt: str = ""
    endsAt: str = ""
    generatorURL: str = ""
    fingerprint: str = ""


class AlertmanagerBody(BaseModel):
    """Alertmanager's webhook notification, version 4 (its `webhook_config`); fields it may add later
    are ignored."""

    model_config = ConfigDict(extra="ignore")

    version: Literal["4"]
    groupKey: str = Field(min_length=1, max_length=MAX_KEY)
    truncatedAlerts: int = Field(default=0, ge=0)
    status: Status
    receiver: str = ""
    groupLabels: Labels = Field(default_factory=dict)
    commonLabels: Labels = Field(default_factory=dict)
    commonAnnotations: Labels = Field(default_factory=dict)
    externalURL: str = ""
    alerts: list[AmAlert] = Field(min_length=1)


class GenericBody(BaseModel):
    """The generic page (PagerDuty-, Opsgenie-style senders): one alert group per `key`."""

    model_config = ConfigDict(extra="forbid")

    key: str = Field(min_length=1, max_length=MAX_KEY)
    """Deduplicates: one investigation per key."""
    status: Status = "firing"
    title: str = Field(min_length=1, max_length=500)
    labels: Labels = Field(default_factory=dict)
    annotations: Labels = Field(default_factory=dict)
    runbook_url: str = Field(default="", max_length=2_000)
    source: str = Field(default="", max_length=64)
    """Who sent it (pagerduty, opsgenie, ...): shown with the page."""
    url: str = Field(default="", max_length=2_000)
    """A link back to the sender's incident."""


def _runbook(annotations: Labels) -> str:
    return annotations.get("runbook_url") or annotations.get("runbook") or ""


def from_alertmanager(body: AlertmanagerBody, now: float | None = None) -> Page:
    """The page of an Alertmanager notification: its common labels and annotations, each alert."""
    first = body.alerts[0]
    labels = body.commonLabels or first.labels
    annotations = body.commonAnnotations or first.annotations
    name = labels.get("alertname") or first.labels.get("alertname") or "alert"
    summary = annotations.get("summary") or annotations.get("message") or annotations.get("description") or ""
    return Page(
        source="alertmanager",
        group_key=body.groupKey,
        status=body.status,
        title=_line(f"{name}: {summary}" if summary else name),
        labels=dict(labels),
        annotations=dict(annotations),
        runbook_url=_runbook(annotations)
        or next((_runbook(a.annotations) for a in body.alerts if _runbook(a.annotations)), ""),
        alerts=tuple(
            {**a.model_dump(), "receiver": body.receiver, "externalURL": body.externalURL} for a in body.alerts
        ),
        received_at=now or time.time(),
    )


def from_generic(body: GenericBody, now: float | None = None) -> Page:
    """The page of a generic notification (its key prefixed `generic:`, apart from Alertmanager's)."""
    alert = {
        "status": body.status,
        "labels": dict(body.labels),
        "annotations": dict(body.annotations),
        "fingerprint": body.key,
        "generatorURL": body.url,
        "sender": body.source,
    }
    return Page(
        source="generic",
        group_key="generic:" + body.key,
        status=body.status,
        title=_line(body.title),
        labels=dict(body.labels),
        annotations=dict(body.annotations),
        runbook_url=body.runbook_url or _runbook(body.annotations),
        alerts=(alert,),
        received_at=now or time.time(),
    )


def _line(text: str, limit: int = 200) -> str:
    text = " ".join(display_safe(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


# -- the playbook and its first reads ----------------------------------------------------------------
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_STOP = frozenset(
    "the a an of for to in on at is are be by or and with from after out not has have was its kube".split()
)


def words(text: str) -> set[str]:
    """The stems of a text's words, CamelCase split (KubeContainerOOMKilled → container, oom, kill)
    and whole ("oomkilled")."""
    out: set[str] = set()
    for raw in re.findall(r"[A-Za-z0-9]+", text):
        for w in {raw.lower(), *_CAMEL.sub(" ", raw).lower().split()}:
            if w not in _STOP and len(w) > 1:
                out.add(_stem(w))
    return out


def _stem(w: str) -> str:
    for suffix in ("ing", "ed", "s", "y"):
        if w.endswith(suffix) and len(w) - len(suffix) >= 3:
            return w[: -len(suffix)]
    return w


def match_playbook(page: Page, books: list[Playbook]) -> Playbook | None:
    """The playbook for a page: the one a `playbook` label or annotation names, else the one whose
    name, title, symptoms and keywords share the most (rarest-weighted) words with the alert name
    (counted twice), its summary and description; None when nothing is shared."""
    named = page.labels.get("playbook") or page.annotations.get("playbook")
    for b in books:
        if named and b.name == named:
            return b
    first = page.alerts[0] if page.alerts else {}
    alertname = page.labels.get("alertname") or (first.get("labels") or {}).get("alertname") or page.title
    text = " ".join(
        [page.title, page.annotations.get("summary", ""), page.annotations.get("description", "")]
        + [v for k, v in page.labels.items() if k in ("reason", "container", "job", "service")]
    )
    terms = {b.name: words(" ".join([b.name, b.title, *b.symptoms, *b.keywords])) for b in books}
    seen: dict[str, int] = {}
    for t in terms.values():
        for w in t:
            seen[w] = seen.get(w, 0) + 1
    strong, weak = words(alertname), words(text)
    best, score = None, 0.0
    for b in books:
        s = sum(2.0 / seen[w] for w in strong & terms[b.name]) + sum(
            1.0 / seen[w] for w in (weak - strong) & terms[b.name]
        )
        if s > score:
            best, score = b, s
    return best if score >= 1.0 else None


NAME_LABELS: dict[str, tuple[str, ...]] = {
    "kubernetes.describe_pod": ("pod",),
    "kubernetes.get_pod_logs": ("pod",),
    "kubernetes.rollout_history": ("deployment", "@pod"),
    "kubernetes.describe_deployment": ("deployment", "@pod"),
    "kubernetes.describe_service": ("service",),
    "kubernetes.describe_node": ("node",),
    "queue.get_queue": ("queue",),
    "tls.check_kubernetes_tls_secret": ("secret",),
}
"""Which label names a tool's `name` argument (`@pod`: the deployment a pod's name belongs to)."""
_POD_HASH = re.compile(r"-[a-z0-9]{6,10}-[a-z0-9]{5}$")
_HINT = re.compile(r"`([a-z_]+):\s*([^`]+)`")


def check_lines(book: Playbook) -> list[tuple[str, str]]:
    """(tool, the line naming it) for each check of the playbook, in order, once each."""
    m = re.search(r"^##\s*Checks[^\n]*\n(.*?)(?=^##\s|\Z)", book.body, re.M | re.S)
    out: dict[str, str] = {}
    for line in re.split(r"\n(?=\s*\d+\.)", m.group(1) if m else ""):
        for tool in re.findall(r"`([a-z][a-z0-9_-]*\.[a-z][a-z0-9_]*)`", line):
            out.setdefault(tool, line)
    return list(out.items())


def _value(param: str, tool: str, labels: Labels, expr: str) -> Any:
    if param == "namespace":
        return labels.get("namespace") or labels.get("exported_namespace")
    if param == "container":
        return labels.get("container")
    if param == "query":
        return expr or None
    if param == "name":
        for label in NAME_LABELS.get(tool, ()):
            if label == "@pod" and labels.get("pod"):
                return _POD_HASH.sub("", labels["pod"])
            if labels.get(label):
                return labels[label]
    return None


def triage_reads(page: Page, book: Playbook | None, tools: dict[str, Any]) -> list[dict[str, Any]]:
    """The playbook's first READS checks that the session has as read tools and whose required
    arguments the alert's labels give (namespace, pod, container, deployment, service, the rule's
    PromQL from its generatorURL), with the hints the check's line spells (`previous: true`)."""
    if book is None:
        return []
    first = page.alerts[0] if page.alerts else {}
    labels = {**(first.get("labels") or {}), **page.labels}
    expr = _expr(str(first.get("generatorURL") or ""))
    reads: list[dict[str, Any]] = []
    for name, line in check_lines(book):
        tool = tools.get(name)
        if tool is None or getattr(tool, "risk", "read") != "read" or len(reads) >= READS:
            continue
        props = (tool.parameters or {}).get("properties") or {}
        args = {p: v for p in props if (v := _value(p, name, labels, expr)) is not None}
        for key, raw in _HINT.findall(line):
            if key in props:
                args[key] = {"true": True, "false": False}.get(raw.strip(), raw.strip())
        if all(r in args for r in (tool.parameters or {}).get("required") or []):
            reads.append({"name": name, "arguments": args})
    return reads


def _expr(url: str) -> str:
    """The PromQL of a Prometheus alert's generatorURL (…/graph?g0.expr=…), '' for anything else."""
    try:
        return parse_qs(urlsplit(url).query).get("g0.expr", [""])[0]
    except ValueError:
        return ""


# -- what the investigation is told -------------------------------------------------------------------
def opening_text(page: Page, book: Playbook | None) -> str:
    """The page as the session's opening user message: clearly a page, its labels, annotations,
    runbook and alerts, and what to do."""
    first = page.alerts[0] if page.alerts else {}
    sender = {"alertmanager": "Alertmanager", "generic": first.get("sender") or "a pager"}.get(page.source, page.source)
    receiver = f", receiver {first['receiver']}" if first.get("receiver") else ""
    n = len(page.alerts)
    lines = [f"PAGE from {sender}{receiver}: {page.title} ({page.status.upper()}, {n} alert{'s' * (n != 1)})"]
    for key in ("summary", "description", "message"):
        if page.annotations.get(key):
            lines.append(f"{key.capitalize()}: {page.annotations[key]}")
    if page.runbook_url:
        lines.append(f"Runbook: {page.runbook_url}")
    lines.append("Labels: " + _pairs(page.labels))
    rest = {k: v for k, v in page.annotations.items() if k not in ("summary", "description", "message", "runbook_url")}
    if rest:
        lines.append("Annotations: " + _pairs(rest))
    lines += _alert_lines(page)
    if book is not None:
        lines.append(f"Playbook: {book.name} ({book.title}); its first checks ran before your first step.")
    lines.append(
        "This page is unconfirmed until a read shows its condition; if no read confirms it, say so plainly. "
        "Investigate: find the root cause with evidence, then propose the smallest safe fix as a call of a tool "
        "you can run, or say that no available action can make it and what a person must do."
    )
    return display_safe("\n".join(lines))[:19_000]


def _pairs(d: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(d.items())) or "(none)"


def _alert_lines(page: Page) -> list[str]:
    out = []
    for a in page.alerts[:LISTED_ALERTS]:
        own = {k: v for k, v in (a.get("labels") or {}).items() if page.labels.get(k) != v}
        since = f" since {a['startsAt']}" if a.get("startsAt") else ""
        link = f" ({a['generatorURL']})" if a.get("generatorURL") else ""
        out.append(f"- {a.get('status', page.status)}: {_pairs(own) if own else 'the group labels'}{since}{link}")
    if len(page.alerts) > LISTED_ALERTS:
        out.append(f"- … and {len(page.alerts) - LISTED_ALERTS} more")
    return ["Alerts:", *out] if out else []


def fingerprints(page: Page) -> list[str]:
    """What identifies each alert of the page (Alertmanager's fingerprint, else its labels)."""
    return [str(a.get("fingerprint") or _pairs(a.get("labels") or {})) for a in page.alerts]


# -- the desk: one investigation per group ----------------------------------------------------------------
@dataclass
class Outcome:
    """What a page did, for the sender's response and the audit."""

    outcome: str
    """opened | deduplicated | rate-limited | resolved | already-resolved | unknown-group"""
    session_id: str = ""
    message: str = ""
    playbook: str = ""
    reads: list[dict[str, Any]] = field(default_factory=list)

    @property
    def http_status(self) -> int:
        return 201 if self.outcome == "opened" else 200

    def json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"outcome": self.outcome, "session": self.session_id, "message": self.message}
        if self.outcome == "opened":
            out |= {"playbook": self.playbook or None, "reads": [r["name"] for r in self.reads]}
        return out


def _now() -> str:
    return ev.utcnow().isoformat()


def _age_s(iso: str) -> float:
    try:
        then = dt.datetime.fromisoformat(iso)
    except ValueError:
        return float("inf")
    if then.tzinfo is None:
        then = then.replace(tzinfo=dt.UTC)
    return (ev.utcnow() - then).total_seconds()


class PageDesk:
    """Receives pages for a hub: one investigation per alert group, rate-limited per group."""

    def __init__(self, hub: Hub, window_s: float = WINDOW_S, books: list[Playbook] | None = None) -> None:
        self.hub = hub
        self.window_s = window_s
        """At most one new session per group in this many seconds."""
        self._books = books
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}
        """Each group's lock and how many pages hold or wait for it (gone when none do)."""

    @property
    def books(self) -> list[Playbook]:
        """The playbooks pages are matched against (the built-in ones, loaded once)."""
        if self._books is None:
            from skills.playbooks import load_playbooks

            self._books = load_playbooks()[0]
        return self._books

    async def receive(self, page: Page, who: Identity) -> Outcome:
        """Open, find, attach or resolve the group's investigation (one page of a group at a time)."""
        key = page.group_key
        lock, users = self._locks.get(key) or (asyncio.Lock(), 0)
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                group = await self.hub.store.page_group(key)
                if page.status == "resolved":
                    return await self._resolve(page, group)
                if group is not None and group.status == "firing":
                    return await self._dedup(page, group)
                if group is not None and _age_s(group.opened_at) < self.window_s:
                    return await self._attach(page, group)
                return await self._open(page, who, group)
        finally:
            lock, users = self._locks[key]
            if users <= 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)

    async def _open(self, page: Page, who: Identity, before: PageGroup | None) -> Outcome:
        live = await self.hub.create()
        book = match_playbook(page, self.books)
        reads = triage_reads(page, book, getattr(live.session.toolbox, "tools", {}))
        live.session.first_turn_reads(reads, page.labels.get("namespace") or "")
        now = _now()
        await self.hub.store.put_page_group(
            PageGroup(page.group_key, live.id, page.source, "firing", now, now, fingerprints(page), 1)
        )
        await self.hub.store.set_status(live.id, "open", page.title)
        await self.hub.announce(live, page)
        await self.hub.send(live, who, opening_text(page, book))
        again = f" (the group's last session, {before.session_id}, was resolved)" if before else ""
        return Outcome(
            "opened",
            live.id,
            f"opened session {live.id} for {page.title}{again}",
            book.name if book else "",
            reads,
        )

    async def _dedup(self, page: Page, group: PageGroup) -> Outcome:
        fresh = [f for f in fingerprints(page) if f not in group.fingerprints]
        group.fingerprints += fresh
        group.pages += 1
        group.updated_at = _now()
        await self.hub.store.put_page_group(group)
        if fresh:
            n = len(fresh)
            new = [a for a in page.alerts if str(a.get("fingerprint") or _pairs(a.get("labels") or {})) in fresh]
            text = f"Page update ({page.title}): {n} new alert{'s' * (n != 1)} in the group:\n" + "\n".join(
                _alert_lines(replace(page, alerts=tuple(new)))[1:]
            )
            await self._notice(group.session_id, text)
        note = f"{len(fresh)} new alerts noted" if fresh else "no new alerts"
        return Outcome("deduplicated", group.session_id, f"the group's session {group.session_id} is open; {note}")

    async def _attach(self, page: Page, group: PageGroup) -> Outcome:
        minutes = _age_s(group.opened_at) / 60
        group.status, group.updated_at, group.pages = "firing", _now(), group.pages + 1
        group.fingerprints += [f for f in fingerprints(page) if f not in group.fingerprints]
        await self.hub.store.put_page_group(group)
        await self.hub.store.set_status(group.session_id, "open", page.title)
        limit = f"at most one new session per alert group every {self.window_s / 60:g} minutes"
        await self._notice(
            group.session_id,
            f"Page fired again ({page.title}) {minutes:.0f} min after this investigation opened and after it "
            f"resolved: attached here instead of a new session ({limit}).",
        )
        return Outcome(
            "rate-limited", group.session_id, f"fired again within the window: attached to {group.session_id} ({limit})"
        )

    async def _resolve(self, page: Page, group: PageGroup | None) -> Outcome:
        if group is None:
            return Outcome("unknown-group", "", "no session was opened for this group; nothing to resolve")
        if group.status == "resolved":
            return Outcome("already-resolved", group.session_id, f"session {group.session_id} is already resolved")
        group.status, group.updated_at, group.pages = "resolved", _now(), group.pages + 1
        await self.hub.store.put_page_group(group)
        await self.hub.store.set_status(group.session_id, "resolved", page.title)
        live = await self.hub.get(group.session_id)
        await self._notice(
            group.session_id,
            f"Page resolved ({page.title}): every alert of the group is resolved; the session is marked resolved.",
        )
        await self.hub.announce(live, page)
        return Outcome("resolved", group.session_id, f"session {group.session_id} marked resolved")

    async def _notice(self, session_id: str, text: str) -> None:
        live: LiveSession = await self.hub.get(session_id)
        await live.session.emit(ev.Notice, text=display_safe(text)[:4_000], level="warning", topic="page")
