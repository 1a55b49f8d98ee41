"""The critic's 'simplify' goes back to the model once, before any write runs; scoring reads the session."""

from __future__ import annotations

from engine.critic import PlanCritic
from engine.critic.trajectory import hints_from_scores, score_session
from engine.loop import Session
from engine.testing import ScriptedModel
from engine.toolbox import Toolbox
from engine.tools import python_tool

executed: list[str] = []


def list_pods(namespace: str) -> str:
    """List pods."""
    return "checkout-7d9f8c6b5-x2k4q 0/1 CrashLoopBackOff 14\ncheckout-7d9f8c6b5-p9m2z 0/1 CrashLoopBackOff 13"


def delete_pod(namespace: str, name: str) -> str:
    """Delete a pod."""
    executed.append(f"delete {name}")
    return f"pod {name} deleted"


def rollout_restart(namespace: str, name: str) -> str:
    """Restart a deployment."""
    executed.append(f"restart {name}")
    return f"deployment {name} restarted"


class Box(Toolbox):
    def all_tool_names(self):
        return list(self.tools)


def toolbox() -> Box:
    return Box(
        [
            python_tool(list_pods, name="kubernetes.list_pods"),
            python_tool(delete_pod, name="kubernetes.delete_pod", risk="dangerous"),
            python_tool(rollout_restart, name="kubernetes.rollout_restart", risk="write"),
        ]
    )


async def test_simplify_goes_back_to_model_once_then_the_simpler_plan_runs():
    executed.clear()
    model = ScriptedModel(
        [
            {"tool_calls": [{"name": "kubernetes.list_pods", "arguments": {"namespace": "shop"}}]},
            {
                "text": "Delete both crashing pods.",
                "tool_calls": [
                    {
                        "name": "kubernetes.delete_pod",
                        "arguments": {"namespace": "shop", "name": "checkout-7d9f8c6b5-x2k4q"},
                    },
                    {
                        "name": "kubernetes.delete_pod",
                        "arguments": {"namespace": "shop", "name": "checkout-7d9f8c6b5-p9m2z"},
                    },
                ],
            },
            {
                "text": "Restart instead.",
                "tool_calls": [
                    {"name": "kubernetes.rollout_restart", "arguments": {"namespace": "shop", "name": "checkout"}}
                ],
            },
            {"text": "Root cause: checkout pods were in CrashLoopBackOff; restarted deployment checkout."},
        ]
    )
    s = Session(model, toolbox(), reviewer=PlanCritic())
    out = [e async for e in s.run_turn("fix checkout")]
    verdicts = [e for e in out if e.kind == "critic-verdict"]
    assert verdicts and verdicts[0].verdict == "simplify"
    assert executed == ["restart checkout"], "no pod was deleted; the simpler plan ran"
    # the critique reached the model as the result of its calls
    msgs, _ = model.requests[2]
    assert any(m.role == "tool" and "critic" in m.content for m in msgs)
    # only one review per turn: the second plan was not held back again
    assert len(verdicts) == 1
    score = score_session(s.events)
    assert score["calls"] >= 3 and score["root_cause_named"] and score["critic_objections"]


def test_scoring_flags_repeats_failures_and_ungrounded_answers():
    model = ScriptedModel(
        [
            {"tool_calls": [{"name": "kubernetes.list_pods", "arguments": {"namespace": "shop"}}]},
            {"tool_calls": [{"name": "kubernetes.list_pods", "arguments": {"namespace": "shop"}}]},
            {"tool_calls": [{"name": "nope", "arguments": {}}]},
            {"text": "Everything looks fine."},
        ]
    )
    import asyncio

    s = Session(model, toolbox())

    async def run():
        return [e async for e in s.run_turn("status?")]

    asyncio.run(run())
    score = score_session(s.events)
    assert score["repeated_calls"] == 1
    assert score["failed_calls"] == 2  # the refused repeat and the unknown tool
    assert not score["root_cause_named"]
    assert score["score"] < 0.5
    hints = hints_from_scores([score, score])
    assert any("nope" in h for h in hints)


async def test_scores_are_stored_and_become_hints_for_the_next_session(tmp_path):
    from engine.config import Config
    from engine.critic.trajectory import score_and_store
    from engine.store import Store
    from wiring import open_session

    async with Store(tmp_path / "s.db") as store:
        for _ in range(2):
            model = ScriptedModel([{"tool_calls": [{"name": "nope", "arguments": {}}]}, {"text": "fine"}])
            s = await open_session(Config(model="scripted:x"), store=store, model=model, toolbox=toolbox())
            [e async for e in s.run_turn("status?")]
            await score_and_store(store, s.id)
        assert (await store.get_score(s.id))["failed_calls"] == 1
        s3 = await open_session(
            Config(model="scripted:x"), store=store, model=ScriptedModel([{"text": "ok"}]), toolbox=toolbox()
        )
        assert "Lessons from earlier sessions" in s3.config.system_prompt and "nope" in s3.config.system_prompt
