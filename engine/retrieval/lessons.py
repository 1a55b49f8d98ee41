"""What a finished session teaches the experience memory: one lesson per turn that went well.

A lesson is (the turn's rewritten request, the tools whose calls succeeded and mattered). Only a
session whose trajectory score reaches GOOD_SCORE teaches, and never one the user marked bad. In
a turn, a tool teaches when one of its calls finished ok or partial and its output was used later
(the trajectory score's `calls_adding_nothing` names the calls whose output nobody used); a tool
with a denied or blocked call in that turn never teaches, and a failed call teaches nothing.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

from engine.retrieval.experience import Experience

GOOD_SCORE = 0.7
"""The trajectory score a session needs before it teaches (1.0 is a clean, grounded answer)."""

REFUSED = ("denied", "blocked")
"""Call statuses that rule a tool out of the turn's lesson: a person or the policy said no."""


def lessons_from_session(
    events: list[Any],
    score: dict[str, Any],
    *,
    session_id: str = "",
    marked_bad: bool = False,
    exclude: Iterable[str] = (),
    min_score: float = GOOD_SCORE,
) -> list[Experience]:
    """The experiences a finished session adds to the memory (none when it went badly)."""
    if marked_bad or float(score.get("score", 0.0)) < min_score:
        return []
    skip = set(exclude)
    useless = Counter(score.get("calls_adding_nothing") or [])
    ok_calls = Counter(e.tool for e in events if e.kind == "tool-call-finished" and e.status in ("ok", "partial"))
    # A tool mattered when not every one of its successful calls added nothing.
    mattered = {t for t, n in ok_calls.items() if n > useless.get(t, 0)}
    source = f"session:{session_id}" if session_id else "session"
    out = []
    for _turn, (request, calls) in sorted(_turns(events).items()):
        refused = {tool for tool, status in calls if status in REFUSED}
        tools = [
            tool
            for tool, status in calls
            if status in ("ok", "partial") and tool in mattered and tool not in refused | skip
        ]
        if request and tools:
            out.append(Experience(request, tuple(dict.fromkeys(tools)), source))
    return out


def _turns(events: list[Any]) -> dict[int, tuple[str, list[tuple[str, str]]]]:
    """Turn → (its rewritten request, [(tool, status)] of its calls)."""
    rewritten: dict[int, str] = {}
    said: dict[int, str] = {}
    calls: dict[int, list[tuple[str, str]]] = {}
    for e in events:
        if e.kind == "toolset-changed" and e.query:
            rewritten.setdefault(e.turn, e.query)
        elif e.kind == "user-message":
            said.setdefault(e.turn, e.text)
        elif e.kind == "tool-call-finished":
            calls.setdefault(e.turn, []).append((e.tool, e.status))
    return {t: (rewritten.get(t, said.get(t, "")).strip(), cs) for t, cs in calls.items()}
