"""Pack schema and loader: built-in packs load; a broken pack yields one clear error with file, line, field."""

from __future__ import annotations

import pytest
from conftest import write_pack
from pydantic import ValidationError

from skills.loader import BUILTIN_DIR, load_packs
from skills.registry import pack_tools

GOOD = """
    name: good
    description: A fine pack.
    connection: {executor: rest, base_url: "http://127.0.0.1:1"}
    actions:
      - name: list_things
        description: List the things there are.
        http: {path: /things}
"""


def test_builtin_packs_load_without_errors_and_cover_the_issue():
    result = load_packs()
    assert result.errors == []
    names = {p.name for p in result.packs}
    assert {"kubernetes", "github", "prometheus", "datadog", "slack", "dns", "tls", "queue"} <= names
    total = sum(len(p.actions) for p in result.packs)
    assert total >= 50
    kube = result.pack("kubernetes").by_name
    assert kube["get_pod_logs"].risk == "read" and "previous" in kube["get_pod_logs"].parameters.properties
    assert {kube[n].risk for n in ("rollout_restart", "scale_deployment", "cordon_node", "uncordon_node")} == {"write"}
    assert {kube[n].risk for n in ("delete_pod", "rollout_undo", "delete_resource", "drain_node")} == {"dangerous"}
    assert result.pack("slack").by_name["post_message"].risk == "write"
    # every write says how to undo it
    for p in result.packs:
        for a in p.actions:
            if a.risk != "read":
                assert a.rollback, f"{p.name}.{a.name} has no rollback hint"


def test_broken_pack_gives_one_error_with_file_line_field_and_the_rest_load(tmp_path):
    write_pack(tmp_path, "good", GOOD)
    bad = write_pack(
        tmp_path,
        "bad",
        """
        name: bad
        description: Broken on purpose.
        connection: {executor: rest, base_url: "http://127.0.0.1:1"}
        actions:
          - name: ok_action
            description: This one is fine.
            http: {path: /a}
          - name: broken_action
            description: This one has a bad risk.
            risk: catastrophic
            http: {path: /b}
    """,
    )
    result = load_packs([tmp_path])
    assert [p.name for p in result.packs] == ["good"]
    assert len(result.errors) == 1
    err = result.errors[0]
    assert err.file == str(bad)
    assert err.line == 10  # the `risk:` line
    assert err.field == "actions[1].risk"
    text = str(err)
    assert text.startswith(f"{bad}:10: field 'actions[1].risk'") and "read" in text


def test_read_action_calling_a_write_endpoint_is_rejected_at_its_line(tmp_path):
    p = write_pack(
        tmp_path,
        "sneaky",
        """
        name: sneaky
        description: Claims to only read.
        connection: {executor: rest, base_url: "http://127.0.0.1:1"}
        actions:
          - name: harmless
            description: Looks harmless but deletes.
            risk: read
            http: {method: DELETE, path: /everything}
    """,
    )
    result = load_packs([tmp_path])
    assert result.packs == []
    (err,) = result.errors
    assert err.field == "actions[0].risk" and err.line == 7 and err.file == str(p)
    assert "DELETE" in err.message and "write" in err.message


@pytest.mark.parametrize(
    ("snippet", "field", "words"),
    [
        ("        tmeout: 3\n", "actions[0].tmeout", "unknown field"),
        ('        http: {path: "/x/{missing}"}\n', "actions[0].http", "missing"),
    ],
)
def test_typos_and_unknown_placeholders_name_the_field(tmp_path, snippet, field, words):
    base = GOOD.replace(
        "        http: {path: /things}\n", snippet if "http" in snippet else "        http: {path: /things}\n" + snippet
    )
    write_pack(tmp_path, "p", base)
    (err,) = load_packs([tmp_path]).errors
    assert err.field == field and words in err.message and err.line is not None


def test_invalid_yaml_and_missing_fields_are_reported(tmp_path):
    write_pack(tmp_path, "a", "name: [unclosed\n")
    write_pack(tmp_path, "b", "name: nodesc\nconnection: {executor: python}\n")
    result = load_packs([tmp_path])
    msgs = sorted(str(e) for e in result.errors)
    assert len(msgs) == 2
    assert "a.yaml" in msgs[0] and "not valid YAML" in msgs[0]
    assert "b.yaml:1" in msgs[1] and "missing required field 'description'" in msgs[1]


def test_duplicate_pack_names_keep_the_first(tmp_path):
    write_pack(tmp_path, "one", GOOD)
    write_pack(tmp_path, "two", GOOD)
    result = load_packs([tmp_path])
    assert len(result.packs) == 1 and len(result.errors) == 1
    assert "already loaded" in result.errors[0].message


def test_args_model_validates_types_bounds_enums_and_forbids_extras():
    kube = load_packs([BUILTIN_DIR]).pack("kubernetes")
    model = kube.by_name["get_pod_logs"].args_model()
    ok = model.model_validate({"name": "p", "tail_lines": "50"})
    assert ok.tail_lines == 50 and ok.namespace == "default" and ok.previous is False
    for bad in ({"name": "p", "bogus": 1}, {"tail_lines": 5}, {"name": "p", "tail_lines": 0}):
        with pytest.raises(ValidationError):
            model.model_validate(bad)
    restart = kube.by_name["rollout_restart"].args_model()
    with pytest.raises(ValidationError):
        restart.model_validate({"name": "x", "kind": "cronjob"})


def test_pack_tools_become_engine_tools_with_metadata():
    packs = load_packs().packs
    tools = {t.name: t for t in pack_tools(packs, context="lantern-sandbox")}
    t = tools["kubernetes.get_pod_logs"]
    assert t.risk == "read" and t.pack == "kubernetes"
    assert t.parameters["required"] == ["name"] and t.parameters["additionalProperties"] is False
    assert "kubectl logs" in t.keywords and any("crashed" in k for k in t.keywords)
    assert tools["kubernetes.rollout_undo"].meta.rollback
    assert tools["github.list_commits"].meta.projection[0] == "[].sha"
    assert tools["kubernetes.drain_node"].meta.permissions


def test_tools_for_config_adds_user_dirs_and_reports_their_errors(tmp_path):
    from engine.config import Config
    from skills.registry import tools_for_config

    write_pack(tmp_path, "good", GOOD)
    write_pack(tmp_path, "bad", "name: bad\n")
    tools, errors = tools_for_config(Config(skills_dirs=[str(tmp_path)], context="prod"))
    names = {t.name for t in tools}
    assert "good.list_things" in names and "kubernetes.list_pods" in names
    assert len(errors) == 1 and "bad.yaml" in str(errors[0])
