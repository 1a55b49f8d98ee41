"""The replay world: the cloudops pack answers exactly what a Cloud-OpsBench case recorded."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from skills.replay import ReplayCase, cloudops_pack, replay_tools

_ROOT = Path(__file__).resolve().parents[2]
# ../shared/data beside the repo (a worktree one level deeper finds it one more level up)
DATA = next(
    (
        p
        for p in (
            _ROOT.parent / "shared" / "data" / "cloudops-dev",
            _ROOT.parent.parent / "shared" / "data" / "cloudops-dev",
        )
        if p.is_dir()
    ),
    _ROOT.parent / "shared" / "data" / "cloudops-dev",
)
CASES = sorted(p.parent for p in DATA.glob("*/*/tool_cache.json")) if DATA.is_dir() else []
needs_data = pytest.mark.skipif(not CASES, reason=f"Cloud-OpsBench data not found at {DATA}")

TOOLS = {
    "GetResources",
    "DescribeResource",
    "GetAppYAML",
    "GetServiceDependencies",
    "CheckServiceConnectivity",
    "GetAlerts",
    "GetRecentLogs",
    "GetErrorLogs",
    "GetClusterConfiguration",
    "CheckNodeServiceStatus",
}


def test_cloudops_pack_has_the_ten_benchmark_tools_all_read_only():
    pack = cloudops_pack()
    assert {a.name for a in pack.actions} == TOOLS
    assert {a.risk for a in pack.actions} == {"read"}


def _case(tmp_path: Path) -> Path:
    """A tiny case in the benchmark's format, written here so the test runs without the data set."""
    cache = {
        "collection_timestamp": "2025-12-01T11:33:17",
        'GetResources:{"resource_type":"pods","name":"","namespace":"boutique"}': "NAME  READY  STATUS\ncart-1  0/1  CrashLoopBackOff\n",
        'GetResources:{"resource_type":"nodes","name":"","namespace":"boutique","output_wide":true}': "NAME  STATUS\nworker-01  Ready\n",
        'DescribeResource:{"resource_type":"pods","name":"cart-1","namespace":"boutique"}': "Name: cart-1\nLast State: Terminated (OOMKilled)\n",
        'CheckServiceConnectivity:{"namespace":"boutique","service_name":"cart","port":7070}': "cart (10.0.0.1:7070) refused",
        'GetErrorLogs:{"namespace":"boutique","service_name":"cart"}': {
            "total_errors": 3,
            "patterns": [{"count": 3, "sample": "redis timeout"}],
        },
        'GetErrorLogs:{"namespace":"boutique","service_name":"ad"}': "",
        "GetAlerts:{}": {},
        "GetClusterConfiguration:{}": {"node_count": 1, "nodes": [{"name": "worker-01", "taints": []}]},
    }
    (tmp_path / "raw_data").mkdir()
    (tmp_path / "tool_cache.json").write_text(json.dumps(cache))
    (tmp_path / "metadata.json").write_text(json.dumps({"namespace": "boutique"}))
    (tmp_path / "raw_data" / "logs.json").write_text(json.dumps({"cart": [f"line {i}" for i in range(100)]}))
    return tmp_path


async def test_lookups_normalise_aliases_order_defaults_and_cluster_scope(tmp_path):
    tools = {t.name: t for t in replay_tools(_case(tmp_path))}
    get = tools["cloudops.GetResources"].handler
    assert "CrashLoopBackOff" in (await get({"resource_type": "po"})).text  # alias, default namespace
    assert "CrashLoopBackOff" in (await get({"namespace": "boutique", "resource_type": "pod", "name": ""})).text
    nodes = await get({"resource_type": "node", "output_wide": True})  # cluster-scoped, recorded with a namespace
    assert nodes.status == "ok" and "worker-01" in nodes.text
    desc = await tools["cloudops.DescribeResource"].handler({"resource_type": "pods", "name": "cart-1"})
    assert "OOMKilled" in desc.text
    conn = await tools["cloudops.CheckServiceConnectivity"].handler({"service_name": "cart", "port": 7070})
    assert "refused" in conn.text
    errs = await tools["cloudops.GetErrorLogs"].handler({"service_name": "cart"})
    assert "redis timeout" in errs.text
    none = await tools["cloudops.GetErrorLogs"].handler({"service_name": "ad"})
    assert none.text.startswith("No error logs found for ad")
    assert (await tools["cloudops.GetAlerts"].handler({})).text == "No active metric anomalies detected at this time."
    assert "worker-01" in (await tools["cloudops.GetClusterConfiguration"].handler({})).text
    logs = await tools["cloudops.GetRecentLogs"].handler({"service_name": "cart", "lines": 3})
    assert logs.text.splitlines() == ["line 97", "line 98", "line 99"]


async def test_unrecorded_calls_answer_like_kubectl_notfound(tmp_path):
    tools = {t.name: t for t in replay_tools(_case(tmp_path))}
    out = await tools["cloudops.DescribeResource"].handler({"resource_type": "pods", "name": "ghost-1"})
    assert out.status == "error" and out.text.startswith('Error from server (NotFound): pods "ghost-1" not found')
    listed = await tools["cloudops.GetResources"].handler({"resource_type": "secrets"})
    assert listed.text == "No resources found in boutique namespace."
    other = await tools["cloudops.GetAppYAML"].handler({"app_name": "ghost"})
    assert other.status == "error" and "NotFound" in other.text
    bad = await tools["cloudops.GetResources"].handler({"resource_type": "pods", "invented": True})
    assert bad.status == "error" and "invented" in bad.text


async def test_calls_are_recorded_for_trajectory_scoring(tmp_path):
    case = ReplayCase.open(_case(tmp_path))
    tools = {t.name: t for t in replay_tools(tmp_path, case=case)}
    await tools["cloudops.GetResources"].handler({"resource_type": "pods"})
    await tools["cloudops.GetAppYAML"].handler({"app_name": "ghost"})
    assert [(c["tool"], c["hit"]) for c in case.calls] == [("GetResources", True), ("GetAppYAML", False)]


def test_not_a_case_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a Cloud-OpsBench case"):
        replay_tools(tmp_path)


@needs_data
async def test_every_recorded_key_is_reachable_through_the_pack():
    """Sampled keys of the real cases: calling the tool with the recorded arguments returns the recording."""
    rng = random.Random(7)
    for case_dir in rng.sample(CASES, min(6, len(CASES))):
        tools = {t.name.split(".", 1)[1]: t for t in replay_tools(case_dir)}
        cache = json.loads((case_dir / "tool_cache.json").read_text())
        keys = [k for k in cache if ":" in k]
        for key in rng.sample(keys, min(60, len(keys))):
            tool, _, raw = key.partition(":")
            args = json.loads(raw)
            out = await tools[tool].handler(args)
            recorded = cache[key]
            assert out.status == "ok", (case_dir, key, out.text[:200])
            if isinstance(recorded, str) and recorded.strip():
                assert out.text == recorded, (case_dir, key)
