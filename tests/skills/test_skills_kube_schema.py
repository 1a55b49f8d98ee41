"""The cluster's own schema for manifests: problems at their lines with their field paths, from a
/openapi/v2 or /openapi/v3 document, and the API server's refusals mapped back to lines."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from skills.kube.schema import (
    ClusterSchema,
    Doc,
    SchemaUnavailable,
    compose,
    locate,
    server_problems,
    yaml_error,
)

REF = "#/definitions/"
DEFS: dict[str, Any] = {
    "io.k8s.api.apps.v1.Deployment": {
        "type": "object",
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"$ref": REF + "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"},
            "spec": {"$ref": REF + "io.k8s.api.apps.v1.DeploymentSpec"},
        },
        "x-kubernetes-group-version-kind": [{"group": "apps", "kind": "Deployment", "version": "v1"}],
    },
    "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta": {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "namespace": {"type": "string"},
            "labels": {"type": "object", "additionalProperties": {"type": "string"}},
        },
    },
    "io.k8s.api.apps.v1.DeploymentSpec": {
        "type": "object",
        "required": ["template"],
        "properties": {
            "replicas": {"type": "integer"},
            "paused": {"type": "boolean"},
            "template": {"$ref": REF + "io.k8s.api.core.v1.PodTemplateSpec"},
        },
    },
    "io.k8s.api.core.v1.PodTemplateSpec": {
        "type": "object",
        "properties": {"spec": {"$ref": REF + "io.k8s.api.core.v1.PodSpec"}},
    },
    "io.k8s.api.core.v1.PodSpec": {
        "type": "object",
        "required": ["containers"],
        "properties": {"containers": {"type": "array", "items": {"$ref": REF + "io.k8s.api.core.v1.Container"}}},
    },
    "io.k8s.api.core.v1.Container": {
        "type": "object",
        "required": ["name"],
        "properties": {
            "name": {"type": "string"},
            "image": {"type": "string"},
            "imagePullPolicy": {"type": "string"},
            "resources": {
                "type": "object",
                "properties": {
                    "limits": {
                        "type": "object",
                        "additionalProperties": {"$ref": REF + "io.k8s.apimachinery.pkg.api.resource.Quantity"},
                    }
                },
            },
            "ports": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {"containerPort": {"type": "integer"}, "name": {"type": "string"}},
                },
            },
        },
    },
    "io.k8s.apimachinery.pkg.api.resource.Quantity": {"type": "string"},
}

GOOD = """\
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
        resources:
          limits: {cpu: 1, memory: 512Mi}
        ports:
        - containerPort: 8080
"""


def v2(defs: dict[str, Any] = DEFS) -> ClusterSchema:
    def fetch(path: str) -> dict[str, Any]:
        if path == "/openapi/v2":
            return {"definitions": defs}
        raise LookupError(path)  # the server predates /openapi/v3

    return ClusterSchema(fetch, label="test-cluster", served=lambda av, kind: kind != "Nope").load()


def problems(text: str, schema: ClusterSchema | None = None) -> list[tuple[int, str]]:
    schema = schema or v2()
    return [(p.line, p.text) for d in compose(text) for p in schema.check(d)]


def test_a_valid_deployment_has_no_problems() -> None:
    s = v2()
    assert s.source == "openapi/v2"
    assert problems(GOOD, s) == []


def test_unknown_field_is_at_its_line_with_its_path_and_a_suggestion() -> None:
    text = GOOD.replace("        image: api:1\n", "        image: api:1\n        imagePullPolicyy: Always\n")
    assert problems(text) == [
        (13, "spec.template.spec.containers[0].imagePullPolicyy: unknown field (did you mean imagePullPolicy?)")
    ]


def test_wrong_types_missing_required_and_duplicates() -> None:
    text = (
        GOOD.replace("  replicas: 2\n", "  replicas: two\n  paused: 1\n")
        .replace("  labels: {app: api}", "  labels: {app: api, version: 2}")
        .replace("      - name: api\n", "      - image: x\n      - name: api\n        name: api2\n")
    )
    got = problems(text)
    assert (5, 'metadata.labels.version: expected string, got integer 2 (quote it: "2")') in got
    assert (7, 'spec.replicas: expected integer, got string "two"') in got
    assert (8, "spec.paused: expected boolean, got integer 1") in got
    assert (12, "spec.template.spec.containers[0].name: missing required field") in got
    assert (
        14,
        "spec.template.spec.containers[1].name: duplicate field (also at line 13); only the last one would count",
    ) in got


def test_lists_and_mappings_in_the_wrong_shape() -> None:
    text = GOOD.replace("        ports:\n        - containerPort: 8080\n", "        ports: {containerPort: 8080}\n")
    assert problems(text) == [(15, "spec.template.spec.containers[0].ports: expected a list, got a mapping")]


def test_kinds_the_cluster_does_not_serve_or_describe() -> None:
    text = "apiVersion: v1\nkind: Nope\nmetadata: {name: x}\n---\napiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w}\n"
    got = [(p.line, p.level, p.text) for d in compose(text) for p in v2().check(d)]
    assert got == [
        (1, "error", "v1 Nope is not served by test-cluster"),
        (5, "warning", "example.com/v1 Widget has no published schema on test-cluster; the server's dry run checks it"),
    ]


def test_openapi_v3_is_read_per_group_version_on_first_use() -> None:
    fetched: list[str] = []
    v3defs = {k: _to_v3(v) for k, v in DEFS.items()}

    def fetch(path: str) -> dict[str, Any]:
        fetched.append(path)
        if path == "/openapi/v3":
            return {"paths": {"apis/apps/v1": {"serverRelativeURL": "/openapi/v3/apis/apps/v1?hash=AB"}, "api/v1": {}}}
        if path == "/openapi/v3/apis/apps/v1?hash=AB":
            return {"components": {"schemas": v3defs}}
        raise AssertionError(path)

    s = ClusterSchema(fetch, label="new").load()
    assert s.source == "openapi/v3" and fetched == ["/openapi/v3"]
    text = GOOD.replace("        image: api:1\n", "        image: api:1\n        imagePullPolicyy: Always\n")
    assert problems(text, s) == [
        (13, "spec.template.spec.containers[0].imagePullPolicyy: unknown field (did you mean imagePullPolicy?)")
    ]
    problems(GOOD, s)
    assert fetched == ["/openapi/v3", "/openapi/v3/apis/apps/v1?hash=AB"], "one fetch per group-version"


def _to_v3(d: Any) -> Any:
    """v3 spells a reference #/components/schemas/… and wraps a field's reference in allOf."""
    if isinstance(d, dict):
        if "$ref" in d:
            return {"allOf": [{"$ref": d["$ref"].replace(REF, "#/components/schemas/")}], "default": {}}
        return {k: _to_v3(v) for k, v in d.items()}
    return [_to_v3(x) for x in d] if isinstance(d, list) else d


def test_server_paths_map_to_lines() -> None:
    (doc,) = compose(GOOD.replace("        image: api:1\n", "        image: api:1\n        imagePullPolicyy: Always\n"))
    assert locate(doc.node, '.spec.template.spec.containers[name="api"].imagePullPolicyy') == (
        13,
        "spec.template.spec.containers[0].imagePullPolicyy",
    )
    assert (
        locate(doc.node, 'spec.template.spec.containers[0].ports[containerPort=8080,protocol="TCP"].containerPort')[0]
        == 17
    )
    assert locate(doc.node, "spec.nothing.here") == (6, "spec.nothing.here"), "the deepest part found"
    smd = (
        'failed to create typed patch object: errors:\n  .spec.template.spec.containers[name="api"].imagePullPolicyy: field not declared in schema\n'
        "  .metadata.labels.app: expected string, got &value.valueUnstructured{Value:2}"
    )
    assert [(p.line, p.text) for p in server_problems(doc, smd)] == [
        (13, "spec.template.spec.containers[0].imagePullPolicyy: field not declared in schema (API server)"),
        (5, "metadata.labels.app: expected string, got 2 (API server)"),
    ]
    inline = 'failed to create typed patch object: .spec.template.spec.containers[name="api"].imagePullPolicyy: field not declared in schema'
    assert [(p.line, p.text) for p in server_problems(doc, inline)] == [
        (13, "spec.template.spec.containers[0].imagePullPolicyy: field not declared in schema (API server)")
    ]
    strict = 'strict decoding error: unknown field "spec.template.spec.containers[0].imagePullPolicyy", duplicate field "spec.replicas"'
    assert [(p.line, p.text) for p in server_problems(doc, strict)] == [
        (13, "spec.template.spec.containers[0].imagePullPolicyy: unknown field (API server)"),
        (7, "spec.replicas: duplicate field (API server)"),
    ]
    assert [p.text for p in server_problems(doc, 'namespaces "nowhere" not found')] == [
        'document 1 (Deployment api): namespaces "nowhere" not found'
    ]


def test_yaml_errors_are_one_line_with_their_line() -> None:
    text = "apiVersion: v1\nkind: ConfigMap\ndata:\n  a: b\x00\n"
    with pytest.raises(yaml.YAMLError) as info:
        compose(text)
    line, message = yaml_error(info.value, text)
    assert line == 4 and message.startswith("YAML: character #x0000 is not allowed") and "\n" not in message
    with pytest.raises(yaml.YAMLError) as info:
        compose("a: [1, 2\n")
    line, message = yaml_error(info.value, "a: [1, 2\n")
    assert line == 2 and message.startswith("YAML syntax:") and "\n" not in message


def test_no_cluster_is_one_line(monkeypatch, tmp_path) -> None:
    from skills.kube import schema
    from skills.kube.client import clear_cache

    monkeypatch.setenv("LANTERN_HOME", str(tmp_path))
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "none"))
    clear_cache()
    with pytest.raises(SchemaUnavailable, match=r"^no kube context; `lantern sandbox up` starts a local cluster$"):
        schema.cluster_schema(None)


def test_doc_names_itself() -> None:
    (doc,) = compose("apiVersion: v1\nkind: Service\nmetadata: {name: api, namespace: shop}\n")
    assert isinstance(doc, Doc) and doc.ref == "Service shop/api" and doc.line == 1


def test_apply_order_puts_what_others_need_first() -> None:
    from skills.kube.fix import apply_rank

    kinds = [
        "ValidatingWebhookConfiguration",
        "Widget",
        "Deployment",
        "Service",
        "RoleBinding",
        "ConfigMap",
        "ServiceAccount",
        "CustomResourceDefinition",
        "Namespace",
    ]
    assert sorted(kinds, key=apply_rank) == [
        "Namespace",
        "CustomResourceDefinition",
        "ServiceAccount",
        "ConfigMap",
        "RoleBinding",
        "Service",
        "Deployment",
        "Widget",
        "ValidatingWebhookConfiguration",
    ]
