"""The runtime toolbox: skill actions + meta-tools, offered through retrieval, run through the guard and policy."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from engine.config import Config
from engine.models.base import ToolCall, ToolSpec
from engine.tools import SimpleToolbox, Tool, ToolOutput


def runbook_tool() -> Tool:
    """`read_runbook(name)`: the text of a playbook found by find_tools."""
    from skills.playbooks import load_playbooks

    books, _ = load_playbooks()
    names = [b.name for b in books]

    async def handler(args: dict[str, Any]) -> ToolOutput:
        for b in books:
            if b.name == args["name"]:
                return ToolOutput(text=f"# {b.title}\n{b.body}")
        return ToolOutput(text=f"no runbook {args['name']!r}; known: {', '.join(names)}", status="error")

    return Tool(
        name="read_runbook",
        description="Read an incident playbook (symptoms, checks in order, usual causes, safe fixes): " + ", ".join(names),
        parameters={"type": "object", "properties": {"name": {"type": "string", "enum": names}}, "required": ["name"]},
        handler=handler,
        keywords=["runbook", "playbook", "how to investigate"],
    )


class RuntimeToolbox(SimpleToolbox):
    """Every tool known; which are offered is retrieval's decision, how they run is the dispatcher's."""

    def __init__(self, tools: list[Tool], *, selector: Any = None, dispatcher: Any = None) -> None:
        super().__init__(tools)
        self.selector = selector
        """Retrieval-backed selection (engine.retrieval), or None to offer everything."""
        self.dispatcher = dispatcher
        """The guarded dispatch pipeline (engine.dispatch), or None to call handlers directly."""

    def all_tool_names(self) -> list[str]:
        """Names of every tool the session could use."""
        return sorted(self.tools)

    async def select(self, ctx: Any) -> tuple[list[ToolSpec], Any | None]:
        if self.selector is None:
            return await super().select(ctx)
        return await self.selector.select(ctx)

    async def dispatch(self, call: ToolCall, ctx: Any) -> AsyncIterator[Any]:
        if self.selector is not None and hasattr(self.selector, "note_used"):
            self.selector.note_used(call.name)
        if self.dispatcher is None:
            async for e in super().dispatch(call, ctx):
                yield e
            return
        async for e in self.dispatcher.dispatch(call, self.tools.get(call.name), ctx):
            yield e


def build_toolbox(cfg: Config, *, extra_tools: list[Tool] | None = None, include_packs: bool = True, kube_context: str | None = None, **_: Any) -> RuntimeToolbox:
    """Assemble the toolbox for a session from the config."""
    tools: list[Tool] = list(extra_tools or [])
    tools.append(runbook_tool())
    return RuntimeToolbox(tools)
