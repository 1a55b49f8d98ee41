"""Manifest validation: YAML errors at their line, required fields, unknown fields from the client schema."""

from __future__ import annotations

import pytest

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
