"""The one Toolbox: every tool a session knows, which of them to offer (the selector's choice, or
all of them), and the dispatch pipeline every call runs through.

It imports no skill: the composition root (wiring/) builds the tools from packs and hands them in.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any, Protocol

from engine import events as ev
from engine.diagnose import CheckSet
from engine.dispatch import Dispatcher
from engine.models.base import ToolCall, ToolSpec
from engine.policy.rules import Policy
from engine.tools import Tool

if TYPE_CHECKING:
    from engine.loop import TurnContext


class Selector(Protocol):
    """Chooses the tools offered at each step (engine.retrieval.ToolSelector)."""

    async def select(self, ctx: TurnContext) -> tuple[list[ToolSpec], ev.ToolSetChanged | None]: ...

    def add_tool(self, tool: Tool) -> None: ...

    def note_used(self, name: str, turn: int | None = None) -> None: ...

    def repeat_of(self, call: ToolCall, ctx: TurnContext) -> str | None: ...

    def rank(self, query: str, names: list[str]) -> list[str]: ...


class Toolbox:
    """Tools by name, offered by the selector (every tool without one), run by the dispatcher
    (a permissive one without: every call runs, still validated, scrubbed and guarded)."""

    def __init__(
        self,
        tools: list[Tool] | None = None,
        *,
        dispatcher: Dispatcher | None = None,
        selector: Selector | None = None,
        notices: list[str] | None = None,
        checks: CheckSet | None = None,
    ) -> None:
        self.tools: dict[str, Tool] = {t.name: t for t in tools or []}
        """Every tool, by name."""
        self.dispatcher = dispatcher or Dispatcher(Policy.permissive(), None)
        """The pipeline every call passes."""
        self.selector = selector
        """Retrieval-backed selection, or None to offer everything."""
        self.notices: list[str] = list(notices or [])
        """Load problems (broken packs, policy errors) for the face to show."""
        self.checks = checks
        """The checks that read the packs' outputs (the session's diagnoser runs them)."""
        self._offered: list[str] = []

    def add(self, tool: Tool) -> None:
        """Register one more tool (and offer it through the selector)."""
        self.tools[tool.name] = tool
        if self.selector is not None:
            self.selector.add_tool(tool)

    def tool(self, name: str) -> Tool | None:
        """A tool by name."""
        return self.tools.get(name)

    def all_tool_names(self) -> list[str]:
        """Names of every registered tool."""
        return sorted(self.tools)

    def risk_of(self, name: str) -> str:
        """read | write | dangerous as the policy sees the tool ('read' when unknown)."""
        return self.dispatcher.risk_of(self.tools.get(name))

    def repeat_of(self, call: ToolCall, ctx: TurnContext) -> str | None:
        """Why `call` would learn nothing new (the pipeline would refuse it as a repeat, or the
        selector has answered the same search while its results are still offered), or None."""
        why = self.dispatcher.repeat_of(call, self.tools.get(call.name), ctx)
        if why is None and self.selector is not None:
            why = self.selector.repeat_of(call, ctx)
        return why

    def fixes_for(self, query: str, offered: list[ToolSpec], limit: int) -> list[ToolSpec]:
        """The write actions to name in an answer: with a selector, every write tool ranked by
        retrieval against `query` (the findings: what the fix must address); without, the offered
        writes in their order."""
        writes = [t for t in offered if self.risk_of(t.name) != "read"]
        if self.selector is not None and query.strip():
            names = [n for n in sorted(self.tools) if self.risk_of(n) != "read"]
            writes = [self.tools[n].spec for n in self.selector.rank(query, names)]
        return writes[:limit]

    async def select(self, ctx: TurnContext) -> tuple[list[ToolSpec], ev.ToolSetChanged | None]:
        """The tools to offer at this step, and a ToolSetChanged when the set changed."""
        if self.selector is not None:
            return await self.selector.select(ctx)
        names = sorted(self.tools)
        changed = None
        if names != self._offered:
            changed = ctx.event(
                ev.ToolSetChanged,
                loaded=[n for n in names if n not in self._offered],
                unloaded=[n for n in self._offered if n not in names],
                reasons={n: "registered" for n in names if n not in self._offered},
            )
            self._offered = names
        return [self.tools[n].spec for n in names], changed

    async def dispatch(self, call: ToolCall, ctx: TurnContext) -> AsyncIterator[Any]:
        """Run one call through the pipeline; a call that answered keeps its tool offered (sticky)."""
        async for e in self.dispatcher.dispatch(call, self.tools.get(call.name), ctx):
            if self.selector is not None and isinstance(e, ev.ToolCallFinished) and e.status in ("ok", "partial"):
                self.selector.note_used(call.name, ctx.turn)
            yield e
