"""Findings ride on the tool results the model reads, and the opening follows them up."""

from __future__ import annotations

from engine.loop import LoopConfig, Session
from engine.testing import ScriptedModel
from engine.toolbox import Toolbox
from engine.tools import Tool, ToolOutput
from skills.registry import checks_for
from skills.replay import cloudops_pack

CHECKS = checks_for([cloudops_pack()])
"""The checks the replay pack declares (Kubernetes), with the reads its actions serve."""

PODS = "NAME                     READY   STATUS    RESTARTS   AGE\nworker-5f6d7c8b9-abcde   0/1     Pending   0          40s\n"
DESCRIBE = """Name:             worker-5f6d7c8b9-abcde
Namespace:        shop
Node:             <none>
Status:           Pending
Containers:
  worker:
    Port:       8080/TCP
Events:
  Type     Reason            Age   From               Message
  ----     ------            ----  ----               -------
  Warning  FailedScheduling  40s   default-scheduler  0/3 nodes are available: 3 Insufficient cpu.
"""


def _tools(calls: list[tuple[str, dict]]) -> Toolbox:
    def make(name: str, text: str, params: dict) -> Tool:
        async def handler(args: dict) -> ToolOutput:
            calls.append((name, args))
            return ToolOutput(text=text)

        return Tool(name=name, description=name, parameters={"type": "object", "properties": params}, handler=handler)

    return Toolbox(
        [
            make("cloudops.GetResources", PODS, {"resource_type": {"type": "string"}, "namespace": {"type": "string"}}),
            make(
                "cloudops.DescribeResource",
                DESCRIBE,
                {"resource_type": {"type": "string"}, "name": {"type": "string"}, "namespace": {"type": "string"}},
            ),
            Tool(
                name="cloudops.Restart",
                description="restart",
                parameters={"type": "object", "properties": {}},
                handler=lambda a: "x",
                risk="write",
            ),
        ]
    )


async def test_the_opening_describes_the_pending_pod_and_hands_the_model_the_ranked_findings():
    calls: list = []
    model = ScriptedModel([{"text": "insufficient cpu"}])
    opening = [{"name": "cloudops.GetResources", "arguments": {"resource_type": "pods", "namespace": "shop"}}]
    s = Session(model, _tools(calls), config=LoopConfig(opening=opening), checks=CHECKS)
    out = [e async for e in s.run_turn("why is worker down?")]
    assert calls[1] == (
        "cloudops.DescribeResource",
        {"resource_type": "pods", "name": "worker-5f6d7c8b9-abcde", "namespace": "shop"},
    )
    follow = [e for e in out if e.kind == "assistant-message" and e.text.startswith("Follow-up checks")]
    assert follow and "Pending" in follow[0].text, "the console shows why the engine read more"
    described = next(e for e in out if e.kind == "tool-call-finished" and e.tool == "cloudops.DescribeResource")
    assert described.findings and described.findings[0].startswith("insufficient_node_cpu on service/worker")
    tool_msgs = [m.content for m in model.requests[0][0] if m.role == "tool"]
    assert "[finding: insufficient_node_cpu on service/worker" in tool_msgs[1]
    assert tool_msgs[-1].startswith("1. insufficient_node_cpu on service/worker"), "the ranked findings come last"


async def test_without_checks_the_model_reads_raw_outputs_only():
    calls: list = []
    model = ScriptedModel([{"text": "?"}])
    opening = [{"name": "cloudops.GetResources", "arguments": {"resource_type": "pods", "namespace": "shop"}}]
    s = Session(model, _tools(calls), config=LoopConfig(opening=opening, diagnose=False), checks=CHECKS)
    [e async for e in s.run_turn("why?")]
    assert len(calls) == 1 and "[finding" not in "".join(m.content or "" for m in model.requests[0][0])


async def test_a_finding_past_the_output_trim_still_reaches_the_model(tmp_path):
    """The guarded dispatcher runs the checks on the whole output, before it cuts it."""
    from engine.config import Config
    from engine.store import Store
    from engine.toolbox import Toolbox
    from wiring import attach

    long_events = "".join(
        f"{i}m   Normal   Pulled   pod/api-7c9f8d6b5d-x2x9q   Container image already present on machine, number {i}\n"
        for i in range(80)
    )
    long_events += '1s   Warning   FailedCreate   replicaset/api-7c9f8d6b5d   Error creating: pods "api-7c9f8d6b5d-q" is forbidden: exceeded quota: q, requested: pods=1, used: pods=10, limited: pods=10\n'

    async def events(args: dict) -> ToolOutput:
        return ToolOutput(text=long_events)

    tool = Tool(
        name="events",
        description="events",
        parameters={"type": "object", "properties": {"namespace": {"type": "string"}}},
        handler=events,
    )
    async with Store(tmp_path / "s.db") as store:
        box = Toolbox([tool])
        await attach(box, store, Config())
        model = ScriptedModel(
            [{"tool_calls": [{"name": "events", "arguments": {"namespace": "shop"}}]}, {"text": "quota"}]
        )
        s = Session(model, box, sink=store, config=LoopConfig(opening=[]), checks=CHECKS)
        await store.create_session(s.id)
        out = [e async for e in s.run_turn("why can't api scale?")]
    done = next(e for e in out if e.kind == "tool-call-finished")
    assert "exceeded quota" not in done.output, "the quota line is past the trim"
    assert done.findings and done.findings[0].startswith("namespace_pod_quota_exceeded on namespace/shop")
    assert "[finding: namespace_pod_quota_exceeded" in [m.content for m in model.requests[1][0] if m.role == "tool"][0]
