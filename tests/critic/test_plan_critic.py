"""The plan critic gives each kind of plan the verdict an experienced on-call engineer would."""

from __future__ import annotations

import pytest

from engine.critic.plan import Step, review_plan

EVIDENCE = (
    """
NAME                         READY   STATUS             RESTARTS   AGE
checkout-7d9f8c6b5-x2k4q     0/1     CrashLoopBackOff   14         31m
checkout-7d9f8c6b5-p9m2z     0/1     CrashLoopBackOff   13         31m
cart-5c4d7f9b8-q8r7t         1/1     Running            0          2d
REVISION  CHANGE-CAUSE
3         image checkout:1.4.2
4         image checkout:1.5.0
node worker-2 Ready=False DiskPressure=True
deployment/payments-consumer replicas 0, queue orders depth 48211
secret shop/checkout-tls expired 2026-11-20T00:00:00Z
"""
    + "user: checkout is failing since the 1.5.0 deploy, namespace shop"
)

TOOLS = [
    "kubernetes.delete_pod",
    "kubernetes.rollout_restart",
    "kubernetes.scale_deployment",
    "kubernetes.rollout_undo",
    "kubernetes.cordon_node",
    "kubernetes.uncordon_node",
    "kubernetes.drain_node",
    "kubernetes.delete_resource",
    "slack.post_message",
    "github.comment",
]

RISK = {
    "kubernetes.delete_pod": "dangerous",
    "kubernetes.rollout_undo": "dangerous",
    "kubernetes.drain_node": "dangerous",
    "kubernetes.delete_resource": "dangerous",
}


def S(tool: str, **args) -> Step:
    return Step(tool, args, RISK.get(tool, "write"))


PLANS = [
    # fine plans
    (
        "single rollout undo of the deployment that broke",
        [S("kubernetes.rollout_undo", namespace="shop", name="checkout")],
        "ok",
    ),
    (
        "scale the consumer up",
        [S("kubernetes.scale_deployment", namespace="shop", name="payments-consumer", replicas=3)],
        "ok",
    ),
    ("restart one deployment", [S("kubernetes.rollout_restart", namespace="shop", name="checkout")], "ok"),
    ("cordon the sick node", [S("kubernetes.cordon_node", node="worker-2")], "ok"),
    (
        "undo then tell the channel",
        [
            S("kubernetes.rollout_undo", namespace="shop", name="checkout"),
            S("slack.post_message", channel="#incidents", text="rolled back checkout"),
        ],
        "ok",
    ),
    ("uncordon after fix", [S("kubernetes.uncordon_node", node="worker-2")], "ok"),
    (
        "two different fixes, both evidenced",
        [
            S("kubernetes.scale_deployment", namespace="shop", name="payments-consumer", replicas=2),
            S("kubernetes.cordon_node", node="worker-2"),
        ],
        "ok",
    ),
    # repeated steps
    (
        "same restart twice",
        [
            S("kubernetes.rollout_restart", namespace="shop", name="checkout"),
            S("kubernetes.rollout_restart", namespace="shop", name="checkout"),
        ],
        "simplify",
    ),
    (
        "same scale twice",
        [S("kubernetes.scale_deployment", namespace="shop", name="payments-consumer", replicas=3)] * 2,
        "simplify",
    ),
    # not following from evidence
    (
        "restart a deployment nobody mentioned",
        [S("kubernetes.rollout_restart", namespace="shop", name="inventory")],
        "simplify",
    ),
    ("delete a pod never seen", [S("kubernetes.delete_pod", namespace="shop", name="search-6b7c9d-abcde")], "reject"),
    ("drain an unknown node", [S("kubernetes.drain_node", node="worker-9")], "reject"),
    # dangerous where a safe one exists
    (
        "delete one crashing pod",
        [S("kubernetes.delete_pod", namespace="shop", name="checkout-7d9f8c6b5-x2k4q")],
        "simplify",
    ),
    ("drain instead of cordon", [S("kubernetes.drain_node", node="worker-2")], "simplify"),
    (
        "delete the consumer deployment",
        [S("kubernetes.delete_resource", namespace="shop", kind="deployment", name="payments-consumer")],
        "simplify",
    ),
    # over-built
    (
        "delete every crashing pod one by one",
        [
            S("kubernetes.delete_pod", namespace="shop", name="checkout-7d9f8c6b5-x2k4q"),
            S("kubernetes.delete_pod", namespace="shop", name="checkout-7d9f8c6b5-p9m2z"),
        ],
        "simplify",
    ),
    (
        "scale down then up",
        [
            S("kubernetes.scale_deployment", namespace="shop", name="checkout", replicas=0),
            S("kubernetes.scale_deployment", namespace="shop", name="checkout", replicas=2),
        ],
        "simplify",
    ),
    (
        "five step fix",
        [
            S("kubernetes.cordon_node", node="worker-2"),
            S("kubernetes.scale_deployment", namespace="shop", name="checkout", replicas=0),
            S("kubernetes.rollout_restart", namespace="shop", name="cart"),
            S("kubernetes.scale_deployment", namespace="shop", name="payments-consumer", replicas=4),
            S("kubernetes.uncordon_node", node="worker-2"),
        ],
        "simplify",
    ),
    (
        "restart everything to be safe",
        [
            S("kubernetes.rollout_restart", namespace="shop", name=n)
            for n in ("checkout", "cart", "payments-consumer", "checkout-7d9f8c6b5-x2k4q")
        ],
        "simplify",
    ),
    # mixed: dangerous + unknown target → reject wins
    (
        "undo an unseen deployment and delete a seen pod",
        [
            S("kubernetes.rollout_undo", namespace="shop", name="billing"),
            S("kubernetes.delete_pod", namespace="shop", name="checkout-7d9f8c6b5-x2k4q"),
        ],
        "reject",
    ),
    (
        "delete unseen resource",
        [S("kubernetes.delete_resource", namespace="shop", kind="secret", name="db-password")],
        "reject",
    ),
    (
        "replace the expired secret by restarting its user",
        [S("kubernetes.rollout_restart", namespace="shop", name="checkout")],
        "ok",
    ),
]


@pytest.mark.parametrize("why,steps,expected", PLANS, ids=[p[0] for p in PLANS])
def test_verdicts(why, steps, expected):
    v = review_plan(steps, EVIDENCE, TOOLS)
    assert v.verdict == expected, v.findings
    if expected != "ok":
        assert v.findings, "a non-ok verdict must say why"


def test_dangerous_delete_suggests_the_safer_restart():
    v = review_plan([S("kubernetes.delete_pod", namespace="shop", name="checkout-7d9f8c6b5-x2k4q")], EVIDENCE, TOOLS)
    assert {
        "tool": "kubernetes.rollout_restart",
        "arguments": {"namespace": "shop", "deployment": "checkout"},
    } in v.suggested or any(s["tool"] == "kubernetes.rollout_restart" for s in v.suggested)


def test_plan_count_is_at_least_twenty():
    assert len(PLANS) >= 20


# -- fixes judged against the findings ------------------------------------------------------------
FIX_TOOLS = [
    "kubernetes.rollout_undo",
    "kubernetes.rollout_restart",
    "kubernetes.scale_deployment",
    "kubernetes.set_env",
    "kubernetes.edit_configmap_key",
    "kubernetes.set_resources",
    "kubernetes.patch_resource",
]


def test_a_rollout_undo_with_no_deploy_behind_the_failure_is_flagged():
    evidence = "pod report-worker-5d9 OOMKilled (exit 137), memory limit 256Mi\n[finding: OOMKilled report-worker]"
    v = review_plan(
        [Step("kubernetes.rollout_undo", {"name": "report-worker", "namespace": "analytics"}, "dangerous")],
        evidence,
        FIX_TOOLS,
    )
    assert v.verdict != "ok" and any("no finding ties the failure to a deploy" in f for f in v.findings)
    ok = review_plan(
        [Step("kubernetes.rollout_undo", {"name": "checkout-api", "namespace": "shop"}, "dangerous")],
        "checkout-api revision 7 image checkout-api:2.5.0 crash-loops; revision 6 was healthy",
        FIX_TOOLS,
    )
    assert not any("deploy" in f for f in ok.findings)


def test_a_restart_when_the_cause_is_configuration_names_the_config_fix():
    evidence = "invoice-api-7c9 CrashLoopBackOff\nERROR config: required key LEDGER_URL is missing (ConfigMap invoice-api-config)"
    v = review_plan(
        [Step("kubernetes.rollout_restart", {"name": "invoice-api", "namespace": "billing"})], evidence, FIX_TOOLS
    )
    assert v.verdict == "simplify" and any("edit_configmap_key" in f and "restart" in f for f in v.findings)
    with_fix = [
        Step("kubernetes.edit_configmap_key", {"name": "invoice-api-config", "key": "LEDGER_URL", "value": "x"}),
        Step("kubernetes.rollout_restart", {"name": "invoice-api", "namespace": "billing"}),
    ]
    assert not any("configuration" in f for f in review_plan(with_fix, evidence, FIX_TOOLS).findings)


def test_scaling_up_a_crash_looping_workload_is_flagged_but_a_scaled_down_consumer_is_not():
    crash = "report-worker-5d9f-x2k4q   0/1   CrashLoopBackOff   7   OOMKilled"
    v = review_plan([Step("kubernetes.scale_deployment", {"name": "report-worker", "replicas": 5})], crash, FIX_TOOLS)
    assert v.verdict == "simplify" and any("crash-looping" in f and "set_resources" in f for f in v.findings)
    idle = (
        "deployment order-worker 0/0 ready (scaled to 0 for broker upgrade); queue orders 41,000 messages, 0 consumers"
    )
    assert not review_plan(
        [Step("kubernetes.scale_deployment", {"name": "order-worker", "replicas": 2})], idle, FIX_TOOLS
    ).findings


def test_patching_a_service_is_not_steered_to_a_rollout_undo():
    v = review_plan(
        [Step("kubernetes.patch_resource", {"kind": "service", "name": "catalog", "patch": "{}"}, "dangerous")],
        "service catalog selector app=catalog-api",
        FIX_TOOLS,
    )
    assert not any("rollout_undo" in f for f in v.findings)
