"""A read call repeated verbatim in one turn is not run again: the model is pointed at the output it has."""

from __future__ import annotations

from engine.dispatch import Dispatcher
from engine.loop import Session
from engine.policy.rules import Policy
from engine.testing import ScriptedModel
from engine.toolbox import Toolbox
from engine.tools import python_tool

runs: list[str] = []


def describe_pod(namespace: str, name: str) -> str:
    """Describe a pod."""
    runs.append(name)
    return f"pod {name}: Last State Terminated, Reason Error, Exit Code 1"


async def test_identical_read_in_same_turn_is_refused_with_a_pointer():
    runs.clear()
    call = {"name": "kubernetes.describe_pod", "arguments": {"namespace": "shop", "name": "checkout-1"}}
    model = ScriptedModel(
        [{"tool_calls": [call]}, {"tool_calls": [call]}, {"text": "Root cause: exit code 1 in checkout-1."}]
    )
    box = Toolbox(
        [python_tool(describe_pod, name="kubernetes.describe_pod")], dispatcher=Dispatcher(Policy.safest(), None)
    )
    s = Session(model, box)
    out = [e async for e in s.run_turn("why?")]
    finished = [e for e in out if e.kind == "tool-call-finished"]
    assert runs == ["checkout-1"], "the second identical call did not run"
    assert finished[1].status == "refused" and "already answered at step 1" in finished[1].output
    # a new turn may ask again (the cluster may have changed)
    model.enqueue({"tool_calls": [call]}, {"text": "same"})
    [e async for e in s.run_turn("and now?")]
    assert runs == ["checkout-1", "checkout-1"]
