"""The kubernetes pack's fixes against the real sandbox API server: each previews with a dry run
(a diff, nothing changed), then changes the cluster and returns the values it replaced."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

testing = pytest.importorskip("sandbox.testing", reason="the sandbox (sandbox/testing.py) is not in this tree")

from engine.tools import PreviewFailed  # noqa: E402
from skills.kube.client import clear_cache  # noqa: E402
from skills.loader import load_packs  # noqa: E402
from skills.registry import pack_tools  # noqa: E402

pytestmark = pytest.mark.sandbox


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    """A running sandbox with the oom scenario (report-worker, its ConfigMap, report-api)."""
    from sandbox.scenario import apply_scenario

    with testing.sandbox_for_tests(tmp_path_factory.mktemp("sandbox"), nodes=1, time_scale=0.3) as info:
        apply_scenario("oom", home=info.home)
        yield info


@pytest.fixture
def tools(sandbox, monkeypatch):
    """Every kubernetes action as a Tool bound to the sandbox context."""
    monkeypatch.setenv("KUBECONFIG", str(sandbox.kubeconfig))
    clear_cache()
    packs = [p for p in load_packs().packs if p.name == "kubernetes"]
    yield {t.name: t for t in pack_tools(packs, context=sandbox.context)}
    clear_cache()


def added(diff: str, text: str) -> bool:
    """Whether the diff adds a line with `text` (indentation aside)."""
    return any(line.startswith("+") and line[1:].strip() == text for line in diff.splitlines())


def removed(diff: str, text: str) -> bool:
    """Whether the diff removes a line with `text` (indentation aside)."""
    return any(line.startswith("-") and line[1:].strip() == text for line in diff.splitlines())


def _deploy(sandbox, name="report-worker"):
    _, _, apps = testing.k8s_clients(sandbox)
    return apps.read_namespaced_deployment(name, "analytics")


async def test_set_resources_previews_then_raises_the_limit_and_records_the_old_one(sandbox, tools):
    tool = tools["kubernetes.set_resources"]
    args = {"name": "report-worker", "namespace": "analytics", "limits_memory": "768Mi"}
    preview = await tool.preview(args)
    assert removed(preview.diff, "memory: 256Mi") and added(preview.diff, "memory: 768Mi")
    assert (
        "managedFields" not in preview.diff and "resourceVersion" not in preview.diff and "status:" not in preview.diff
    )
    assert preview.objects == ["Deployment/analytics/report-worker"]
    assert (
        _deploy(sandbox).spec.template.spec.containers[0].resources.limits["memory"] == "256Mi"
    )  # a dry run changes nothing
    out = await tool.handler(args)
    assert out.status == "ok", out.text
    assert out.data["previous"]["limits"] == {"memory": "256Mi"} and "limits_memory=256Mi" in out.data["undo"]
    assert _deploy(sandbox).spec.template.spec.containers[0].resources.limits["memory"] == "768Mi"


async def test_a_dry_run_the_server_rejects_fails_the_preview_with_its_error(tools):
    with pytest.raises(PreviewFailed, match="quantities must match|Invalid value"):
        await tools["kubernetes.set_resources"].preview(
            {"name": "report-worker", "namespace": "analytics", "limits_memory": "lots"}
        )
    with pytest.raises(PreviewFailed, match="no container 'nope'"):
        await tools["kubernetes.set_image"].preview(
            {"name": "report-worker", "namespace": "analytics", "container": "nope", "image": "x:1"}
        )


async def test_set_env_literal_from_configmap_and_unset(sandbox, tools):
    tool = tools["kubernetes.set_env"]
    base = {"name": "report-api", "namespace": "analytics"}
    preview = await tool.preview({**base, "env_name": "TIMEOUT_MS", "value": "3000"})
    assert added(preview.diff, "- name: TIMEOUT_MS")
    out = await tool.handler({**base, "env_name": "TIMEOUT_MS", "value": "3000"})
    assert out.status == "ok" and out.data["previous"]["env"] is None and "unset=true" in out.data["undo"]
    out = await tool.handler({**base, "env_name": "SHARDS", "from_configmap": "report-worker-config"})
    assert out.status == "ok", out.text
    env = {e.name: e for e in _deploy(sandbox, "report-api").spec.template.spec.containers[0].env}
    assert env["TIMEOUT_MS"].value == "3000" and env["SHARDS"].value_from.config_map_key_ref.key == "SHARDS"
    out = await tool.handler({**base, "env_name": "TIMEOUT_MS", "unset": True})
    assert out.status == "ok" and out.data["previous"]["env"] == {"name": "TIMEOUT_MS", "value": "3000"}
    assert "TIMEOUT_MS" not in {e.name for e in _deploy(sandbox, "report-api").spec.template.spec.containers[0].env}


async def test_set_image_pause_resume_and_configmap_key(sandbox, tools):
    out = await tools["kubernetes.rollout_pause"].handler({"name": "report-api", "namespace": "analytics"})
    assert out.status == "ok" and out.data["previous"] == {"paused": False}
    out = await tools["kubernetes.set_image"].handler(
        {"name": "report-api", "namespace": "analytics", "image": "registry.example.com/data/report-api:2.0.8"}
    )
    assert out.status == "ok" and out.data["previous"]["image"].endswith(":2.0.7")
    # the same image again: the dry run says it changes nothing (and the dispatcher asks no one)
    same = {"name": "report-api", "namespace": "analytics", "image": "registry.example.com/data/report-api:2.0.8"}
    again = await tools["kubernetes.set_image"].preview(same)
    assert again.unchanged and again.diff == "" and "no change" in again.note
    assert (
        await tools["kubernetes.rollout_resume"].handler({"name": "report-api", "namespace": "analytics"})
    ).status == "ok"
    assert not _deploy(sandbox, "report-api").spec.paused
    cm = tools["kubernetes.edit_configmap_key"]
    preview = await cm.preview(
        {"name": "report-worker-config", "namespace": "analytics", "key": "SHARDS", "value": "4"}
    )
    assert removed(preview.diff, "SHARDS: '8'") and added(preview.diff, "SHARDS: '4'")
    out = await cm.handler({"name": "report-worker-config", "namespace": "analytics", "key": "SHARDS", "value": "4"})
    assert out.data["previous"] == {"key": "SHARDS", "value": "8"}


async def test_patch_apply_and_tls_secret(sandbox, tools, tmp_path):
    bad = await tools["kubernetes.patch_resource"].handler(
        {"kind": "service", "name": "report-api", "namespace": "analytics", "patch": "{spec: [", "patch_type": "merge"}
    )
    assert bad.status == "error" and "does not parse" in bad.text and "Traceback" not in bad.text
    out = await tools["kubernetes.patch_resource"].handler(
        {
            "kind": "service",
            "name": "report-api",
            "namespace": "analytics",
            "patch": '{"metadata": {"labels": {"fixed": "yes"}}}',
        }
    )
    assert out.status == "ok" and out.data["previous"]["kind"] == "Service"
    manifest = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: extra}\ndata: {A: '1'}\n---\napiVersion: v1\nkind: Nope\nmetadata: {name: x}\n"
    with pytest.raises(PreviewFailed, match="Nope"):
        await tools["kubernetes.apply_manifest"].preview({"manifest": manifest, "namespace": "analytics"})
    good = manifest.split("---")[0]
    preview = await tools["kubernetes.apply_manifest"].preview({"manifest": good, "namespace": "analytics"})
    assert added(preview.diff, "A: '1'") and preview.objects == ["ConfigMap/analytics/extra"]
    out = await tools["kubernetes.apply_manifest"].handler({"manifest": good, "namespace": "analytics"})
    assert out.status == "ok" and out.data["applied"] == ["ConfigMap/analytics/extra"] and "delete" in out.data["undo"]

    from sandbox import pki

    ca_cert, ca_key = pki.make_ca()
    cert, key = pki.issue(ca_cert, ca_key, "report.example.com", sans=["report.example.com"])
    (tmp_path / "tls.crt").write_bytes(cert)
    (tmp_path / "tls.key").write_bytes(key)
    args = {
        "name": "report-tls",
        "namespace": "analytics",
        "cert": str(tmp_path / "tls.crt"),
        "key": str(tmp_path / "tls.key"),
    }
    preview = await tools["kubernetes.set_tls_secret"].preview(args)
    assert "tls.key: <" in preview.diff and "PRIVATE" not in preview.diff  # secret values never appear in a diff
    assert (await tools["kubernetes.set_tls_secret"].handler(args)).status == "ok"
    out = await tools["kubernetes.set_tls_secret"].handler(args)  # now a replace
    assert out.status == "ok" and out.data["previous"]["existed"] is True
    wrong = await tools["kubernetes.set_tls_secret"].handler({**args, "key": ca_key.decode()})
    assert wrong.status == "error" and "does not belong" in wrong.text


async def test_existing_writes_preview_too(tools):
    p = await tools["kubernetes.scale_deployment"].preview(
        {"name": "report-api", "namespace": "analytics", "replicas": 3}
    )
    assert removed(p.diff, "replicas: 1") and added(p.diff, "replicas: 3")
    p = await tools["kubernetes.rollout_restart"].preview({"name": "report-api", "namespace": "analytics"})
    assert "kubectl.kubernetes.io/restartedAt" in p.diff
    p = await tools["kubernetes.delete_resource"].preview(
        {"kind": "configmap", "name": "extra", "namespace": "analytics"}
    )
    assert removed(p.diff, "A: '1'") and not [
        x for x in p.diff.splitlines() if x.startswith("+") and not x.startswith("+++")
    ]


async def test_create_job_from_a_cronjob_on_a_server_with_only_v1beta1(tools):
    manifest = """apiVersion: batch/v1beta1
kind: CronJob
metadata: {name: nightly}
spec:
  schedule: "0 3 * * *"
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: Never
          containers: [{name: run, image: registry.example.com/data/report-worker:4.1.0}]
"""
    assert (
        await tools["kubernetes.apply_manifest"].handler({"manifest": manifest, "namespace": "analytics"})
    ).status == "ok"
    args = {"cronjob": "nightly", "namespace": "analytics", "job_name": "nightly-now"}
    preview = await tools["kubernetes.create_job_from_cronjob"].preview(args)
    assert preview.objects == ["Job/analytics/nightly-now"] and added(
        preview.diff, "cronjob.kubernetes.io/instantiate: manual"
    )
    out = await tools["kubernetes.create_job_from_cronjob"].handler(args)
    assert out.status == "ok" and out.data["undo"] == "delete_resource job nightly-now"


MULTI = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: fresh}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: web, image: "registry.example.com/data/report-api:2.0.7"}]
---
apiVersion: v1
kind: ConfigMap
metadata: {name: web-config, namespace: fresh}
data: {MODE: fast}
---
apiVersion: v1
kind: Namespace
metadata: {name: fresh}
"""


async def test_a_multi_document_manifest_previews_and_applies_in_dependency_order(sandbox, tools):
    tool = tools["kubernetes.apply_manifest"]
    preview = await tool.preview({"manifest": MULTI})
    # the namespace first; what lives in it cannot be dry-run before it exists, so it is shown as written
    assert preview.objects == ["Namespace/fresh", "ConfigMap/fresh/web-config", "Deployment/fresh/web"]
    assert (
        added(preview.diff, "MODE: fast")
        and "as-written/Deployment/fresh/web (namespace fresh is document 3)" in preview.diff
    )
    assert "its namespace is created by document 3" in preview.note
    out = await tool.handler({"manifest": MULTI})
    assert out.status == "ok" and out.data["applied"] == [
        "Namespace/fresh",
        "ConfigMap/fresh/web-config",
        "Deployment/fresh/web",
    ]
    assert _deploy_in(sandbox, "fresh", "web").spec.template.spec.containers[0].image.endswith(":2.0.7")


def _deploy_in(sandbox, ns, name):
    _, _, apps = testing.k8s_clients(sandbox)
    return apps.read_namespaced_deployment(name, ns)


async def test_one_failing_document_stops_the_rest_and_says_which(sandbox, tools):
    manifest = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: broken}
spec:
  selector: {matchLabels: {app: broken}}
  template:
    metadata: {labels: {app: broken}}
    spec:
      containers:
      - name: broken
        image: registry.example.com/data/report-api:2.0.7
        imagePullPolicyy: Always
---
apiVersion: v1
kind: ConfigMap
metadata: {name: before-broken}
data: {A: "1"}
---
apiVersion: autoscaling/v1
kind: HorizontalPodAutoscaler
metadata: {name: broken}
spec: {maxReplicas: 3, scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: broken}}
"""
    tool = tools["kubernetes.apply_manifest"]
    args = {"manifest": manifest, "namespace": "analytics"}
    with pytest.raises(PreviewFailed) as info:
        await tool.preview(args)
    assert str(info.value) == (
        "document 1 of 3 (Deployment analytics/broken, line 1) failed: line 12: "
        "spec.template.spec.containers[0].imagePullPolicyy: field not declared in schema (API server); "
        "not checked: document 3 (HorizontalPodAutoscaler broken)"
    )
    out = await tool.handler(args)
    assert out.status == "error" and "\n" not in out.text.strip() and "Traceback" not in out.text
    assert (
        "document 1 of 3 (Deployment analytics/broken, line 1) failed: line 12: spec.template.spec.containers[0].imagePullPolicyy"
        in out.text
        and "not applied: document 3 (HorizontalPodAutoscaler broken); applied before it: ConfigMap/analytics/before-broken"
        in out.text
    )
    _, core, _ = testing.k8s_clients(sandbox)
    assert core.read_namespaced_config_map("before-broken", "analytics").data == {"A": "1"}


async def test_the_cluster_schema_and_the_api_servers_dry_run(sandbox, monkeypatch):
    from skills.kube import schema

    monkeypatch.setenv("KUBECONFIG", str(sandbox.kubeconfig))
    clear_cache()
    schema.clear()
    check = schema.ClusterCheck(sandbox.context)
    s = check.schema()
    assert s.source == "openapi/v2" and s is check.schema(), "fetched once per cluster"
    (doc,) = schema.compose(MULTI.split("---")[0].replace('image: "', 'imagePullPolicy: 3, image: "'))
    assert [(p.line, p.text) for p in s.check(doc)] == [
        (9, 'spec.template.spec.containers[0].imagePullPolicy: expected string, got integer 3 (quote it: "3")')
    ]
    (doc,) = schema.compose(
        MULTI.split("---")[0]
        .replace("namespace: fresh", "namespace: analytics")
        .replace('image: "', 'imagePullPolicyy: x, image: "')
    )
    assert [(p.line, p.text) for p in check.dry_run([doc])] == [
        (9, "spec.template.spec.containers[0].imagePullPolicyy: field not declared in schema (API server)")
    ]
