"""Trajectory scoring after a session, and the hints recurring failures turn into.

Scoring reads only the session's events (deterministic, no model), so it can run off the
critical path after every turn and be stored with the session.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from typing import Any

from engine import events as ev

ROOT_CAUSE_WORDS = re.compile(
    r"\b(root cause|caused by|because|due to|the cause|is failing since|broke when|OOMKilled|CrashLoopBackOff|"
    r"ImagePullBackOff|expired|NXDOMAIN|backlog|exit code \d+)\b",
    re.I,
)
IDENT = re.compile(r"[A-Za-z][A-Za-z0-9]*(?:[-_.][A-Za-z0-9]+)+|\b\d+(?:\.\d+)?(?:Mi|Gi|ms|s|%)?\b")
"""Identifiers worth citing: dashed/dotted names and numbers with units."""


def _idents(text: str) -> set[str]:
    return {m.group(0) for m in IDENT.finditer(text or "") if len(m.group(0)) >= 4}


def score_session(events: list[Any]) -> dict[str, Any]:
    """Score one session's trajectory: efficiency, failures, approvals, and whether the answer is grounded."""
    calls = [e for e in events if isinstance(e, ev.ToolCallFinished)]
    keys = [e.tool + json.dumps(_args_of(events, e.call_id), sort_keys=True, default=str) for e in calls]
    repeats = sum(c - 1 for c in Counter(keys).values() if c > 1)
    failed = [e for e in calls if e.status in ("error", "refused", "blocked", "denied")]
    answers = [e for e in events if isinstance(e, ev.AssistantMessage) and e.text and not e.tool_calls]
    final = answers[-1].text if answers else ""
    later_text: dict[str, str] = {}
    # A call "added something" when an identifier from its output shows up later: in the answer or in later calls' arguments.
    useless = []
    for i, e in enumerate(calls):
        if e.status not in ("ok", "partial"):
            continue
        after = final + " " + " ".join(json.dumps(_args_of(events, c.call_id)) for c in calls[i + 1 :])
        later_text[e.call_id] = after
        if not (_idents(e.output) & _idents(after)):
            useless.append(e.tool)
    evidence = set().union(*(_idents(e.output) for e in calls if e.status in ("ok", "partial"))) if calls else set()
    cited = sorted(_idents(final) & evidence)[:10]
    asked = [e for e in events if isinstance(e, ev.ApprovalRequested)]
    resolved = [e for e in events if isinstance(e, ev.ApprovalResolved)]
    turns = [e for e in events if isinstance(e, ev.TurnFinished)]
    tokens = sum(e.prompt_tokens + e.completion_tokens for e in turns)
    wall = sum(e.duration_ms for e in turns) / 1000
    failures = Counter(
        f"{e.tool}: {(e.output or e.summary).splitlines()[0][:80] if (e.output or e.summary) else e.status}"
        for e in failed
    )
    critic = [e for e in events if isinstance(e, ev.CriticVerdict) and e.verdict != "ok"]
    root_cause = bool(final and ROOT_CAUSE_WORDS.search(final))
    score = 1.0
    score -= 0.1 * repeats + 0.05 * len(useless) + 0.05 * len(failed)
    score -= 0.0 if root_cause and cited else (0.3 if root_cause else 0.5)
    return {
        "calls": len(calls),
        "failed_calls": len(failed),
        "repeated_calls": repeats,
        "calls_adding_nothing": useless,
        "tokens": tokens,
        "wall_s": round(wall, 2),
        "steps": sum(e.steps for e in turns),
        "approvals_asked": len(asked),
        "approvals_denied": sum(1 for e in resolved if not e.approved),
        "critic_objections": [f for e in critic for f in e.findings],
        "root_cause_named": root_cause,
        "evidence_cited": cited,
        "failure_patterns": dict(failures.most_common(5)),
        "score": round(max(0.0, min(1.0, score)), 3),
    }


def _args_of(events: list[Any], call_id: str) -> dict[str, Any]:
    """The arguments a call ran with, or (refused before it ran) those the model asked with."""
    asked: dict[str, Any] = {}
    for e in events:
        if isinstance(e, ev.ToolCallStarted) and e.call_id == call_id:
            return dict(e.arguments)
        if isinstance(e, ev.AssistantMessage):
            for c in e.tool_calls:
                if c.get("id") == call_id:
                    asked = dict(c.get("arguments") or {})
    return asked


def hints_from_scores(scores: list[dict[str, Any]], min_count: int = 2) -> list[str]:
    """Recurring failure patterns across sessions, as short hints for the critic and system prompt."""
    failures: Counter[str] = Counter()
    objections: Counter[str] = Counter()
    useless: Counter[str] = Counter()
    for s in scores:
        for pattern, n in s.get("failure_patterns", {}).items():
            failures[pattern] += n
        for f in s.get("critic_objections", []):
            objections[re.sub(r"\{.*?\}|\b[\w-]+-[a-z0-9]{5}\b", "…", f)] += 1
        for t in s.get("calls_adding_nothing", []):
            useless[t] += 1
    hints = []
    for pattern, n in failures.most_common(3):
        if n >= min_count:
            tool, _, why = pattern.partition(": ")
            hints.append(f"{tool} failed {n} times recently ({why}); check its arguments against earlier output first.")
    for f, n in objections.most_common(2):
        if n >= min_count:
            hints.append(f"The critic objected {n} times: {f}")
    for t, n in useless.most_common(2):
        if n >= min_count * 2:
            hints.append(f"{t} often added nothing to the answer; call it only when its output is needed.")
    return hints


async def score_and_store(store: Any, session_id: str) -> dict[str, Any]:
    """Score a session from the store and keep the score with it."""
    score = score_session(await store.events(session_id))
    await store.put_score(session_id, score)
    return score


async def recent_hints(store: Any, limit: int = 50) -> list[str]:
    """Hints from the most recent stored scores."""
    return hints_from_scores(await store.recent_scores(limit))
