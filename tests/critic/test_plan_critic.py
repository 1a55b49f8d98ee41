"""The plan critic gives each kind of plan the verdict an experienced on-call engineer would."""

from __future__ import annotations

import pytest

from engine.critic.plan import Step, review_plan

EVIDENCE = """
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
""" + "user: checkout is failing since the 1.5.0 deploy, namespace shop"

TOOLS = [
    "kubernetes.delete_pod", "kubernetes.rollout_restart", "kubernetes.scale_deployment", "kubernetes.rollout_undo",
    "kubernetes.cordon_node", "kubernetes.uncordon_node", "kubernetes.drain_node", "kubernetes.delete_resource",
    "slack.post_message", "github.comment",
]

RISK = {
    "kubernetes.delete_pod": "dangerous", "kubernetes.rollout_undo": "dangerous", "kubernetes.drain_node": "dangerous",
    "kubernetes.delete_resource": "dangerous",
}


def S(tool: str, **args) -> Step:
    return Step(tool, args, RISK.get(tool, "write"))


PLANS = [
    # fine plans
    ("single rollout undo of the deployment that broke", [S("kubernetes.rollout_undo", namespace="shop", name="checkout")], "ok"),
    ("scale the consumer up", [S("kubernetes.scale_deployment", namespace="shop", name="payments-consumer", replicas=3)], "ok"),
    ("restart one deployment", [S("kubernetes.rollout_restart", namespace="shop", name="checkout")], "ok"),
    ("cordon the sick node", [S("kubernetes.cordon_node", node="worker-2")], "ok"),
    ("undo then tell the channel", [S("kubernetes.rollout_undo", namespace="shop", name="checkout"), S("slack.post_message", channel="#incidents", text="rolled back checkout")], "ok"),
    ("uncordon after fix", [S("kubernetes.uncordon_node", node="worker-2")], "ok"),
    ("two different fixes, both evidenced", [S("kubernetes.scale_deployment", namespace="shop", name="payments-consumer", replicas=2), S("kubernetes.cordon_node", node="worker-2")], "ok"),
    # repeated steps
    ("same restart twice", [S("kubernetes.rollout_restart", namespace="shop", name="checkout"), S("kubernetes.rollout_restart", namespace="shop", name="checkout")], "simplify"),
    ("same scale twice", [S("kubernetes.scale_deployment", namespace="shop", name="payments-consumer", replicas=3)] * 2, "simplify"),
    # not following from evidence
    ("restart a deployment nobody mentioned", [S("kubernetes.rollout_restart", namespace="shop", name="inventory")], "simplify"),
    ("delete a pod never seen", [S("kubernetes.delete_pod", namespace="shop", name="search-6b7c9d-abcde")], "reject"),
    ("drain an unknown node", [S("kubernetes.drain_node", node="worker-9")], "reject"),
    # dangerous where a safe one exists
    ("delete one crashing pod", [S("kubernetes.delete_pod", namespace="shop", name="checkout-7d9f8c6b5-x2k4q")], "simplify"),
    ("drain instead of cordon", [S("kubernetes.drain_node", node="worker-2")], "simplify"),
    ("delete the consumer deployment", [S("kubernetes.delete_resource", namespace="shop", kind="deployment", name="payments-consumer")], "simplify"),
    # over-built
    ("delete every crashing pod one by one", [S("kubernetes.delete_pod", namespace="shop", name="checkout-7d9f8c6b5-x2k4q"), S("kubernetes.delete_pod", namespace="shop", name="checkout-7d9f8c6b5-p9m2z")], "simplify"),
    ("scale down then up", [S("kubernetes.scale_deployment", namespace="shop", name="checkout", replicas=0), S("kubernetes.scale_deployment", namespace="shop", name="checkout", replicas=2)], "simplify"),
    ("five step fix", [
        S("kubernetes.cordon_node", node="worker-2"),
        S("kubernetes.scale_deployment", namespace="shop", name="checkout", replicas=0),
        S("kubernetes.rollout_restart", namespace="shop", name="cart"),
        S("kubernetes.scale_deployment", namespace="shop", name="payments-consumer", replicas=4),
        S("kubernetes.uncordon_node", node="worker-2"),
    ], "simplify"),
    ("restart everything to be safe", [S("kubernetes.rollout_restart", namespace="shop", name=n) for n in ("checkout", "cart", "payments-consumer", "checkout-7d9f8c6b5-x2k4q")], "simplify"),
    # mixed: dangerous + unknown target → reject wins
    ("undo an unseen deployment and delete a seen pod", [S("kubernetes.rollout_undo", namespace="shop", name="billing"), S("kubernetes.delete_pod", namespace="shop", name="checkout-7d9f8c6b5-x2k4q")], "reject"),
    ("delete unseen resource", [S("kubernetes.delete_resource", namespace="shop", kind="secret", name="db-password")], "reject"),
    ("replace the expired secret by restarting its user", [S("kubernetes.rollout_restart", namespace="shop", name="checkout")], "ok"),
]


@pytest.mark.parametrize("why,steps,expected", PLANS, ids=[p[0] for p in PLANS])
def test_verdicts(why, steps, expected):
    v = review_plan(steps, EVIDENCE, TOOLS)
    assert v.verdict == expected, v.findings
    if expected != "ok":
        assert v.findings, "a non-ok verdict must say why"


def test_dangerous_delete_suggests_the_safer_restart():
    v = review_plan([S("kubernetes.delete_pod", namespace="shop", name="checkout-7d9f8c6b5-x2k4q")], EVIDENCE, TOOLS)
    assert {"tool": "kubernetes.rollout_restart", "arguments": {"namespace": "shop", "deployment": "checkout"}} in v.suggested or any(
        s["tool"] == "kubernetes.rollout_restart" for s in v.suggested
    )


def test_plan_count_is_at_least_twenty():
    assert len(PLANS) >= 20
