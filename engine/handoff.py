"""The handoff: a session told the way a reader wants it at shift change or in a postmortem.

```
stored events ─┐
               ├─▶ build() ─▶ Handoff (JSON-ready: to_json()) ─▶ markdown()
audit rows ────┘   (the undo each write recorded)
```

What was asked (the alert or question), the answer so far, the findings with their evidence
lines, what changed (with the approval's dry-run diff, who approved it, and the undo the write
recorded), a timeline of who asked, read, proposed, approved or denied what and why, what is
still unknown, and what the context dropped. Built from the session's record alone, so every
face (the `lantern handoff` command, the console's key, a chat thread) shows the same thing.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from engine import events as ev

UNDO_MARK = "; undo: "
"""Where an audit execution row's detail carries the write's own way back (engine.dispatch)."""

Who = Literal["user", "agent", "engine", "policy", "approver"]
"""Who did it: the person asking, the model, the engine's own reads, the policy, a person approving."""


class Finding(BaseModel):
    """A failure signal a check read, with the line that shows it."""

    cause: str
    object: str
    weight: float
    evidence: str
    tool: str
    """The read whose output showed it."""
    at: dt.datetime


class Change(BaseModel):
    """A write or dangerous call: asked for, decided, and (when it ran) what it changed."""

    tool: str
    arguments: dict[str, Any]
    risk: str
    at: dt.datetime
    status: str
    """ran (ok or partial), error, denied, blocked, refused, pending (no answer when the record ends)."""
    decided_by: str = ""
    """Who approved or denied it ('' when the policy let it run or nobody answered)."""
    reason: str = ""
    """Why the policy asked."""
    answer: str = ""
    """The approver's reason."""
    rule: str = ""
    touches: str = ""
    rollback: str = ""
    """The way back the pack declares."""
    undo: str = ""
    """The way back the write itself recorded from the values it replaced (the audit)."""
    diff: str = ""
    """The dry run the approver saw: a unified diff of the live objects against the result."""
    output: str = ""
    """The first line of what it printed."""


class Entry(BaseModel):
    """One line of the timeline."""

    at: dt.datetime
    turn: int
    who: Who
    by: str = ""
    """The person's name, when the record has it (an approver)."""
    what: str
    """asked, read, found, proposed, approval-asked, approved, denied, changed, answered, stopped, dropped, error."""
    text: str
    details: list[str] = Field(default_factory=list)
    """Evidence lines, the approval's diff, a tool's partial note."""


class Dropped(BaseModel):
    """Something the context compaction removed or shortened (recallable by `ref`)."""

    ref: str
    what: str
    action: str
    from_step: int
    tokens: int


class Handoff(BaseModel):
    """The whole handoff of one session, JSON-ready."""

    session_id: str
    model: str = ""
    context: str | None = None
    namespace: str | None = None
    started: dt.datetime | None = None
    last_event: dt.datetime | None = None
    asked: str = ""
    """The alert or the first question."""
    answer: str = ""
    """The agent's latest answer ('' when no turn answered)."""
    findings: list[Finding] = Field(default_factory=list)
    changes: list[Change] = Field(default_factory=list)
    timeline: list[Entry] = Field(default_factory=list)
    unknown: list[str] = Field(default_factory=list)
    """What the record leaves open: reads that failed, writes not run, turns that stopped unanswered."""
    dropped: list[Dropped] = Field(default_factory=list)

    def to_json(self) -> str:
        """The handoff as indented JSON."""
        return self.model_dump_json(indent=1)


# -- building -------------------------------------------------------------------------------------

_FINDING = re.compile(r"^(?P<cause>\S+) on (?P<object>\S+) \(weight (?P<weight>[\d.]+)\): (?P<evidence>.*)$", re.DOTALL)


def _first(text: str, n: int = 160) -> str:
    line = next((ln.strip() for ln in (text or "").splitlines() if ln.strip()), "")
    return line if len(line) <= n else line[: n - 1] + "…"


def _call(tool: str, args: dict[str, Any]) -> str:
    inner = ", ".join(f"{k}={json.dumps(v, ensure_ascii=False, default=str)}" for k, v in args.items())
    return f"{tool}({inner})"


def _undo_of(rows: list[Any]) -> dict[str, list[str]]:
    """call hash → the undo lines its execution rows recorded, in order."""
    out: dict[str, list[str]] = {}
    for r in rows:
        if r.kind == "execution" and UNDO_MARK in r.detail:
            out.setdefault(r.call_hash, []).append(
                r.detail.split(UNDO_MARK, 1)[1].split("; approved by ", 1)[0].strip()
            )
    return out


def build(events: list[Any], audit_rows: list[Any] | None = None) -> Handoff:
    """The handoff of one session from its events (and its audit rows, for the undo each write recorded)."""
    r = _Reader(events, list(audit_rows or []))
    for e in events:
        read = r.readers.get(type(e))
        if read is not None:
            read(e)
    return r.finish()


class _Reader:
    """Reads a session's events in order into a Handoff: one small reader per event class."""

    def __init__(self, events: list[Any], rows: list[Any]) -> None:
        first, last = (events[0], events[-1]) if events else (None, None)
        self.h = Handoff(
            session_id=getattr(first, "session_id", ""),
            started=getattr(first, "at", None),
            last_event=getattr(last, "at", None),
        )
        self.undo = _undo_of(rows)
        self.user = next((r.user for r in rows if r.user), "")
        """Who the session acted for (the audit's user)."""
        self.proposed: dict[str, dict[str, Any]] = {}
        """call id → the arguments the model asked with (a call refused before it started has no other)."""
        self.started: dict[str, ev.ToolCallStarted] = {}
        self.asked: dict[str, ev.ApprovalRequested] = {}
        self.changes: dict[str, Change] = {}
        self.engine_step = False
        """The latest assistant message is the engine's own (step 0: the triage opening, follow-ups)."""
        self.readers: dict[type, Any] = {
            ev.SessionStarted: self.session_started,
            ev.UserMessage: self.user_message,
            ev.AssistantMessage: self.assistant_message,
            ev.ToolCallStarted: self.call_started,
            ev.ApprovalRequested: self.approval_requested,
            ev.ApprovalResolved: self.approval_resolved,
            ev.ToolCallFinished: self.call_finished,
            ev.PlanProposed: self.plan_proposed,
            ev.CriticVerdict: self.critic_verdict,
            ev.DetailDropped: self.detail_dropped,
            ev.ErrorEvent: self.error,
            ev.TurnFinished: self.turn_finished,
        }

    def add(self, e: Any, who: Who, what: str, text: str, details: list[str] | None = None, by: str = "") -> None:
        self.h.timeline.append(Entry(at=e.at, turn=e.turn, who=who, by=by, what=what, text=text, details=details or []))

    def session_started(self, e: ev.SessionStarted) -> None:
        self.h.model, self.h.context, self.h.namespace = (
            e.model,
            e.context or self.h.context,
            e.namespace or self.h.namespace,
        )

    def user_message(self, e: ev.UserMessage) -> None:
        self.h.asked = self.h.asked or e.text
        self.add(e, "user", "asked", e.text, by=self.user)

    def assistant_message(self, e: ev.AssistantMessage) -> None:
        self.engine_step = e.step == 0
        self.proposed.update({str(c.get("id")): dict(c.get("arguments") or {}) for c in e.tool_calls})
        if e.tool_calls and e.text.strip():
            self.add(e, "engine" if self.engine_step else "agent", "said", _first(e.text, 400))
        elif not e.tool_calls and e.text.strip():
            self.h.answer = e.text.strip()
            self.add(e, "agent", "answered", self.h.answer)

    def change(self, e: ev.ToolCallStarted | ev.ApprovalRequested) -> Change:
        return self.changes.setdefault(
            e.call_id, Change(tool=e.tool, arguments=dict(e.arguments), risk=e.risk, at=e.at, status="pending")
        )

    def call_started(self, e: ev.ToolCallStarted) -> None:
        self.started[e.call_id] = e
        if e.risk != "read":
            self.change(e)

    def approval_requested(self, e: ev.ApprovalRequested) -> None:
        self.asked[e.call_id] = e
        c = self.change(e)
        c.reason, c.rule, c.touches, c.rollback, c.diff = e.reason, e.rule, e.touches, e.rollback, e.preview or c.diff
        details = [f"touches: {e.touches}"] if e.touches else []
        details += [f"way back: {e.rollback}"] if e.rollback else []
        details += [e.preview_note] if e.preview_note else []
        self.add(
            e,
            "policy",
            "approval-asked",
            f"{_call(e.tool, e.arguments)} ({e.risk}, rule {e.rule})" + (f": {e.reason}" if e.reason else ""),
            details,
        )

    def approval_resolved(self, e: ev.ApprovalResolved) -> None:
        c = self.changes.get(e.call_id)
        if c is not None:
            c.decided_by, c.answer = e.by, e.reason
            c.status = c.status if e.approved else "denied"
        req = self.asked.get(e.call_id)
        what = _call(req.tool, req.arguments) if req else e.call_id
        self.add(
            e, "approver", "approved" if e.approved else "denied", what + (f": {e.reason}" if e.reason else ""), by=e.by
        )

    def call_finished(self, e: ev.ToolCallFinished) -> None:
        from engine.policy.audit import call_hash

        start = self.started.get(e.call_id)
        args = dict(start.arguments) if start else self.proposed.get(e.call_id, {})
        undo = self.undo.get(call_hash(e.tool, args)) if start else None
        _finished(self.h, e, args, self.changes.get(e.call_id), undo, self.engine_step)

    def plan_proposed(self, e: ev.PlanProposed) -> None:
        steps = [_call(str(s.get("tool", "")), dict(s.get("arguments") or {})) for s in e.steps]
        self.add(e, "agent", "proposed", e.rationale or "a plan", steps)

    def critic_verdict(self, e: ev.CriticVerdict) -> None:
        self.add(e, "engine", "critic", f"plan critic: {e.verdict}", list(e.findings))

    def detail_dropped(self, e: ev.DetailDropped) -> None:
        self.h.dropped.append(Dropped(ref=e.ref, what=e.what, action=e.action, from_step=e.from_step, tokens=e.tokens))

    def error(self, e: ev.ErrorEvent) -> None:
        self.add(e, "engine", "error", f"{e.code}: {e.message}")

    def turn_finished(self, e: ev.TurnFinished) -> None:
        if e.reason != "answered":
            self.add(e, "engine", "stopped", f"turn {e.turn} ended without an answer: {e.reason}")
            self.h.unknown.append(f"Turn {e.turn} ended without an answer ({e.reason}).")

    def finish(self) -> Handoff:
        """What is left open once every event is read."""
        h = self.h
        h.changes = list(self.changes.values())
        for c in h.changes:
            call = _call(c.tool, c.arguments)
            if c.status == "pending":
                h.unknown.append(f"{call} was waiting for an answer when the record ends: it did not run.")
            elif c.status == "error":
                h.unknown.append(f"{call} failed: {c.output}")
            elif c.status in ("denied", "blocked", "refused"):
                h.unknown.append(
                    f"{call} did not run ({c.status}"
                    + (f" by {c.decided_by}" if c.decided_by else "")
                    + "): what it would have fixed is still as it was."
                )
        if not h.answer:
            h.unknown.insert(0, "No answer yet: the agent has not named a cause.")
        return h


def _finished(
    h: Handoff,
    e: ev.ToolCallFinished,
    args: dict[str, Any],
    c: Change | None,
    undo: list[str] | None,
    engine_step: bool,
) -> None:
    """A finished call: the outcome of a change, a call the policy blocked, or a read with its findings."""
    if c is not None:
        _change_finished(h, e, args, c, undo)
    elif e.status == "blocked":
        _blocked(h, e, args)
    elif e.tool == "findings":
        _ranked(h, e)
    else:
        _read_finished(h, e, args, engine_step)


def _change_finished(
    h: Handoff, e: ev.ToolCallFinished, args: dict[str, Any], c: Change, undo: list[str] | None
) -> None:
    """A change's outcome, with the undo recorded for it (or its declared way back)."""
    c.status = {"ok": "ran", "partial": "ran"}.get(e.status, e.status)
    c.output = _first(e.output or e.summary, 300)
    if undo and c.status == "ran":
        c.undo = undo.pop(0)
    if c.status == "denied":
        return  # the approver's answer is the timeline's line
    details = [f"undo recorded: {c.undo}"] if c.undo else ([f"way back: {c.rollback}"] if c.rollback else [])
    what = "changed" if c.status == "ran" else "not-run"
    h.timeline.append(
        Entry(
            at=e.at,
            turn=e.turn,
            who="agent",
            what=what,
            text=f"{_call(e.tool, args)} → {e.status}: {c.output}",
            details=details,
        )
    )


def _blocked(h: Handoff, e: ev.ToolCallFinished, args: dict[str, Any]) -> None:
    """A call the policy blocked: a line in the timeline, and an open question (it did not run)."""
    h.timeline.append(
        Entry(
            at=e.at,
            turn=e.turn,
            who="policy",
            what="blocked",
            text=f"{_call(e.tool, args)}: {_first(e.output or e.summary, 300)}",
        )
    )
    h.unknown.append(f"{_call(e.tool, args)} was blocked by the policy: it did not run.")


def _ranked(h: Handoff, e: ev.ToolCallFinished) -> None:
    """The engine's ranked summary of what its checks found so far."""
    h.timeline.append(
        Entry(
            at=e.at,
            turn=e.turn,
            who="engine",
            what="ranked",
            text="the findings so far, strongest first",
            details=[ln for ln in e.output.splitlines() if ln.strip()],
        )
    )


def _read_finished(h: Handoff, e: ev.ToolCallFinished, args: dict[str, Any], engine_step: bool) -> None:
    """A read: its findings join the handoff's, and a read that failed leaves an open question."""
    details = []
    for line in e.findings:
        m = _FINDING.match(line)
        if m:
            h.findings.append(
                Finding(
                    cause=m["cause"],
                    object=m["object"],
                    weight=float(m["weight"]),
                    evidence=m["evidence"],
                    tool=e.tool,
                    at=e.at,
                )
            )
        details.append(f"finding: {line}")
    if e.partial:
        details.append(e.partial)
    if e.status == "error":
        h.unknown.append(f"{_call(e.tool, args)} could not be read: {_first(e.output or e.summary, 200)}")
    who: Who = "engine" if engine_step or e.step == 0 else "agent"
    h.timeline.append(
        Entry(
            at=e.at,
            turn=e.turn,
            who=who,
            what="read",
            text=f"{_call(e.tool, args)} → {e.status}: {_first(e.summary or e.output)}",
            details=details,
        )
    )


async def load(store: Any, session_id: str) -> Handoff:
    """The handoff of a stored session (its events and its audit rows)."""
    from engine.policy.audit import AuditLog

    events = await store.events(session_id)
    rows = await (await AuditLog.open(store)).rows(session_id=session_id)
    return build(events, rows)


async def export(store: Any, session_id: str, directory: Path) -> Path:
    """Write the session's handoff as Markdown to DIRECTORY/handoff-SESSION.md; returns the path."""
    import asyncio

    text = markdown(await load(store, session_id))
    path = directory / f"handoff-{session_id}.md"

    def write() -> None:
        directory.mkdir(parents=True, exist_ok=True)
        path.write_text(text)

    await asyncio.to_thread(write)
    return path


# -- markdown -------------------------------------------------------------------------------------


def _time(at: dt.datetime | None) -> str:
    return at.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if at else "-"


def _clock(at: dt.datetime) -> str:
    return at.astimezone(dt.UTC).strftime("%H:%M:%S")


def _quote(text: str) -> str:
    return "\n".join("> " + ln if ln else ">" for ln in text.strip().splitlines())


def _fence(text: str, lang: str = "") -> str:
    ticks = "```" if "```" not in text else "````"
    return f"{ticks}{lang}\n{text.rstrip()}\n{ticks}"


def markdown(h: Handoff) -> str:
    """The handoff as Markdown: a page for a ticket, a postmortem or a chat thread."""
    out = [f"# Handoff: {_first(h.asked, 100) or 'session ' + h.session_id}", ""]
    where = " · ".join(
        x for x in (f"context {h.context}" if h.context else "", f"namespace {h.namespace}" if h.namespace else "") if x
    )
    out += [
        f"Session `{h.session_id}` · model {h.model or '-'}" + (f" · {where}" if where else ""),
        f"From {_time(h.started)} to {_time(h.last_event)}.",
        "",
    ]
    out += ["## Asked", "", _quote(h.asked) if h.asked else "(no question in the record)", ""]
    out += ["## Where it stands", "", h.answer.strip() if h.answer else "No answer yet.", ""]
    if h.findings:
        out += ["## Findings", ""]
        for f in h.findings:
            out += [
                f"- **{f.cause}** on `{f.object}` (weight {f.weight:.2f}), read by `{f.tool}` at {_clock(f.at)}",
                f"  > {f.evidence}",
            ]
        out.append("")
    if h.changes:
        out += ["## Changes", ""]
        for i, c in enumerate(h.changes, 1):
            outcome = (
                f"denied by {c.decided_by}"
                if c.status == "denied" and c.decided_by
                else c.status + (f", approved by {c.decided_by}" if c.decided_by else "")
            )
            out += [f"### {i}. `{_call(c.tool, c.arguments)}`: {outcome}", ""]
            for label, value in (
                ("risk", c.risk),
                ("rule", c.rule),
                ("why asked", c.reason),
                ("answer", c.answer),
                ("touches", c.touches),
                ("result", c.output),
                ("way back", c.rollback),
                ("undo recorded", c.undo),
            ):
                if value:
                    out.append(f"- {label}: {value}")
            if c.diff:
                out += ["", "The dry run the approver saw:", "", _fence(c.diff, "diff")]
            out.append("")
    out += ["## Timeline", ""]
    for en in h.timeline:
        who = en.by or en.who
        out.append(f"- {_clock(en.at)} · turn {en.turn} · **{who}** {en.what}: {_one_line(en.text)}")
        out += [f"  - {_one_line(d)}" for d in en.details]
    out.append("")
    out += ["## Still unknown", ""] + ([f"- {u}" for u in h.unknown] or ["- Nothing the record leaves open."]) + [""]
    out += ["## What the context dropped", ""]
    if h.dropped:
        out += [
            f"- `{d.ref}` ({d.action}, step {d.from_step}, {d.tokens:,} tokens): {_one_line(d.what)}" for d in h.dropped
        ]
        out.append("  (each can be brought back with recall_detail(ref))")
    else:
        out.append("- Nothing: the whole record fitted in the context.")
    return "\n".join(out).rstrip() + "\n"


def _one_line(text: str) -> str:
    return " ".join(text.split())
