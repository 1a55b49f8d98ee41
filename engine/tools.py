"""Tools as the engine sees them: a schema for the model, a risk, typed metadata and a handler.

Skill actions (skills/) and meta-tools (find_tools, recall_detail) both become `Tool`s; the
Toolbox (engine/toolbox.py) offers them and runs every call through the dispatch pipeline.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from engine.models.base import ToolSpec


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
    unchanged: bool = False
    """The backend's dry run says the call would change nothing (the live state already matches):
    there is nothing to approve."""


class PreviewFailed(Exception):
    """The backend refused the change in its dry run; the message is the backend's error."""


PreviewFn = Callable[[dict[str, Any]], Awaitable[Preview]]


@dataclass(frozen=True)
class ToolMeta:
    """What the engine needs to know about a tool beyond its schema, filled by whoever registers
    it (the skills registry from a pack's action)."""

    timeout_s: float | None = None
    """The action's own timeout (the dispatcher waits a little longer); None: the dispatcher's default."""
    backend: str | None = None
    """What the breakers count failures against (default: the tool's pack)."""
    method: str | None = None
    """The HTTP method the action sends, when it sends one (a write method raises the risk)."""
    projection: tuple[str, ...] = ()
    """Field paths of the output that matter (kept at arrival; a response with none of them is noted)."""
    rollback: str = ""
    """How to undo the action, in words, for the approver."""
    touches: Mapping[str, str] | None = None
    """What the call changes, as templates over its parameters (kind, name, namespace): the policy matches on them."""
    permissions: tuple[str, ...] = ()
    """What the action needs on its backend (RBAC verbs, scopes), for people."""
    executor: str = ""
    """python | rest | graphql | cli | mcp | replay ('' for engine meta-tools)."""
    answers_repeats: bool = False
    """The tool answers a repeat of an earlier call itself (find_tools: from what it found before),
    so the dispatcher passes a repeat on instead of refusing it."""


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
    meta: ToolMeta = field(default_factory=ToolMeta)
    """Timeout, backend, HTTP method, projection, rollback, touches, permissions."""
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


def python_tool(
    fn: Callable[..., Any],
    *,
    name: str | None = None,
    description: str | None = None,
    risk: str = "read",
    parameters: dict[str, Any] | None = None,
) -> Tool:
    """Wrap a plain Python function (sync or async, keyword arguments) as a Tool."""
    sig = inspect.signature(fn, eval_str=True)
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
