"""The preview's diff: managed fields, status and resourceVersion stripped, secret values hidden,
and the console fixture's diff is what the pack really makes."""

from __future__ import annotations

import copy

from console.testing import ROLLBACK_DIFF
from skills.kube.fix import diff_objects

LIVE = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {
        "name": "api",
        "namespace": "payments",
        "labels": {"app": "api"},
        "annotations": {
            "deployment.kubernetes.io/revision": "14",
            "kubernetes.io/change-cause": "limits.memory 512Mi -> 128Mi (cost cut)",
        },
        "resourceVersion": "48213",
        "uid": "5b1c",
        "generation": 14,
        "managedFields": [{"manager": "kubectl"}],
    },
    "spec": {
        "replicas": 2,
        "selector": {"matchLabels": {"app": "api"}},
        "template": {
            "metadata": {"labels": {"app": "api"}},
            "spec": {
                "containers": [
                    {
                        "name": "api",
                        "image": "registry.example.com/payments/api:2.4.1",
                        "resources": {"limits": {"memory": "128Mi"}, "requests": {"cpu": "100m", "memory": "128Mi"}},
                    }
                ]
            },
        },
    },
    "status": {"replicas": 2},
}


def test_the_fixture_diff_is_the_packs_own():
    after = copy.deepcopy(LIVE)
    after["metadata"].update(resourceVersion="48990", generation=15)
    after["metadata"]["annotations"]["kubernetes.io/change-cause"] = "image api:2.4.1"
    after["status"] = {"replicas": 3}
    res = after["spec"]["template"]["spec"]["containers"][0]["resources"]
    res["limits"]["memory"], res["requests"]["memory"] = "512Mi", "256Mi"
    assert diff_objects(LIVE, after, "Deployment/payments/api") == ROLLBACK_DIFF


def test_secret_values_never_reach_a_diff():
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "t"},
        "data": {"tls.key": "LS0tLS1CRUdJTiBQUklWQVRFIEtFWS0tLS0t"},
    }
    new = copy.deepcopy(secret)
    new["data"]["tls.key"] = "b3RoZXI="
    diff = diff_objects(secret, new, "Secret/t")
    assert "LS0tLS1" not in diff and "b3RoZXI=" not in diff and "tls.key: <" in diff


async def test_a_rest_write_previews_the_exact_request_without_its_credential():
    from skills.loader import load_packs
    from skills.registry import pack_tools

    tools = {t.name: t for t in pack_tools([p for p in load_packs().packs if p.name == "slack"])}
    p = await tools["slack.post_message"].preview({"channel": "#incidents", "text": "checkout rolled back"})
    assert p.diff == "" and p.objects == ["POST https://slack.com/api/chat.postMessage"]
    assert '"text": "checkout rolled back"' in p.note and "Authorization" not in p.note and "Bearer" not in p.note
