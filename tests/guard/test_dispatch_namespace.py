"""A call that leaves out `namespace` runs in the session's namespace, as kubectl takes the
context's, where the tool would otherwise fall back to its schema default: the policy already reads
such a call as aimed at the session's namespace, and the call must run where the policy decided."""

from __future__ import annotations

from typing import Any

from engine.tools import Tool, ToolOutput
from tests.guard.harness import make_session, of, run, step


def tools(seen: list[tuple[str, dict[str, Any]]]) -> list[Tool]:
    async def describe(args: dict[str, Any]) -> ToolOutput:
        seen.append(("describe", args))
        return ToolOutput(text=f"service {args['name']} in {args['namespace']}")

    async def listing(args: dict[str, Any]) -> ToolOutput:
        seen.append(("list", args))
        return ToolOutput(text="pods")

    described = {
        "type": "object",
        "properties": {"name": {"type": "string"}, "namespace": {"type": "string", "default": "default"}},
        "required": ["name"],
    }
    listed = {"type": "object", "properties": {"namespace": {"type": "string", "description": "leave out for all"}}}
    return [
        Tool("kubernetes.describe_service", "Describe a service", described, describe, pack="kubernetes"),
        Tool("kubernetes.list_pods", "List pods", listed, listing, pack="kubernetes"),
    ]


async def test_a_left_out_namespace_is_the_sessions_and_a_given_one_is_kept(store):
    seen: list[tuple[str, dict[str, Any]]] = []
    script = [
        step(("kubernetes.describe_service", {"name": "checkout-api"})),
        step(("kubernetes.describe_service", {"name": "checkout-api", "namespace": "payments"})),
        step(("kubernetes.list_pods", {})),
        {"text": "done"},
    ]
    session, _, _ = await make_session(store, tools(seen), script, kube=lambda: ("sandbox", "shop"))
    events = await run(session)
    assert seen == [
        ("describe", {"name": "checkout-api", "namespace": "shop"}),
        ("describe", {"name": "checkout-api", "namespace": "payments"}),
        ("list", {}),  # no default declared: leaving it out means every namespace, as the tool says
    ]
    assert [e.status for e in of(events, "tool-call-finished")] == ["ok", "ok", "ok"]


async def test_without_a_session_namespace_the_tools_default_applies(store):
    seen: list[tuple[str, dict[str, Any]]] = []
    script = [step(("kubernetes.describe_service", {"name": "checkout-api"})), {"text": "done"}]
    session, _, _ = await make_session(store, tools(seen), script)
    await run(session)
    assert seen == [("describe", {"name": "checkout-api", "namespace": "default"})]
