"""Shared harness: the real loop, the scripted model, a small toolbox behind the real Dispatcher."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from engine.dispatch import Dispatcher
from engine.guard.breakers import Breakers, Budgets
from engine.loop import ApprovalAnswer, Session
from engine.policy.audit import AuditLog
from engine.policy.rules import Policy
from engine.store import Store
from engine.testing import ScriptedModel
from engine.toolbox import Toolbox
from engine.tools import Tool, ToolMeta, ToolOutput
from wiring.toolbox import known_credentials

NAME = {"type": "string", "pattern": "^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$", "maxLength": 253}


@dataclass
class Recorder:
    """Counts executions per tool."""

    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def count(self, name: str) -> int:
        return sum(1 for n, _ in self.calls if n == name)


def k8s_tools(rec: Recorder, get_pod_text: str = "pod web-1 Running") -> list[Tool]:
    """get_pod (read), scale_deployment (write), delete_pod (dangerous): handlers record executions."""

    async def get_pod(args: dict[str, Any]) -> Any:
        rec.calls.append(("kubernetes.get_pod", args))
        return get_pod_text

    async def scale(args: dict[str, Any]) -> Any:
        rec.calls.append(("kubernetes.scale_deployment", args))
        return f"scaled {args['name']} to {args['replicas']}"

    async def delete_pod(args: dict[str, Any]) -> Any:
        rec.calls.append(("kubernetes.delete_pod", args))
        return ToolOutput(text=f"pod {args['name']} deleted", data={"deleted": args["name"]})

    ns = {"type": "string", "pattern": "^[a-z0-9-]+$", "default": "default"}
    return [
        Tool(
            "kubernetes.get_pod",
            "Show a pod",
            {"type": "object", "properties": {"name": NAME, "namespace": ns}, "required": ["name"]},
            get_pod,
            risk="read",
            pack="kubernetes",
        ),
        Tool(
            "kubernetes.scale_deployment",
            "Scale a deployment",
            {
                "type": "object",
                "properties": {
                    "name": NAME,
                    "namespace": ns,
                    "replicas": {"type": "integer", "minimum": 0, "maximum": 50},
                },
                "required": ["name", "replicas"],
            },
            scale,
            risk="write",
            pack="kubernetes",
            meta=ToolMeta(rollback="scale back to the previous replica count"),
        ),
        Tool(
            "kubernetes.delete_pod",
            "Delete a pod (its controller recreates it)",
            {"type": "object", "properties": {"name": NAME, "namespace": ns}, "required": ["name"]},
            delete_pod,
            risk="dangerous",
            pack="kubernetes",
            meta=ToolMeta(rollback="the ReplicaSet recreates the pod", method="DELETE"),
        ),
    ]


class ScriptedApprover:
    """Answers approval requests from a list (True/False or a callable), recording each request."""

    def __init__(self, *answers: Any, by: str = "alice") -> None:
        self.answers = list(answers)
        self.by = by
        self.requests: list[Any] = []

    async def ask(self, request: Any) -> ApprovalAnswer:
        self.requests.append(request)
        a = self.answers.pop(0) if self.answers else False
        if callable(a):
            return a(request)
        return ApprovalAnswer(
            approved=bool(a), by=self.by, reason="scripted", call_hash=request.call_hash, request_id=request.request_id
        )


async def make_session(
    store: Store,
    tools: list[Tool],
    script: list[dict[str, Any]],
    *,
    policy: Policy | None = None,
    approver: Any = None,
    user: str = "alice",
    breakers: Breakers | None = None,
    budgets: Budgets | None = None,
    clock: Any = None,
    timeout_s: float = 5.0,
    kube: Any = None,
) -> tuple[Session, Dispatcher, AuditLog]:
    """A real Session on a real store, whose toolbox dispatches through a real Dispatcher."""
    audit = await AuditLog.open(store)
    kwargs: dict[str, Any] = {}
    if clock is not None:
        kwargs["clock"] = clock
    disp = Dispatcher(
        policy or Policy(),
        audit,
        breakers=breakers or Breakers(),
        budgets=budgets or Budgets(),
        user=user,
        kube=kube,
        timeout_s=timeout_s,
        known_values=known_credentials,
        **kwargs,
    )
    box = Toolbox(tools, dispatcher=disp)
    session = Session(ScriptedModel(script), box, sink=store, approver=approver)
    await store.create_session(session.id, model="scripted")
    return session, disp, audit


async def run(session: Session, text: str = "investigate") -> list[Any]:
    """Run one turn; all its events."""
    return [e async for e in session.run_turn(text)]


def of(events: list[Any], kind: str) -> list[Any]:
    return [e for e in events if getattr(e, "kind", "") == kind]


def step(*calls: tuple[str, dict[str, Any]], text: str = "") -> dict[str, Any]:
    return {"text": text, "tool_calls": [{"name": n, "arguments": a} for n, a in calls]}


FIXED_NOW = dt.datetime(2026, 11, 25, 12, 0, tzinfo=dt.UTC)
