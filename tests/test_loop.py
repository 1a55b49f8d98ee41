"""The agent loop drives a scripted model through tool calls and persists every event."""

from __future__ import annotations

import asyncio

from engine import events as ev
from engine.diagnose import CheckSet
from engine.loop import LoopConfig, Session
from engine.store import Store
from engine.testing import ScriptedModel
from engine.toolbox import Toolbox
from engine.tools import python_tool


def get_pods(namespace: str) -> str:
    """List pods in a namespace."""
    return f"checkout-7d9f  0/1  CrashLoopBackOff  restarts=14  ns={namespace}"


async def collect(session: Session, text: str) -> list:
    return [e async for e in session.run_turn(text)]


async def test_multi_step_turn_emits_blocks_in_order(tmp_path):
    model = ScriptedModel(
        [
            {"text": "Checking pods.", "tool_calls": [{"name": "get_pods", "arguments": {"namespace": "shop"}}]},
            {"text": "checkout-7d9f is in CrashLoopBackOff."},
        ]
    )
    async with Store(tmp_path / "s.db") as store:
        s = Session(model, Toolbox([python_tool(get_pods)]), sink=store)
        await store.create_session(s.id)
        out = await collect(s, "why is checkout failing?")
        kinds = [e.kind for e in out]
        assert kinds[0] == "user-message" and kinds[-1] == "turn-finished"
        assert out[-1].reason == "answered"
        finished = [e for e in out if e.kind == "tool-call-finished"]
        assert finished[0].status == "ok" and "CrashLoopBackOff" in finished[0].output
        # the second request carried the tool result back to the model
        msgs = [m for m in model.requests[1][0] if not m.note]  # the engine's closing note aside
        assert msgs[-1].role == "tool" and "CrashLoopBackOff" in msgs[-1].content
        assert [e.seq for e in out] == list(range(out[0].seq, out[0].seq + len(out)))
        stored = await store.events(s.id)
        assert [e.model_dump() for e in stored] == [e.model_dump() for e in s.events]


async def test_step_limit_ends_turn_with_reason():
    loop_forever = [{"tool_calls": [{"name": "get_pods", "arguments": {"namespace": "a"}}]}] * 5
    s = Session(ScriptedModel(loop_forever), Toolbox([python_tool(get_pods)]), config=LoopConfig(max_steps=3))
    out = await collect(s, "go")
    assert out[-1].reason == "step-limit"
    assert any(e.kind == "error" and e.code == "step-limit" for e in out)


async def test_garbled_arguments_go_back_to_model_as_tool_error():
    model = ScriptedModel(
        [
            {"tool_calls": [{"name": "get_pods", "arguments": "{namespace: shop"}]},
            {"text": "fixed"},
        ]
    )
    s = Session(model, Toolbox([python_tool(get_pods)]))
    out = await collect(s, "go")
    fin = [e for e in out if e.kind == "tool-call-finished"][0]
    assert fin.status == "refused" and "not valid JSON" in fin.output
    assert out[-1].reason == "answered"


async def test_cancel_keeps_events_and_says_so():
    model = ScriptedModel([{"text": "x" * 400, "token_delay": 0.01}])
    s = Session(model, Toolbox())
    seen = []

    async def consume():
        async for e in s.run_turn("go"):
            seen.append(e)
            if e.kind == "assistant-delta" and len(seen) > 3:
                s.cancel()

    await asyncio.wait_for(consume(), 5)
    assert seen[-1].kind == "turn-finished" and seen[-1].reason == "cancelled"
    assert any(e.kind == "notice" and e.topic == "cancel" for e in seen)
    assert s.events == seen


def test_events_round_trip_json_exactly():
    s = Session(ScriptedModel(), Toolbox())
    e = s.stamp(
        ev.ToolCallFinished,
        call_id="c1",
        tool="k8s.get_pods",
        status="partial",
        duration_ms=12.5,
        partial="partial: 500 of ≥ 2,140 items",
    )
    line = ev.to_json(e)
    back = ev.from_json(line)
    assert back == e and ev.to_json(back) == line
    unknown = ev.from_json('{"kind":"from-the-future","session_id":"s","seq":1,"at":"2026-01-01T00:00:00Z","x":1}')
    assert unknown.kind == "from-the-future"


async def test_last_step_offers_no_tools_so_the_model_answers():
    model = ScriptedModel(
        [{"tool_calls": [{"name": "get_pods", "arguments": {"namespace": "a"}}]}, {"text": "Answer from what I have."}]
    )
    s = Session(model, Toolbox([python_tool(get_pods)]), config=LoopConfig(max_steps=2))
    out = await collect(s, "go")
    assert out[-1].reason == "answered"
    assert model.requests[0][1] and model.requests[1][1] == [], "no tools on the last step"
    assert any(e.kind == "notice" and e.topic == "last-step" for e in out)


async def test_a_triage_playbook_opens_the_turn_with_reads_only():
    """The opening reads run as step 0, before the model's first step, and the model starts from
    their results; a write in the playbook is refused with a notice, never run."""
    ran: list[str] = []

    def restart(name: str) -> str:
        """Restart a deployment."""
        ran.append(name)
        return "restarted"

    model = ScriptedModel([{"text": "checkout is crash-looping."}])
    toolbox = Toolbox([python_tool(get_pods), python_tool(restart, risk="write")])
    opening = [
        {"name": "get_pods", "arguments": {"namespace": "shop"}},
        {"name": "restart", "arguments": {"name": "checkout"}},
    ]
    s = Session(model, toolbox, config=LoopConfig(opening=opening))
    out = await collect(s, "why is checkout failing?")
    assert ran == []
    assert any(e.kind == "notice" and "restart" in e.text for e in out)
    started = [e for e in out if e.kind == "tool-call-started"]
    assert [(e.tool, e.step) for e in started] == [("get_pods", 0)]
    msgs = [m for m in model.requests[0][0] if not m.note]
    assert msgs[-1].role == "tool" and "CrashLoopBackOff" in msgs[-1].content
    assert out[-1].reason == "answered" and out[-1].steps == 1


async def test_asking_again_for_the_same_calls_makes_the_next_step_the_answer():
    same = {"tool_calls": [{"name": "get_pods", "arguments": {"namespace": "shop"}}]}
    model = ScriptedModel([same, same, {"text": "checkout-7d9f is crash-looping (restarts=14)."}, same])
    s = Session(model, Toolbox([python_tool(get_pods)]), config=LoopConfig(max_steps=8))
    out = await collect(s, "why is checkout failing?")
    assert out[-1].reason == "answered" and out[-1].steps == 3
    (notice,) = [e for e in out if e.kind == "notice" and e.topic == "repeat-loop"]
    assert "step 1" in notice.text and "step 3" in notice.text
    assert [t.name for t in model.requests[1][1]] == ["get_pods"]
    assert model.requests[2][1] == []


async def test_a_different_call_after_a_repeat_keeps_the_tools():
    def get_events(namespace: str) -> str:
        """Events in a namespace."""
        return "Back-off restarting failed container"

    first = {"tool_calls": [{"name": "get_pods", "arguments": {"namespace": "shop"}}]}
    other = {
        "tool_calls": [
            {"name": "get_pods", "arguments": {"namespace": "shop"}},
            {"name": "get_events", "arguments": {"namespace": "shop"}},
        ]
    }
    model = ScriptedModel([first, other, {"text": "done"}])
    s = Session(model, Toolbox([python_tool(get_pods), python_tool(get_events)]), config=LoopConfig(max_steps=8))
    out = await collect(s, "go")
    assert not [e for e in out if e.kind == "notice" and e.topic == "repeat-loop"]
    assert len(model.requests[2][1]) == 2


DESCRIBED = """Name:         checkout-7d9f8b6c5-x2k4p
Namespace:    shop
Node:         worker-1
Status:       Running
Containers:
  checkout:
    State:          Waiting
      Reason:       CrashLoopBackOff
    Last State:     Terminated
      Reason:       Error
      Exit Code:    1
Events:
  Type     Reason   Age  From     Message
  Warning  BackOff  10s  kubelet  Back-off restarting failed container checkout
"""


def _kube_checks() -> CheckSet:
    """The checks the kubernetes pack declares, with the reads its actions serve."""
    from skills.loader import BUILTIN_DIR, load_pack_file
    from skills.registry import checks_for

    pack, err = load_pack_file(BUILTIN_DIR / "kubernetes.yaml")
    assert pack is not None, err
    return checks_for([pack])


async def test_a_crash_looping_pod_the_model_described_gets_its_previous_log_read():
    read: list[dict] = []

    def describe_pod(name: str, namespace: str) -> str:
        """Describe a pod."""
        return DESCRIBED

    def get_pod_logs(name: str, namespace: str, previous: bool = False, tail_lines: int = 200) -> str:
        """A pod's log."""
        read.append({"name": name, "namespace": namespace, "previous": previous, "tail_lines": tail_lines})
        return "panic: DATABASE_URL is not set"

    model = ScriptedModel(
        [
            {
                "text": "Describing the pod.",
                "tool_calls": [
                    {
                        "name": "kubernetes.describe_pod",
                        "arguments": {"name": "checkout-7d9f8b6c5-x2k4p", "namespace": "shop"},
                    }
                ],
            },
            {"text": "checkout exits at start: DATABASE_URL is not set."},
        ]
    )
    tools = [
        python_tool(describe_pod, name="kubernetes.describe_pod"),
        python_tool(get_pod_logs, name="kubernetes.get_pod_logs"),
    ]
    s = Session(model, Toolbox(tools), config=LoopConfig(max_steps=6), checks=_kube_checks())
    out = await collect(s, "why is checkout failing?")
    assert out[-1].reason == "answered" and out[-1].steps == 2
    assert read == [{"name": "checkout-7d9f8b6c5-x2k4p", "namespace": "shop", "previous": True, "tail_lines": 60}]
    logs = next(e for e in out if e.kind == "tool-call-finished" and e.tool == "kubernetes.get_pod_logs")
    assert logs.step == 0, "the engine's own reads are step 0"
    # The model's second step read the log the engine fetched (then the ranked findings, when the
    # checks named a cause: here the crash loop the description shows).
    msgs, _ = model.requests[1]
    logs_msg = [m for m in msgs if m.role == "tool" and m.name == "kubernetes.get_pod_logs"]
    assert logs_msg and "DATABASE_URL" in logs_msg[-1].content
    assert all(
        m.name in ("kubernetes.describe_pod", "kubernetes.get_pod_logs", "findings") for m in msgs if m.role == "tool"
    )
    # Nothing is fetched twice: the log is read once, whatever the model asks next.
    assert sum(1 for e in out if e.kind == "tool-call-started" and e.tool == "kubernetes.get_pod_logs") == 1
