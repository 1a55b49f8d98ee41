"""The runtime toolbox: skill actions + meta-tools, offered through retrieval, run through the guard and policy.

`build_toolbox` does the heavy, synchronous part (loading packs and playbooks, opening the
retrieval index) and can run in a thread; `attach` does the part that needs the open store
(the dispatcher with its audit log, recall of dropped details).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from engine.config import Config
from engine.diagnose import CheckSet
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

    def __init__(self, tools: list[Tool], *, selector: Any = None, dispatcher: Any = None, notices: list[str] | None = None, checks: CheckSet | None = None) -> None:
        super().__init__(tools)
        self.checks = checks
        """The checks that read the packs' outputs (skills.registry.checks_for), for the session."""
        self.selector = selector
        """Retrieval-backed selection (engine.retrieval), or None to offer everything."""
        self.dispatcher = dispatcher
        """The guarded dispatch pipeline (engine.dispatch); set by `attach`."""
        self.notices: list[str] = list(notices or [])
        """Load problems (broken packs, policy errors) for the face to show."""

    def tool(self, name: str) -> Tool | None:
        """A tool by name."""
        return self.tools.get(name)

    def risk_of(self, name: str) -> str:
        if self.dispatcher is not None:
            from engine.policy.rules import effective_risk

            t = self.tools.get(name)
            if t is None:
                return "read"
            r = effective_risk(t.name, t.risk, t.meta)
            return r if r in ("read", "write", "dangerous") else "dangerous"
        return super().risk_of(name)

    async def attach(self, store: Any, cfg: Config, kube: Any = None) -> None:
        """Finish set-up with the open store: the guarded dispatcher (policy, audit) and recall of dropped details."""
        from engine.context import recall_tool
        from engine.dispatch import make_dispatcher

        self.dispatcher = await make_dispatcher(store, user=cfg.user, kube=kube or (lambda: (cfg.context, cfg.namespace)), read_only=cfg.read_only)
        for err in getattr(self.dispatcher.policy, "errors", []) or []:
            self.notices.append(f"policy: {err} (running with the safest policy: every write needs approval)")
        recall = recall_tool(lambda: store)
        self.add(recall)
        if self.selector is not None:
            self.selector.add_tool(recall)

    async def select(self, ctx: Any) -> tuple[list[ToolSpec], Any | None]:
        if self.selector is None:
            return await super().select(ctx)
        return await self.selector.select(ctx)

    async def dispatch(self, call: ToolCall, ctx: Any) -> AsyncIterator[Any]:
        if self.selector is not None:
            self.selector.note_used(call.name)
        if self.dispatcher is None:
            async for e in super().dispatch(call, ctx):
                yield e
            return
        async for e in self.dispatcher.dispatch(call, self.tools.get(call.name), ctx):
            yield e


def build_toolbox(cfg: Config, *, extra_tools: list[Tool] | None = None, include_packs: bool = True, **_: Any) -> RuntimeToolbox:
    """Assemble the toolbox for a session from the config (packs, playbooks, retrieval)."""
    tools: list[Tool] = list(extra_tools or [])
    notices: list[str] = []
    checks = None
    if include_packs:
        from skills.registry import checks_for, pack_tools, packs_for_config

        loaded = packs_for_config(cfg)
        tools += pack_tools(loaded.packs, context=cfg.context)
        notices += [str(e) for e in loaded.errors]
        checks = checks_for(loaded.packs)
    tools.append(runbook_tool())
    from engine.retrieval.index import HybridIndex
    from engine.retrieval.selector import ToolSelector, find_tools_tool

    from skills.playbooks import load_playbooks

    books, book_errors = load_playbooks()
    notices += [f"playbook: {e}" for e in book_errors]
    selector = ToolSelector(tools, HybridIndex(), pinned=PINNED, runbooks=[b.doc() for b in books])
    finder = find_tools_tool(selector)
    selector.add_tool(finder)
    return RuntimeToolbox([*tools, finder], selector=selector, notices=notices, checks=checks)


PINNED = ("find_tools", "recall_detail")
"""Meta-tools offered at every step."""
