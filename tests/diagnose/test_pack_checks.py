"""A pack names the checks that read its outputs and the reads its actions answer; a bad
declaration fails at load with the file, the line and the field."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from engine.diagnose import Read
from skills.loader import load_packs
from skills.registry import checks_for
from skills.replay import cloudops_pack

PACK = """
name: p
description: A pack with checks.
connection: {executor: replay}
checks: ["skills.kube.checks:KubernetesChecks"]
actions:
  - name: Describe
    description: Describe one object.
    tool: Describe
    serves:
      describe_pod: {kind: pods, name: "{name}"}
    parameters:
      properties:
        kind: {type: string}
        name: {type: string}
      required: [kind, name]
"""


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "p.yaml"
    p.write_text(textwrap.dedent(text).lstrip())
    return p


def test_the_packs_checks_and_routes_reach_the_session():
    checks = checks_for([cloudops_pack(), cloudops_pack()])
    assert len(checks.makers) == 1, "a check two packs name runs once"
    d = checks.diagnoser("shop")
    assert d.checks[0] is not checks.diagnoser("shop").checks[0], "each session has checks of its own"
    read = Read.of("describe_pod", {"name": "api-1", "namespace": "shop"}, "pending")
    want = {
        "name": "cloudops.DescribeResource",
        "arguments": {"resource_type": "pods", "name": "api-1", "namespace": "shop"},
    }
    assert d.call_for(read, {"cloudops.DescribeResource"}) == want
    assert d.call_for(read, {"kubernetes.describe_pod"}) is None, "a tool the session does not have answers nothing"


def test_a_pack_without_checks_gives_none():
    assert not checks_for([])


@pytest.mark.parametrize(
    ("old", "new", "field", "words"),
    [
        ('"skills.kube.checks:KubernetesChecks"', '"skills.kube.checks:Nope"', "checks", "cannot load"),
        ('"skills.kube.checks:KubernetesChecks"', '"skills.kube.checks:workload_of"', "checks", "not a check"),
        ('{kind: pods, name: "{name}"}', '{kind: pods, nme: "{name}"}', "actions[0].serves", "unknown parameters nme"),
        ('{kind: pods, name: "{name}"}', "{kind: pods}", "actions[0].serves", "no value for name"),
    ],
)
def test_a_bad_declaration_names_its_field(tmp_path, old, new, field, words):
    p = _write(tmp_path, PACK.replace(old, new))
    result = load_packs([tmp_path])
    (err,) = result.errors
    assert err.file == str(p) and err.field.startswith(field) and words in err.message and err.line is not None


def test_a_write_cannot_serve_a_read(tmp_path):
    _write(tmp_path, PACK.replace("    tool: Describe\n", "    tool: Describe\n    risk: write\n"))
    (err,) = load_packs([tmp_path]).errors
    assert err.field == "actions[0].serves" and "write" in err.message
