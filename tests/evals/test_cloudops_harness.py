"""The replay harness scores a perfect run as perfect and a wrong answer as wrong, through the real engine."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evals import cloudops as co
from evals.commands import replay_tools_factory

DEV = Path(__file__).resolve().parents[3] / "shared" / "data" / "cloudops-dev"
pytestmark = pytest.mark.skipif(not DEV.exists(), reason="shared benchmark data not present")


async def _run(wrong: bool, limit: int = 7):
    cands = co.load_candidates(DEV)
    results = []
    for case in co.load_cases(DEV, limit):
        cache = json.loads((case.dir / "tool_cache.json").read_text())
        # The oracle's own path alone (no triage reads, no checks): what the harness scores is its run.
        results.append(
            await co.run_case(
                case,
                cands,
                co.OracleModel(case, cache, wrong=wrong),
                replay_tools_factory(),
                opening=False,
                diagnose=False,
            )
        )
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
    calls = [
        co.call_step("cloudops.GetResources", {"resource_type": "pods", "name": "", "namespace": "boutique"}),
        co.call_step(
            "cloudops.DescribeResource",
            {"resource_type": "pods", "name": "emailservice-db586b659-tg9kn", "namespace": "boutique"},
        ),
    ]
    assert co.alignment(
        calls, [["GetResources::pods", "DescribeResource::pods::emailservice", "GetAppYAML::emailservice"]]
    ) == pytest.approx(0.667, abs=1e-3)


async def test_a_session_exported_as_a_case_replays_through_the_harness(tmp_path):
    """`lantern eval export`: a finished session becomes a replay case that scores its own answer."""
    from engine.loop import Session
    from engine.testing import ScriptedModel
    from engine.toolbox import Toolbox
    from engine.tools import python_tool
    from evals.export import export_session, session_replay_tools

    def get_pods(namespace: str) -> str:
        """List pods."""
        return "cartservice-79b49f5555-8tvnk 0/1 OOMKilled 7 token=ghp_abcdefghijklmnopqrstuvwxyz0123456789"

    answer = '{"answers": [{"taxonomy": "Runtime_Fault", "root_cause": "oom_killed", "object": "service/cartservice"}]}'
    model = ScriptedModel(
        [{"tool_calls": [{"name": "get_pods", "arguments": {"namespace": "boutique"}}]}, {"text": answer}]
    )
    s = Session(model, Toolbox([python_tool(get_pods)]))
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


def test_answer_schema_pairs_each_root_cause_with_objects_of_its_kind():
    cands = co.load_candidates(DEV)
    groups = co.answer_schema(cands)["properties"]["answers"]["items"]["anyOf"]
    by_kind = {g["properties"]["object"]["enum"][0].split("/")[0]: g for g in groups}
    assert set(by_kind) == {"service", "node", "namespace"}
    labelled = [c for g in groups for c in g["properties"]["root_cause"]["enum"]]
    assert sorted(labelled) == sorted(c["root_cause"] for c in cands["root_causes"])
    assert "oom_killed" in by_kind["service"]["properties"]["root_cause"]["enum"]
    assert all(o.startswith("node/") for o in by_kind["node"]["properties"]["object"]["enum"])


async def test_the_engine_asks_the_model_for_the_structured_answer():
    from engine.testing import ScriptedModel

    cands = co.load_candidates(DEV)
    case = co.load_cases(DEV, 1)[0]
    answer = {
        "answers": [
            {
                "root_cause": case.truth["root_cause"],
                "object": case.truth["fault_object"],
                "taxonomy": case.truth["fault_taxonomy"],
            }
        ]
    }
    model = ScriptedModel([{"text": json.dumps(answer)}])
    r = await co.run_case(case, cands, model, replay_tools_factory(), max_steps=3)
    assert r.hit1 and model.answer_schemas == [co.answer_schema(cands)]


async def test_an_interrupted_run_resumes_from_its_results_file(tmp_path, capsys):
    import argparse

    from evals.commands import run

    out = tmp_path / "results.jsonl"
    args = argparse.Namespace(
        eval_cmd="cloudops",
        cases=str(DEV),
        model="oracle",
        limit=2,
        max_steps=10,
        json=True,
        out=str(out),
        no_triage=False,
        no_checks=False,
    )
    assert await run(args) == 0
    lines = out.read_text().splitlines()
    assert len(lines) == 2
    out.write_text(lines[0] + "\n" + lines[1][:20])  # the second case was cut off mid-write
    capsys.readouterr()
    assert await run(args) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["summary"]["cases"] == 2 and report["summary"]["A@1"] == 1.0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["case"] for r in rows] == [json.loads(lines[0])["case"], json.loads(lines[1])["case"]]
    assert rows[0]["seconds"] == json.loads(lines[0])["seconds"]  # kept, not run again


async def test_replayed_calls_pass_the_guard_like_a_live_session():
    """The eval runs the guarded dispatcher: an identical read repeated in the turn is not run again."""
    from engine.testing import ScriptedModel

    cands = co.load_candidates(DEV)
    case = co.load_cases(DEV, 1)[0]
    call = {"name": "cloudops.GetResources", "arguments": {"resource_type": "pods", "namespace": case.namespace}}
    bogus = {"name": "cloudops.GetResources", "arguments": {"resource_type": "pods", "verbose": True}}
    model = ScriptedModel([{"tool_calls": [call]}, {"tool_calls": [call]}, {"tool_calls": [bogus]}, {"text": "{}"}])
    # No checks: their follow-up reads would reach the executor too, and this is about the guard.
    r = await co.run_case(case, cands, model, replay_tools_factory(), max_steps=5, opening=False, diagnose=False)
    assert len(r.calls) == 1, "the repeat and the invented parameter never reached the replay executor"
    results = [m for m in model.requests[-1][0] if m.role == "tool"]
    assert "Not run again" in results[1].content and "verbose" in results[2].content


async def test_the_triage_reads_open_the_investigation():
    """The opening reads run before the model's first step, and its first request carries their results."""
    from engine.testing import ScriptedModel

    cands = co.load_candidates(DEV)
    case = co.load_cases(DEV, 1)[0]
    model = ScriptedModel([{"text": "{}"}])
    r = await co.run_case(case, cands, model, replay_tools_factory(), max_steps=3)
    assert r.calls[:4] == ["GetResources::pods", "GetResources::events", "GetClusterConfiguration", "GetAlerts"]
    first = model.requests[0][0]
    assert "exceeded quota" in "".join(m.content for m in first)
    # The checks read the quota refusal in the events: the engine's own top finding is the truth.
    assert (
        r.checks[0] == {"root_cause": case.truth["root_cause"], "object": case.truth["fault_object"]} and r.checks_hit1
    )
