"""A case file that is empty, cut off or binary is read as absent with a notice, never a crash."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.jsonfile import load_json
from evals import cloudops as co
from skills.replay.executor import ReplayCase, answer

PODS = "NAME                          READY   STATUS             RESTARTS   AGE\ncart-7d9f8b6c5d-x2x9q   0/1     CrashLoopBackOff   5          3m\n"
CACHE = {'GetResources:{"resource_type":"pods","name":"","namespace":"shop"}': PODS}
META = {
    "query": "cart is down",
    "namespace": "shop",
    "result": {"root_cause": "oom_killed", "fault_object": "service/cart", "fault_taxonomy": "Runtime_Fault"},
}
BAD = {
    "empty": b"",
    "blank": b"  \n\t ",
    "truncated": b'{"cart": ["line one", "line tw',
    "binary": bytes(range(256)) * 4,
    "utf16": '{"a": 1}'.encode("utf-16"),
    "wrong shape": b'["a list", "not a map"]',
}


def _case(root: Path, **override: bytes) -> Path:
    d = root / "runtime" / "1"
    (d / "raw_data").mkdir(parents=True)
    files = {
        "tool_cache.json": json.dumps(CACHE).encode(),
        "metadata.json": json.dumps(META).encode(),
        "raw_data/logs.json": json.dumps({"cart": ["panic: out of memory"]}).encode(),
    }
    files.update({k.replace("__", "/"): v for k, v in override.items()})
    for name, raw in files.items():
        (d / name).write_bytes(raw)
    return d


@pytest.mark.parametrize("kind", list(BAD))
def test_load_json_reads_a_bad_file_as_absent_with_a_notice(tmp_path, kind):
    p = tmp_path / "x.json"
    p.write_bytes(BAD[kind])
    notices: list[str] = []
    assert load_json(p, {}, notices, expect=dict) == {}
    assert len(notices) == 1 and "x.json" in notices[0] and "absent" in notices[0]


def test_a_missing_file_is_absent_without_a_notice(tmp_path):
    notices: list[str] = []
    assert load_json(tmp_path / "none.json", [], notices) == [] and notices == []


@pytest.mark.parametrize("kind", list(BAD))
@pytest.mark.parametrize("name", ["tool_cache.json", "metadata.json", "raw_data__logs.json"])
def test_a_case_with_a_bad_file_opens_and_answers(tmp_path, kind, name):
    d = _case(tmp_path, **{name: BAD[kind]})
    case = ReplayCase.open(d)
    assert case.notices, "the unreadable file is named"
    logs = answer(case, "GetRecentLogs", {"service_name": "cart"})
    pods = answer(case, "GetResources", {"resource_type": "pods", "namespace": "shop"})
    assert logs.text and pods.text
    if name == "raw_data__logs.json":
        assert "logs.json" in logs.text and logs.status == "ok"
        assert "CrashLoopBackOff" in pods.text


@pytest.mark.parametrize("kind", list(BAD))
def test_load_cases_leaves_out_a_case_whose_truth_cannot_be_read(tmp_path, kind):
    _case(tmp_path, **{"metadata.json": BAD[kind]})
    notices: list[str] = []
    assert co.load_cases(tmp_path, notices=notices) == []
    assert notices and notices[0].startswith("runtime/1")


@pytest.mark.parametrize("kind", list(BAD))
def test_candidates_that_cannot_be_read_are_empty_lists(tmp_path, kind):
    (tmp_path / "candidates.json").write_bytes(BAD[kind])
    cands = co.load_candidates(tmp_path)
    assert cands["root_causes"] == [] and cands["services"] == []


@pytest.mark.parametrize("kind", ["empty", "truncated", "binary"])
async def test_a_case_with_empty_logs_runs_to_the_end(tmp_path, kind):
    """Every held-out performance case had an empty raw_data/logs.json and crashed the case."""
    from engine.testing import ScriptedModel
    from evals.commands import replay_tools_factory

    _case(tmp_path, **{"raw_data__logs.json": BAD[kind]})
    case = co.load_cases(tmp_path)[0]
    cands = {
        "root_causes": [{"root_cause": "oom_killed", "target": "service"}],
        "taxonomies": ["Runtime_Fault"],
        "services": ["cart"],
        "nodes": [],
        "namespaces": ["shop"],
    }
    reply = {
        "text": json.dumps(
            {
                "evidence": "",
                "answers": [{"root_cause": "oom_killed", "object": "service/cart", "taxonomy": "Runtime_Fault"}],
            }
        )
    }
    model = ScriptedModel(responder=lambda m, t: reply)
    res = await co.run_case(case, cands, model, replay_tools_factory(), max_steps=1)
    assert res.error == "" and res.hit1
    assert any("logs.json" in n for n in res.notices)
