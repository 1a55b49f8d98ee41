"""The replay harness scores a perfect run as perfect and a wrong answer as wrong, through the real engine."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.critic import cloudops as co
from engine.critic.commands import replay_tools_factory

DEV = Path(__file__).resolve().parents[3] / "shared" / "data" / "cloudops-dev"
pytestmark = pytest.mark.skipif(not DEV.exists(), reason="shared benchmark data not present")


async def _run(wrong: bool, limit: int = 7):
    cands = co.load_candidates(DEV)
    results = []
    for case in co.load_cases(DEV, limit):
        cache = json.loads((case.dir / "tool_cache.json").read_text())
        results.append(await co.run_case(case, cands, co.OracleModel(case, cache, wrong=wrong), replay_tools_factory()))
    return results, co.summarise(results)


async def test_oracle_scores_perfect_across_categories():
    results, summary = await _run(wrong=False)
    assert summary["A@1"] == 1.0 and summary["A@3"] == 1.0
    assert len(summary["per_category"]) == 7
    assert summary["alignment"] > 0.9
    assert all(r.calls for r in results), "every case was investigated with tool calls"


async def test_wrong_answers_score_zero():
    _, summary = await _run(wrong=True, limit=3)
    assert summary["A@1"] == 0.0 and summary["failure_patterns"] == {"wrong root cause or object": 3}


def test_answer_parsing_and_matching():
    text = 'Evidence... Final: {"answers": [{"taxonomy": "Runtime_Fault", "root_cause": "oom_killed", "object": "cartservice"}]}'
    ans = co.parse_answers(text)
    assert co.is_hit(ans[0], {"root_cause": "oom_killed", "fault_object": "service/cartservice"})
    assert co.parse_answers("no json here") == []


def test_alignment_matches_expert_notation():
    calls = [co.call_step("cloudops.GetResources", {"resource_type": "pods", "name": "", "namespace": "boutique"}),
             co.call_step("cloudops.DescribeResource", {"resource_type": "pods", "name": "emailservice-db586b659-tg9kn", "namespace": "boutique"})]
    assert co.alignment(calls, [["GetResources::pods", "DescribeResource::pods::emailservice", "GetAppYAML::emailservice"]]) == pytest.approx(0.667, abs=1e-3)


async def test_a_session_exported_as_a_case_replays_through_the_harness(tmp_path):
    """`lantern eval export`: a finished session becomes a replay case that scores its own answer."""
    from engine.critic.export import export_session, session_replay_tools
    from engine.loop import Session
    from engine.testing import ScriptedModel
    from engine.toolbox import RuntimeToolbox
    from engine.tools import python_tool

    def get_pods(namespace: str) -> str:
        """List pods."""
        return "cartservice-79b49f5555-8tvnk 0/1 OOMKilled 7 token=ghp_abcdefghijklmnopqrstuvwxyz0123456789"

    answer = '{"answers": [{"taxonomy": "Runtime_Fault", "root_cause": "oom_killed", "object": "service/cartservice"}]}'
    model = ScriptedModel([{"tool_calls": [{"name": "get_pods", "arguments": {"namespace": "boutique"}}]}, {"text": answer}])
    s = Session(model, RuntimeToolbox([python_tool(get_pods)]))
    [e async for e in s.run_turn("cart is failing")]
    case_dir = export_session(s.events, tmp_path)
    meta = json.loads((case_dir / "metadata.json").read_text())
    assert meta["result"]["root_cause"] == "oom_killed" and meta["process"]["path1"] == ["get_pods"]
    assert "ghp_" not in (case_dir / "tool_cache.json").read_text(), "exported outputs are scrubbed"
    tools = session_replay_tools(case_dir)
    out = await tools[0].handler({"namespace": "boutique"})
    assert "OOMKilled" in out.text
    missing = await tools[0].handler({"namespace": "other"})
    assert missing.status == "error" and "NotFound" in missing.text
