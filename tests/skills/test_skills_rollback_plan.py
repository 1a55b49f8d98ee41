"""kubectl-style rollback planning (pure data, no cluster): which revision, which template, which patch."""

from __future__ import annotations

import copy

import pytest

from skills.kube.write import RollbackError, plan_rollback

REV = "deployment.kubernetes.io/revision"


def _tmpl(image: str, h: str) -> dict:
    return {
        "metadata": {"labels": {"app": "api", "pod-template-hash": h}},
        "spec": {"containers": [{"name": "api", "image": image}]},
    }


def _rs(name: str, rev: int, image: str, h: str, cause: str | None = None) -> dict:
    ann = {REV: str(rev), "deployment.kubernetes.io/desired-replicas": "3"}
    if cause:
        ann["kubernetes.io/change-cause"] = cause
    return {"metadata": {"name": name, "annotations": ann}, "spec": {"template": _tmpl(image, h)}}


def _dep(image: str, rev: int, paused: bool = False) -> dict:
    t = _tmpl(image, "x")
    del t["metadata"]["labels"]["pod-template-hash"]
    return {
        "metadata": {
            "name": "api",
            "namespace": "shop",
            "annotations": {REV: str(rev), "kubernetes.io/change-cause": "deploy 3"},
        },
        "spec": {"paused": paused, "template": t},
    }


HISTORY = [
    _rs("api-a", 1, "api:1", "a", "deploy 1"),
    _rs("api-b", 2, "api:2", "b", "deploy 2"),
    _rs("api-c", 3, "api:3", "c", "deploy 3"),
]


def test_default_target_is_the_previous_revision_and_the_patch_restores_its_template():
    plan = plan_rollback(_dep("api:3", 3), copy.deepcopy(HISTORY))
    assert plan["to_revision"] == 2 and plan["from_revision"] == 3 and plan["replicaset"] == "api-b"
    ops = {op["path"]: op["value"] for op in plan["patch"]}
    assert ops["/spec/template"]["spec"]["containers"][0]["image"] == "api:2"
    # the controller's hash label is not copied back into the deployment template
    assert "pod-template-hash" not in ops["/spec/template"]["metadata"]["labels"]
    # change-cause comes from the restored ReplicaSet; the revision and replica bookkeeping do not
    assert ops["/metadata/annotations"]["kubernetes.io/change-cause"] == "deploy 2"
    assert ops["/metadata/annotations"][REV] == "3"
    assert "deployment.kubernetes.io/desired-replicas" not in ops["/metadata/annotations"]


def test_explicit_revision_and_unknown_revision():
    assert plan_rollback(_dep("api:3", 3), HISTORY, to_revision=1)["images"] == ["api:1"]
    with pytest.raises(RollbackError, match="unable to find revision 7"):
        plan_rollback(_dep("api:3", 3), HISTORY, to_revision=7)


def test_no_history_paused_and_already_there():
    with pytest.raises(RollbackError, match="no earlier revision"):
        plan_rollback(_dep("api:1", 1), HISTORY[:1])
    with pytest.raises(RollbackError, match="paused"):
        plan_rollback(_dep("api:3", 3, paused=True), HISTORY)
    same = plan_rollback(_dep("api:2", 3), HISTORY, to_revision=2)
    assert same["patch"] == [] and "already matches" in same["skip"]
