"""Shared parts of the end-to-end tests: scenario bookkeeping, a scripted investigator, a test approver, audit checks.

The investigator is a `ScriptedModel` responder: it reads the tool results the real context
builder put in front of it (as a model would), builds each next call from them (pod names,
revisions), and asks `find_tools` first when retrieval did not offer the tool it wants.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from engine.config import Config
from engine.loop import ApprovalAnswer
from engine.models.base import Message, ToolSpec
from engine.policy.audit import AuditLog, AuditRow
from engine.store import Store
from engine.testing import ScriptedModel
from sandbox.cluster import SandboxInfo, info
from sandbox.scenario import apply_scenario

LONG = 120.0
"""Generous wait (seconds): the machine is shared with other work."""

_state: dict[str, Any] = {"name": None, "dirty": True}


def use_scenario(sb: SandboxInfo, name: str, monkeypatch: Any, *, will_change: bool) -> SandboxInfo:
    """Make `name` the running, untouched scenario (applied again only when a test changed it) and
    point the queue, metrics and TLS endpoints at it; `will_change` marks it used up for the next test."""
    if _state["name"] != name or _state["dirty"]:
        _state["dirty"] = True  # a failed apply must not be reused
        apply_scenario(name, home=sb.home)
        _state["name"] = name
        _state["dirty"] = False
    si = info(sb.home)
    pack_env = {"prometheus": "LANTERN_PROMETHEUS_URL", "rabbitmq": "LANTERN_QUEUE_URL"}
    for key, env in pack_env.items():
        if key in si.endpoints:
            monkeypatch.setenv(env, si.endpoints[key])
    if will_change:
        _state["dirty"] = True
    return si


class TestApprover:
    """Answers every approval request the same way and remembers what it was asked."""

    __test__ = False

    def __init__(self, approve: bool = True, reason: str = "") -> None:
        self.approve = approve
        self.reason = reason
        self.asked: list[Any] = []

    async def ask(self, request: Any) -> ApprovalAnswer:
        self.asked.append(request)
        return ApprovalAnswer.to(request, self.approve, "tester", self.reason)


Step = Callable[["Investigator"], dict[str, Any]]
"""Returns the next call {"name", "arguments", "find"?} or a final answer {"text"}."""


class Investigator:
    """A scripted model that walks a plan of steps, each built from the outputs it has read so far."""

    def __init__(self, plan: list[Step] | None = None) -> None:
        self.plan: list[Step] = list(plan or [])
        self.outputs: list[tuple[str, dict[str, Any], str]] = []
        """(tool, arguments, text) of every tool result in the latest request, in order."""
        self.searched: set[str] = set()
        self.offered: list[list[str]] = []
        self.model = ScriptedModel(responder=self.respond, name="scripted-investigator")

    def then(self, *steps: Step) -> Investigator:
        """Queue more steps (for a later turn)."""
        self.plan.extend(steps)
        return self

    def respond(self, messages: list[Message], tools: list[ToolSpec]) -> dict[str, Any]:
        calls: dict[str, tuple[str, dict[str, Any]]] = {}
        outs = []
        for m in messages:
            for c in m.tool_calls:
                calls[c.id] = (c.name, c.arguments)
            if m.role == "tool" and m.tool_call_id in calls:
                name, args = calls[m.tool_call_id]
                outs.append((name, args, m.content))
        self.outputs = outs
        offered = [t.name for t in tools]
        self.offered.append(offered)
        if not self.plan:
            return {"text": "(no more steps)"}
        step = self.plan[0](self)
        if "name" not in step:
            self.plan.pop(0)
            return step
        if step["name"] not in offered and step["name"] not in self.searched:
            # What a model does when the tool it needs is not offered: ask retrieval for it.
            self.searched.add(step["name"])
            query = step.get("find") or step["name"].split(".")[-1].replace("_", " ")
            return {"text": "", "tool_calls": [{"name": "find_tools", "arguments": {"query": query}}]}
        self.plan.pop(0)
        return {
            "text": step.get("text", ""),
            "tool_calls": [{"name": step["name"], "arguments": step.get("arguments", {})}],
        }

    def last(self, tool: str) -> str:
        """The text of the latest result of `tool` the model has read."""
        for name, _, text in reversed(self.outputs):
            if name == tool:
                return text
        raise AssertionError(f"the model has not read any {tool} output; read: {[n for n, _, _ in self.outputs]}")


def call(tool: str, _find: str | None = None, /, **arguments: Any) -> Step:
    """A step calling `tool` with fixed arguments (`_find`: the find_tools query if it is not offered)."""
    return lambda _inv: {"name": tool, "arguments": arguments, **({"find": _find} if _find else {})}


def answer(text: str) -> Step:
    """The final answer of a turn."""
    return lambda _inv: {"text": text}


def rows_of(listing: str) -> list[dict[str, str]]:
    """The `- key=value ...` rows of a kubernetes pack listing, as dicts."""
    out = []
    for line in listing.splitlines():
        line = line.strip()
        if line.startswith("- "):
            out.append({k: v.strip('"') for k, v in re.findall(r'(\w[\w.]*)=("[^"]*"|\S+)', line)})
    return out


def config(si: SandboxInfo) -> Config:
    """A config for the sandbox's context, acting as user 'tester'."""
    return Config(model="scripted", context=si.context, user="tester")


async def open_real_session(si: SandboxInfo, store: Store, approver: Any, model: Any) -> Any:
    """wiring.open_session with the real toolbox (packs, playbooks, retrieval; dispatcher attached)."""
    import asyncio

    from wiring import build_toolbox, open_session

    cfg = config(si)
    toolbox = await asyncio.to_thread(build_toolbox, cfg)
    return await open_session(cfg, store=store, approver=approver, model=model, toolbox=toolbox)


async def run_turn(session: Any, text: str) -> list[Any]:
    """Every event of one turn."""
    return [e async for e in session.run_turn(text)]


def finished(events: list[Any], tool: str | None = None) -> list[Any]:
    """ToolCallFinished events (of one tool)."""
    return [e for e in events if e.kind == "tool-call-finished" and (tool is None or e.tool == tool)]


def executed_tools(events: list[Any]) -> list[str]:
    """Names of the tools the model's own calls ran (ToolCallStarted), in order, meta-tools
    left out; the engine's follow-up reads (step 0) are `engine_reads`."""
    return [
        e.tool
        for e in events
        if e.kind == "tool-call-started" and e.step > 0 and e.tool not in ("find_tools", "recall_detail")
    ]


def engine_reads(events: list[Any]) -> list[str]:
    """The reads the engine ran itself (step 0: the triage opening, the findings' follow-ups)."""
    return [e.tool for e in events if e.kind == "tool-call-started" and e.step == 0]


async def audit_rows(store: Store, session_id: str) -> list[AuditRow]:
    """The session's audit rows."""
    return await (await AuditLog.open(store.db)).rows(session_id=session_id)


async def audit_verifies(db_path: Path) -> tuple[int, str]:
    """What `lantern audit verify --db PATH` returns and prints."""
    import contextlib
    import io

    from engine.policy import audit_cli

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rc = await audit_cli.run(argparse.Namespace(db=str(db_path), audit_cmd="verify"))
    return rc, buf.getvalue()
