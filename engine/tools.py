"""Tools as the engine sees them, and the plainest Toolbox: every tool offered, calls run directly.

Skill actions (skills/) and meta-tools (find_tools, recall_detail) both become `Tool`s. The full
runtime toolbox (engine/runtime.py) adds retrieval, the guard, the policy and the audit log
around the same `Tool.handler`.
"""

from __future__ import annotations

import inspect
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from engine import events as ev
from engine.models.base import ToolCall, ToolSpec


@dataclass
class ToolOutput:
    """What a tool returned: text for the model, the structured data, and completeness."""

    text: str
    """The output as text (before scrubbing/trimming by the guard)."""
    data: Any = None
    """Structured result, when the executor has one (projections apply to it)."""
    partial: str | None = None
    """Why the result is incomplete, or None."""
    status: str = "ok"
    """ok | error | partial."""


Handler = Callable[[dict[str, Any]], Awaitable[Any]]


@dataclass
class Preview:
    """What a write would change, from the backend's own dry run: shown with the approval."""

    diff: str = ""
    """Unified diff of the live objects against the dry-run result ('' when nothing changes)."""
    objects: list[str] = field(default_factory=list)
    """The objects it touches, e.g. Deployment/shop/checkout-api."""
    note: str = ""
    """Anything else the approver should read (no change, what follows the change)."""


class PreviewFailed(Exception):
    """The backend refused the change in its dry run; the message is the backend's error."""


PreviewFn = Callable[[dict[str, Any]], Awaitable[Preview]]


@dataclass
class Tool:
    """One callable action: its schema for the model, its risk, and how to run it."""

    name: str
    description: str
    parameters: dict[str, Any]
    handler: Handler
    risk: str = "read"
    """read | write | dangerous."""
    pack: str = ""
    """The skill pack it belongs to ('' for engine meta-tools)."""
    keywords: list[str] = field(default_factory=list)
    """Extra retrieval words."""
    meta: dict[str, Any] = field(default_factory=dict)
    """Executor-specific details (projection, permissions, rollback hints)."""
    preview: PreviewFn | None = None
    """Runs the call as a dry run and returns what it would change (None: the backend has no dry run)."""

    @property
    def spec(self) -> ToolSpec:
        """The schema the model sees."""
        return ToolSpec(name=self.name, description=self.description, parameters=self.parameters)


def as_output(value: Any) -> ToolOutput:
    """Normalise whatever a handler returned into a ToolOutput."""
    if isinstance(value, ToolOutput):
        return value
    if isinstance(value, str):
        return ToolOutput(text=value)
    try:
        return ToolOutput(text=json.dumps(value, indent=1, default=str, ensure_ascii=False), data=value)
    except (TypeError, ValueError):
        return ToolOutput(text=str(value), data=value)


def python_tool(fn: Callable[..., Any], *, name: str | None = None, description: str | None = None, risk: str = "read", parameters: dict[str, Any] | None = None) -> Tool:
    """Wrap a plain Python function (sync or async, keyword arguments) as a Tool."""
    sig = inspect.signature(fn)
    if parameters is None:
        props: dict[str, Any] = {}
        required = []
        for p in sig.parameters.values():
            typ = {int: "integer", float: "number", bool: "boolean"}.get(p.annotation, "string")
            props[p.name] = {"type": typ}
            if p.default is inspect.Parameter.empty:
                required.append(p.name)
        parameters = {"type": "object", "properties": props, "required": required}

    async def handler(args: dict[str, Any]) -> Any:
        out = fn(**args)
        if inspect.isawaitable(out):
            out = await out
        return out

    return Tool(
        name=name or fn.__name__,
        description=description or (inspect.getdoc(fn) or fn.__name__).splitlines()[0],
        parameters=parameters,
        handler=handler,
        risk=risk,
    )


class SimpleToolbox:
    """Offers every tool and runs calls directly: for tests of the loop and for plain scripts."""

    def __init__(self, tools: list[Tool] | None = None) -> None:
        self.tools: dict[str, Tool] = {t.name: t for t in tools or []}
        """Registered tools by name."""
        self._offered: list[str] = []

    def add(self, tool: Tool) -> None:
        """Register a tool."""
        self.tools[tool.name] = tool

    def all_tool_names(self) -> list[str]:
        """Names of every registered tool."""
        return sorted(self.tools)

    async def select(self, ctx: Any) -> tuple[list[ToolSpec], Any | None]:
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

    def risk_of(self, name: str) -> str:
        t = self.tools.get(name)
        return t.risk if t else "read"

    async def dispatch(self, call: ToolCall, ctx: Any) -> AsyncIterator[Any]:
        t0 = time.perf_counter()
        tool = self.tools.get(call.name)
        if call.parse_error or tool is None:
            msg = call.parse_error or f"unknown tool {call.name!r}; available: {', '.join(sorted(self.tools))}"
            yield ctx.event(ev.ToolCallFinished, call_id=call.id, tool=call.name, status="error", duration_ms=0.0, summary=msg, output=msg, step=ctx.step)
            return
        yield ctx.event(ev.ToolCallStarted, call_id=call.id, tool=call.name, arguments=call.arguments, risk=tool.risk, step=ctx.step)
        try:
            out = as_output(await tool.handler(dict(call.arguments)))
            status = out.status if out.status in ("ok", "error", "partial") else "ok"
            if out.partial and status == "ok":
                status = "partial"
        except Exception as exc:  # noqa: BLE001 - a tool failure is a result the model can act on
            out = ToolOutput(text=f"{type(exc).__name__}: {exc}", status="error")
            status = "error"
        yield ctx.event(
            ev.ToolCallFinished,
            call_id=call.id,
            tool=call.name,
            status=status,
            duration_ms=(time.perf_counter() - t0) * 1000,
            summary=out.text.splitlines()[0][:120] if out.text else "",
            output=out.text,
            partial=out.partial,
            step=ctx.step,
        )
