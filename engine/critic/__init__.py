"""Evaluation inside the engine: the plan critic (before approvals) and trajectory scoring (after)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from engine import events as ev
from engine.critic.plan import Step, Verdict, review_plan
from engine.models.base import ToolCall

if TYPE_CHECKING:
    from engine.loop import TurnContext

__all__ = ["PlanCritic", "Step", "Verdict", "review_plan"]


def evidence_text(events: list[Any]) -> str:
    """What the session has shown so far: user messages and tool outputs."""
    parts = []
    for e in events:
        if isinstance(e, ev.UserMessage):
            parts.append(e.text)
        elif isinstance(e, ev.ToolCallFinished) and e.status in ("ok", "partial"):
            parts.append(e.output)
    return "\n".join(parts)


class PlanCritic:
    """The loop's PlanReviewer: deterministic checks, plus hints learned from past sessions."""

    def __init__(self, hints: list[str] | None = None) -> None:
        self.hints = hints or []
        """Short lessons from earlier sessions' scores, appended to findings when relevant."""

    async def review(self, calls: list[ToolCall], ctx: TurnContext) -> tuple[str, list[str], list[dict[str, Any]]]:
        toolbox = ctx.session.toolbox
        steps = [Step(c.name, dict(c.arguments), toolbox.risk_of(c.name)) for c in calls]
        names = getattr(toolbox, "all_tool_names", None)
        available = names() if callable(names) else [c.name for c in calls]
        v = review_plan(steps, evidence_text(ctx.events), available)
        findings = list(v.findings)
        if v.verdict != "ok":
            tools = {s.tool for s in steps}
            findings += [h for h in self.hints if any(t in h for t in tools)][:2]
        return v.verdict, findings, v.suggested
