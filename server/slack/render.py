"""What a thread shows, as Block Kit messages built from the session's events (and its handoff).

```
page ─────────────────▶ page_message        the thread's first message (the channel sees it)
UserMessage … TurnFinished ─▶ TurnView ─▶ status_message   one message per turn, updated in place:
                                              one context line per step (its calls folded),
                                              the findings with their evidence lines
ApprovalRequested ────▶ approval_message    the call, the rule, the dry-run diff, the way back,
ApprovalResolved  ────▶ approval_message    Approve / Deny (bound to the request), then who answered
AssistantMessage (no calls) ─▶ answer_message
Handoff ──────────────▶ handoff_message     posted when the page resolves
```

Every message is a dict of chat.postMessage arguments (`text` for notifications, `blocks`) that
fits Slack's limits by construction (server.slack.blocks); the face still checks each one.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass, field
from typing import Any

from engine import events as ev
from server.pages import Page
from server.slack import blocks as bk

APPROVE = "lantern.approve"
DENY = "lantern.deny"
"""The action ids of the approval buttons."""
STEPS_SHOWN = 8
"""Steps with a line of their own in a turn's status; earlier ones fold into one line."""
FINDINGS_SHOWN = 10

ICONS = {
    "ok": "✓",
    "partial": "◐",
    "error": "✗",
    "denied": "⛔ denied",
    "blocked": "🚫 blocked",
    "refused": "↩ refused",
    "cancelled": "⏹",
}
_FINDING = re.compile(r"^(?P<cause>\S+) on (?P<object>\S+) \(weight (?P<weight>[\d.]+)\): (?P<evidence>.*)$", re.DOTALL)


def full_record(session_id: str) -> str:
    """Where the whole of something cut in a message is."""
    return f"in the session record: `lantern handoff {session_id}`"


def call_text(tool: str, args: dict[str, Any], limit: int = 160) -> str:
    """`tool(k=v, ...)` in one line."""
    inner = ", ".join(f"{k}={json.dumps(v, ensure_ascii=False, default=str)}" for k, v in args.items())
    return bk.clip(f"{tool}({inner})", limit)


def mrkdwn(text: str) -> str:
    """The model's Markdown as Slack's mrkdwn: bold, headings, links and bullets (code is kept)."""
    out = []
    fenced = False
    for line in bk.esc(text).splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
            out.append(line)
            continue
        if not fenced:
            line = re.sub(r"^#{1,6}\s+(.*)$", r"*\1*", line)
            line = re.sub(r"\*\*(.+?)\*\*", r"*\1*", line)
            line = re.sub(r"__(.+?)__", r"_\1_", line)
            line = re.sub(r"\[([^\]]+)\]\((https?://[^)\s]+)\)", r"<\2|\1>", line)
            line = re.sub(r"^(\s*)[-*] ", r"\1• ", line)
        out.append(line)
    return "\n".join(out)


def sections(text: str, limit: int = bk.SECTION_TEXT) -> list[dict[str, Any]]:
    """Long mrkdwn as sections of at most `limit` characters, split at paragraphs (then lines)."""
    out: list[str] = []
    cur = ""
    for para in re.split(r"(\n\s*\n)", text):
        if len(cur) + len(para) <= limit:
            cur += para
            continue
        if cur.strip():
            out.append(cur)
        cur = ""
        while len(para) > limit:
            cut = para.rfind("\n", 0, limit)
            cut = cut if cut > limit // 2 else limit
            out.append(para[:cut])
            para = para[cut:]
        cur = para
    if cur.strip():
        out.append(cur)
    return [bk.section(s.strip("\n")) for s in out if s.strip()]


# -- the page ---------------------------------------------------------------------------------------


def page_message(page: Page, session_id: str, *, resolved: bool = False) -> dict[str, Any]:
    """The thread's first message: what paged, its labels, the runbook, the session."""
    mark = "✅ Resolved" if resolved else "🚨 Page"
    labels = page.labels
    fields = [
        f"*{k}*\n{bk.esc(labels[k])}" for k in ("severity", "namespace", "alertname", "pod", "service") if k in labels
    ]
    about = page.annotations.get("summary") or page.annotations.get("description") or ""
    blocks = [bk.header(f"{mark}: {page.title}")]
    blocks.append(bk.section(bk.esc(about) or f"_{len(page.alerts)} alert(s) in the group_", fields=fields or None))
    ctx = [f"session `{session_id}`", f"group `{bk.clip(page.group_key, 200)}`", f"from {page.source}"]
    if page.runbook_url:
        ctx.insert(0, f"<{page.runbook_url}|runbook>")
    blocks.append(bk.context(*ctx))
    if not resolved:
        blocks.append(bk.context("_Lantern is investigating in this thread. `@lantern …` here continues it._"))
    return {"text": bk.clip(f"{mark}: {page.title}", bk.MESSAGE_TEXT), "blocks": blocks}


def started_message(who: str, text: str, session_id: str) -> dict[str, Any]:
    """The first message of a thread someone started with `/lantern …`."""
    return {
        "text": bk.clip(f"{who} asked Lantern: {text}", bk.MESSAGE_TEXT),
        "blocks": [
            bk.section(f"*{bk.esc(who)}* asked Lantern:\n>{bk.esc(bk.clip(text, 2500))}"),
            bk.context(f"session `{session_id}`", "_`@lantern …` in this thread continues it_"),
        ],
    }


# -- one turn ---------------------------------------------------------------------------------------


@dataclass
class TurnView:
    """One turn as its status message shows it."""

    session_id: str
    turn: int
    asked_by: str = ""
    question: str = ""
    steps: dict[int, list[list[str]]] = field(default_factory=dict)
    """step → its calls, each [call text, icon]."""
    calls: dict[str, list[str]] = field(default_factory=dict)
    findings: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    state: str = "working"
    """working, answered, or why it stopped."""
    started: dt.datetime | None = None
    seconds: float = 0.0

    def see(self, e: Any) -> bool:
        """Take one event in; True when the status message changes."""
        if isinstance(e, ev.UserMessage):
            self.question, self.started = e.text, e.at
        elif isinstance(e, ev.ToolCallStarted):
            self._call(e.call_id, e.step, call_text(e.tool, e.arguments), "…")
        elif isinstance(e, ev.ToolCallFinished):
            if e.call_id not in self.calls:
                self._call(e.call_id, e.step, f"{e.tool}(…)", "")
            self.calls[e.call_id][1] = ICONS.get(e.status, e.status)
            for f in e.findings:
                if f not in self.findings:
                    self.findings.append(f)
        elif isinstance(e, ev.ErrorEvent):
            self.errors.append(f"{e.code}: {e.message}")
        elif isinstance(e, ev.TurnFinished):
            self.state = e.reason
            self.seconds = e.duration_ms / 1000
        else:
            return False
        return True

    def _call(self, call_id: str, step: int, text: str, icon: str) -> None:
        entry = [text, icon]
        self.calls[call_id] = entry
        self.steps.setdefault(step, []).append(entry)

    def message(self) -> dict[str, Any]:
        """The status message: where the turn is, its steps folded, its findings."""
        n = sum(len(c) for c in self.steps.values())
        if self.state == "working":
            head = f"⏳ *Investigating* · turn {self.turn}"
        elif self.state == "answered":
            head = f"✅ *Answered* · turn {self.turn} · {n} calls · {self.seconds:.1f} s"
        else:
            head = f"⏹ *Stopped: {self.state}* · turn {self.turn} · {n} calls"
        if self.asked_by:
            head += f" · asked by {bk.esc(self.asked_by)}"
        blocks = [bk.section(head + (f"\n>{bk.esc(bk.clip(self.question, 400))}" if self.question else ""))]
        blocks += self._step_lines()
        if self.findings:
            blocks.append(bk.section(findings_text(self.findings)))
        if self.errors:
            blocks.append(bk.context(*(f"⚠️ {bk.esc(bk.clip(x, 300))}" for x in self.errors[-3:])))
        blocks.append(bk.context(f"session `{self.session_id}`"))
        text = f"Lantern turn {self.turn}: {self.state}" + (
            f" ({len(self.findings)} findings)" if self.findings else ""
        )
        return {"text": text, "blocks": bk.fit(blocks, full_record(self.session_id))}

    def _step_lines(self) -> list[dict[str, Any]]:
        order = sorted(self.steps)
        folded, shown = order[:-STEPS_SHOWN], order[-STEPS_SHOWN:]
        out = []
        if folded:
            calls = [c for s in folded for c in self.steps[s]]
            bad = sum(1 for c in calls if c[1] not in ("✓", "◐"))
            out.append(bk.context(f"_{len(folded)} earlier steps folded: {len(calls)} calls, {bad} not ok_"))
        for s in shown:
            label = "*opening reads*" if s == 0 else f"*step {s}*"
            calls = " · ".join(f"`{bk.esc(t)}` {icon}".rstrip() for t, icon in self.steps[s])
            out.append(bk.context(bk.clip(f"{label} · {calls}", bk.SECTION_TEXT)))
        return out


def findings_text(lines: list[str]) -> str:
    """The findings, strongest first as the checks wrote them, each with its evidence line quoted."""
    out = ["*Findings*"]
    for line in lines[:FINDINGS_SHOWN]:
        m = _FINDING.match(line)
        if m:
            out.append(f"• *{bk.esc(m['cause'])}* on `{bk.esc(m['object'])}` (weight {float(m['weight']):.2f})")
            out.append(f">{bk.esc(bk.clip(m['evidence'], 300))}")
        else:
            out.append(f"• {bk.esc(bk.clip(line, 300))}")
    if len(lines) > FINDINGS_SHOWN:
        out.append(f"_and {len(lines) - FINDINGS_SHOWN} more_")
    return bk.clip("\n".join(out), bk.SECTION_TEXT, "(more in the session record)")


def answer_message(text: str, session_id: str, turn: int) -> dict[str, Any]:
    """The agent's answer of one turn."""
    blocks = sections(mrkdwn(text.strip()))
    blocks.append(bk.context(f"answer of turn {turn} · session `{session_id}`"))
    return {
        "text": bk.clip(text.strip() or "(empty answer)", bk.MESSAGE_TEXT),
        "blocks": bk.fit(blocks, full_record(session_id)),
    }


# -- approvals ----------------------------------------------------------------------------------------


def binding(request: ev.ApprovalRequested) -> str:
    """What a button carries: the session, the request and the call hash it answers."""
    return json.dumps({"s": request.session_id, "r": request.request_id, "h": request.call_hash}, separators=(",", ":"))


def approval_message(request: ev.ApprovalRequested, resolved: ev.ApprovalResolved | None = None) -> dict[str, Any]:
    """An approval request: the call, why the policy asks, the dry-run diff, the way back; with the
    buttons while it is open, and who answered once it is not."""
    r = request
    where = full_record(r.session_id)
    blocks = [bk.header(f"Approval needed: {r.tool}")]
    why = f"*risk* {r.risk} · *rule* `{bk.esc(r.rule)}`" + (f" · {bk.esc(r.reason)}" if r.reason else "")
    blocks.append(bk.section(f"`{bk.esc(call_text(r.tool, r.arguments, 1000))}`\n{why}"))
    facts = [
        f"*Touches:* {bk.esc(r.touches)}" if r.touches else "",
        f"*Way back:* `{bk.esc(r.rollback)}`" if r.rollback else "",
    ]
    if any(facts):
        blocks.append(bk.section("\n".join(x for x in facts if x)))
    if r.preview:
        blocks.append(
            bk.section("*Dry run (diff of the live objects):*\n" + bk.code(r.preview, bk.SECTION_TEXT - 40, where))
        )
    elif r.preview_note:
        blocks.append(bk.section(f"*Dry run:* {bk.esc(r.preview_note)}"))
    notes = [bk.esc(r.preview_note)] if r.preview and r.preview_note else []
    notes += [f"objects: {bk.esc(', '.join(r.objects))}"] if r.objects else []
    if r.expires_at is not None:
        notes.append(f"expires {r.expires_at.astimezone(dt.UTC):%H:%M:%S} UTC")
    notes.append(f"request `{r.request_id}`")
    blocks.append(bk.context(*notes))
    if resolved is None:
        value = binding(r)
        blocks.append(
            bk.actions(
                bk.button(
                    "Approve",
                    APPROVE,
                    value,
                    "primary",
                    bk.confirm_dialog(
                        "Approve this change?", f"`{bk.esc(call_text(r.tool, r.arguments, 250))}`", "Approve"
                    ),
                ),
                bk.button("Deny", DENY, value, "danger"),
                block_id=f"approval:{r.request_id}",
            )
        )
        text = f"Approval needed: {call_text(r.tool, r.arguments)}"
    else:
        verdict = "✅ Approved" if resolved.approved else "❌ Denied"
        blocks.append(
            bk.section(
                f"{verdict} by *{bk.esc(resolved.by)}*"
                + (f": {bk.esc(bk.clip(resolved.reason, 500))}" if resolved.reason else "")
            )
        )
        text = f"{verdict} by {resolved.by}: {call_text(r.tool, r.arguments)}"
    return {"text": bk.clip(text, bk.MESSAGE_TEXT), "blocks": bk.fit(blocks, where)}


# -- the handoff --------------------------------------------------------------------------------------


def handoff_message(h: Any) -> dict[str, Any]:
    """The handoff (engine.handoff.Handoff) as the thread's last message: what was asked, where it
    stands, the findings, each change with its approval and diff, what is still unknown, the
    latest of the timeline; the whole of it is `lantern handoff SESSION`."""
    where = full_record(h.session_id)
    blocks = [bk.header(f"Handoff: {bk.clip(' '.join(h.asked.split()), 120) or 'session ' + h.session_id}")]
    blocks += sections("*Where it stands*\n" + (mrkdwn(h.answer) if h.answer else "_No answer yet._"))
    if h.findings:
        lines = [f"{f.cause} on {f.object} (weight {f.weight:.2f}): {f.evidence}" for f in h.findings]
        blocks.append(bk.section(findings_text(lines)))
    for c in h.changes[:8]:
        outcome = f"denied by {c.decided_by}" if c.status == "denied" and c.decided_by else c.status
        outcome += f", approved by {c.decided_by}" if c.decided_by and c.status != "denied" else ""
        facts = [f"*{bk.esc(outcome)}*: `{bk.esc(call_text(c.tool, c.arguments, 600))}`"]
        facts += [f"rule `{bk.esc(c.rule)}`"] if c.rule else []
        facts += [f"result: {bk.esc(c.output)}"] if c.output else []
        facts += (
            [f"undo recorded: `{bk.esc(c.undo)}`"]
            if c.undo
            else ([f"way back: `{bk.esc(c.rollback)}`"] if c.rollback else [])
        )
        blocks.append(bk.section(bk.clip("\n".join(facts), bk.SECTION_TEXT)))
        if c.diff:
            blocks.append(bk.section(bk.code(c.diff, bk.SECTION_TEXT, where)))
    if len(h.changes) > 8:
        blocks.append(bk.context(f"_{len(h.changes) - 8} more changes {where}_"))
    unknown = h.unknown or ["Nothing the record leaves open."]
    blocks.append(
        bk.section(bk.clip("*Still unknown*\n" + "\n".join(f"• {bk.esc(u)}" for u in unknown), bk.SECTION_TEXT, where))
    )
    recent = h.timeline[-12:]
    if recent:
        lines = [
            f"{e.at.astimezone(dt.UTC):%H:%M:%S} *{bk.esc(e.by or e.who)}* {e.what}: {bk.esc(bk.clip(' '.join(e.text.split()), 200))}"
            for e in recent
        ]
        more = f"_the last {len(recent)} of {len(h.timeline)} timeline entries; all of them {where}_"
        blocks.append(bk.section(bk.clip("*Timeline*\n" + "\n".join(lines), bk.SECTION_TEXT - 200) + "\n" + more))
    blocks.append(
        bk.context(f"session `{h.session_id}`", f"model {bk.esc(h.model or '-')}", f"the whole handoff {where}")
    )
    text = bk.clip(f"Handoff: {h.asked or h.session_id}", bk.MESSAGE_TEXT)
    return {"text": text, "blocks": bk.fit(blocks, where)}
