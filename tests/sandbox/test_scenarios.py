"""Scenario files and the parts of the sandbox that need no running cluster."""

from __future__ import annotations

import datetime as dt

import pytest

from sandbox import cluster
from sandbox.scenario import Match, ScenarioError, World, load_scenario, parse_quantity, rule_matches


def test_scenario_files_validate():
    for name in (
        "oom",
        "bad-deploy",
        "expired-cert",
        "dns",
        "queue-backlog",
        "image-pull",
        "missing-config-key",
        "wrong-selector",
        "wrong-port",
    ):
        sc = load_scenario(name)
        assert sc.symptom and sc.namespace and sc.manifests


def test_broken_scenario_names_file_and_field(tmp_path):
    p = tmp_path / "broken.yaml"
    p.write_text("name: x\ntitle: t\nsymptom: s\nnamespace: n\nmanifests: []\nrules: [{behaviour: explode}]\n")
    with pytest.raises(ScenarioError) as err:
        load_scenario(p)
    assert str(p) in str(err.value) and "rules.0.behaviour" in str(err.value)


def test_default_world_defers_to_a_real_kubeconfig(tmp_path, monkeypatch):
    kc = tmp_path / "config"
    kc.write_text("apiVersion: v1\nkind: Config\n")
    monkeypatch.setenv("KUBECONFIG", str(kc))
    assert cluster.default_world(home=tmp_path / "sb") is None
    assert not (tmp_path / "sb").exists()


def _pod(image="app:1", limit=None, env=None):
    c = {"name": "c", "image": image, "env": env or []}
    if limit:
        c["resources"] = {"limits": {"memory": limit}}
    return {"metadata": {"namespace": "ns", "labels": {"app": "a"}}, "spec": {"containers": [c]}}, c


def test_rules_read_the_live_spec_and_cluster_objects():
    now = dt.datetime.now(dt.UTC)
    world = World(
        services=[{"metadata": {"namespace": "ns", "name": "inventory-svc"}}],
        secrets=[],
        configmaps=[{"metadata": {"namespace": "ns", "name": "cfg"}, "data": {"URL": "http://inventory:8080"}}],
    )
    pod, c = _pod(limit="256Mi")
    assert rule_matches(Match(memory_limit_below="512Mi"), pod, c, world, now)
    pod, c = _pod(limit="1Gi")
    assert not rule_matches(Match(memory_limit_below="512Mi"), pod, c, world, now)
    pod, c = _pod(env=[{"name": "URL", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "URL"}}}])
    assert rule_matches(Match(env_service_missing="URL"), pod, c, world, now)
    world.services.add(("ns", "inventory"))
    assert not rule_matches(Match(env_service_missing="URL"), pod, c, world, now)
    assert rule_matches(Match(image="app:*", pod_labels={"app": "a"}), pod, c, world, now)
    assert not rule_matches(Match(image="app:2*"), pod, c, world, now)
    assert parse_quantity("1Gi") == 2**30 and parse_quantity("500M") == 5e8


def test_missing_config_key_is_a_create_container_config_error():
    world = World([], [], [{"metadata": {"namespace": "ns", "name": "cfg"}, "data": {}}])
    _, c = _pod(env=[{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "X"}}}])
    assert "couldn't find key X" in world.missing_refs("ns", c)
    _, c = _pod(env=[{"name": "X", "valueFrom": {"secretKeyRef": {"name": "gone", "key": "X"}}}])
    assert world.missing_refs("ns", c) == 'secret "gone" not found'


def test_up_without_binaries_says_how_to_build(tmp_path, monkeypatch):
    from sandbox import build

    monkeypatch.setenv("LANTERN_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(build, "find_etcd", lambda: None)
    with pytest.raises(cluster.SandboxError, match="lantern sandbox build"):
        cluster.up(tmp_path / "sb")


def test_build_adds_a_deb_src_twin_of_each_deb_stanza():
    from sandbox.build import _deb_src_stanzas

    text = (
        "Types: deb\n# snapshot\nURIs: http://deb.debian.org/debian\nSuites: bookworm bookworm-updates\n"
        "Components: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\n"
        "Types: deb deb-src\nURIs: http://example.org\nSuites: x\nComponents: main\n"
    )
    (twin,) = _deb_src_stanzas(text)
    assert twin.startswith("Types: deb-src\n") and "Suites: bookworm bookworm-updates" in twin and "#" not in twin
