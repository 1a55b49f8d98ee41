"""Manifest validation: YAML errors at their line, required fields, unknown fields from the client schema."""

from __future__ import annotations

from typing import Any

import pytest
from textual.widgets import Static

from console.widgets.inspector.inspector import Inspector, IssueList
from console.widgets.inspector.validate import check, model_class

models = pytest.importorskip("kubernetes.client.models")

GOOD = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: api
spec:
  selector:
    matchLabels: {app: api}
  template:
    metadata:
      labels: {app: api}
    spec:
      containers:
      - name: api
        image: api:1
        resources:
          limits: {memory: 512Mi, cpu: 1}
---
apiVersion: v1
kind: Service
metadata:
  name: api
spec:
  ports:
  - port: 80
    targetPort: http
"""


def test_valid_multi_document_manifest() -> None:
    r = check(GOOD, models)
    assert r.ok, r.issues
    assert [d.title for d in r.documents] == ["Deployment api", "Service api"]


def test_syntax_error_is_reported_at_its_line() -> None:
    r = check(GOOD + "  selector: app: api\n", models)
    assert not r.ok
    assert r.issues[0].line == 26 and "YAML syntax" in r.issues[0].message


def test_unknown_field_is_flagged_with_a_suggestion_at_its_line() -> None:
    text = GOOD.replace("        image: api:1\n", "        image: api:1\n        imagePullPolicyy: Always\n")
    r = check(text, models)
    (issue,) = [i for i in r.issues if "unknown field" in i.message]
    assert issue.line == 15
    assert "imagePullPolicyy" in issue.message and "did you mean imagePullPolicy" in issue.message


def test_required_fields_and_wrong_shapes() -> None:
    r = check(
        "kind: Service\nmetadata: {}\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec:\n  replicas: three\n",
        models,
    )
    messages = [(i.line, i.message) for i in r.issues]
    assert (1, "missing required field apiVersion") in messages
    assert any("metadata.name" in m for _, m in messages)
    assert (8, "spec.replicas: expected a number, got 'three'") in messages


def test_custom_resources_are_not_rejected() -> None:
    r = check("apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w}\nspec: {anything: 1}\n", models)
    assert r.ok and any(i.level == "warning" for i in r.issues)


def test_model_class_lookup() -> None:
    assert model_class("apps/v1", "Deployment", models).__name__ == "V1Deployment"
    assert model_class("networking.k8s.io/v1", "Ingress", models).__name__ == "V1Ingress"
    assert model_class("v1", "Pod", models).__name__ == "V1Pod"


# -- against the cluster's own schema (injected: the sandbox run is in tests/e2e) -------------------
class FakeCluster:
    """A ClusterCheck stand-in: the schema of tests/skills' mini cluster, and an API server that refuses one field."""

    def __init__(self, refuse: str = "", down: str = "") -> None:
        self.refuse, self.down = refuse, down
        self.dry_runs = 0

    def schema(self) -> Any:
        if self.down:
            from skills.kube.schema import SchemaUnavailable

            raise SchemaUnavailable(self.down)
        from tests.skills.test_skills_kube_schema import v2

        return v2()

    def dry_run(self, docs: list[Any], namespace: str = "default") -> list[Any]:
        from skills.kube.schema import server_problems

        self.dry_runs += 1
        return [p for d in docs for p in server_problems(d, self.refuse)] if self.refuse else []


async def _inspect(cluster: Any, text: str) -> tuple[Inspector, list[str], str]:
    """Paste `text` into an inspector over `cluster`; (the inspector, the problem lines shown, the status line)."""
    from textual.app import App

    class Harness(App[None]):
        def compose(self):  # type: ignore[no-untyped-def]
            yield Inspector(id="inspector", models=models, cluster=lambda: cluster, debounce_s=0.01)

    app = Harness()
    async with app.run_test(size=(120, 30)) as pilot:
        inspector = app.query_one(Inspector)
        inspector.load_text(text)
        for _ in range(200):
            await pilot.pause(0.02)
            if inspector.report is not None or (
                not text.strip() and str(inspector.query_one("#inspector-status", Static).content)
            ):
                break
        await pilot.pause(0.05)
        issues = inspector.query_one(IssueList)
        shown = [str(issues.get_option_at_index(i).prompt) for i in range(issues.option_count)]
        inspector.final_text = inspector.text  # type: ignore[attr-defined]
        return inspector, shown, str(inspector.query_one("#inspector-status", Static).content)


async def test_a_wrong_field_is_named_with_its_line_from_the_cluster_schema() -> None:
    cluster = FakeCluster()
    _, shown, status = await _inspect(
        cluster,
        GOOD_FOR_MINI.replace("        image: api:1\n", "        image: api:1\n        imagePullPolicyy: Always\n"),
    )
    assert shown == [
        "L13  ✗ spec.template.spec.containers[0].imagePullPolicyy: unknown field (did you mean imagePullPolicy?)"
    ]
    assert status.startswith("✗ 1 problem · Deployment api · checked against test-cluster openapi/v2")
    assert cluster.dry_runs == 0, "a paste the schema rejects is not sent to the API server"


async def test_the_api_servers_dry_run_has_the_last_word() -> None:
    cluster = FakeCluster(refuse='.spec.template.spec.containers[name="api"].image: field is immutable')
    inspector, shown, status = await _inspect(cluster, GOOD_FOR_MINI)
    assert shown == ["L12  ✗ spec.template.spec.containers[0].image: field is immutable (API server)"]
    assert not inspector.report.ok and cluster.dry_runs == 1
    _, shown, status = await _inspect(FakeCluster(), GOOD_FOR_MINI)
    assert (
        shown == []
        and status
        == "✓ 1 valid: Deployment api  · checked against test-cluster openapi/v2 and its API server's dry run"
    )


async def test_no_cluster_says_so_in_one_line_and_checks_locally() -> None:
    down = "cannot reach the Kubernetes API server (is the cluster up? try `lantern sandbox status`)"
    text = GOOD_FOR_MINI.replace("        image: api:1\n", "        image: api:1\n        imagePullPolicyy: Always\n")
    _, shown, status = await _inspect(FakeCluster(down=down), text)
    assert (
        status
        == f"✗ 1 problem · Deployment api · no cluster schema ({down}); checked against the client's built-in schema"
    )
    assert shown and shown[0].startswith("L13  ✗ spec.template.spec.containers[0].imagePullPolicyy: unknown field")


async def test_unreadable_and_empty_pastes_are_one_line() -> None:
    # what a terminal hands over as lone surrogates is shown as U+FFFD, never a crash of the editor
    inspector, shown, status = await _inspect(
        FakeCluster(), 'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\ndata: {a: "\ud800", b: "\ud83d\ude00"}\n'
    )
    assert 'a: "\ufffd", b: "\U0001f600"' in inspector.final_text and not any("✗" in s for s in shown)
    _, shown, status = await _inspect(
        FakeCluster(), 'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\ndata: {a: "\x00"}\n'
    )
    assert shown == ["L4   ✗ YAML: character #x0000 is not allowed in YAML (special characters are not allowed)"]
    _, shown, status = await _inspect(FakeCluster(), "   \n")
    assert shown == [] and status == "Paste one or more manifests (--- between documents)."


GOOD_FOR_MINI = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: api
  labels: {app: api}
spec:
  replicas: 2
  template:
    spec:
      containers:
      - name: api
        image: api:1
"""


async def test_a_paste_lands_once_and_one_that_is_not_unicode_is_mended() -> None:
    from textual import events
    from textual.app import App

    class Harness(App[None]):
        def compose(self):  # type: ignore[no-untyped-def]
            yield Inspector(id="inspector", models=models, cluster=lambda: FakeCluster(), debounce_s=0.01)

    app = Harness()
    async with app.run_test(size=(100, 30)) as pilot:
        inspector = app.query_one(Inspector)
        inspector.query_one("#manifest").focus()
        app.post_message(events.Paste(GOOD_FOR_MINI))
        await pilot.pause(0.2)
        assert inspector.text == GOOD_FOR_MINI
        inspector.query_one("#manifest").load_text("")  # type: ignore[attr-defined]
        app.post_message(events.Paste('data: {a: "\ud800"}\n'))
        await pilot.pause(0.2)
        assert inspector.text == 'data: {a: "\ufffd"}\n'
        assert [n.message for n in app._notifications] == [
            "The paste had 1 character that is not valid Unicode; shown as \ufffd."
        ]
