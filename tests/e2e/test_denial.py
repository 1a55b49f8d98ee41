"""A human denies a dangerous rollback: nothing changes in the cluster, the denial is audited, the
model reads 'denied', and the same call retried is refused without asking the human again."""

from __future__ import annotations

import time

import pytest
from e2e_support import (
    LONG,
    Investigator,
    TestApprover,
    answer,
    audit_rows,
    audit_verifies,
    call,
    finished,
    open_real_session,
    run_turn,
    use_scenario,
)

from engine.store import Store
from sandbox.testing import k8s_clients, wait_for

pytestmark = pytest.mark.sandbox


def _snapshot(apps, core):
    d = apps.read_namespaced_deployment("checkout-api", "shop")
    rss = sorted(
        (rs.metadata.name, rs.metadata.annotations.get("deployment.kubernetes.io/revision"))
        for rs in apps.list_namespaced_replica_set("shop").items
        if rs.metadata.name.startswith("checkout-api-")
    )
    return (
        d.metadata.generation,
        d.metadata.annotations.get("deployment.kubernetes.io/revision"),
        d.spec.template.spec.containers[0].image,
        rss,
    )


async def test_denied_rollback_changes_nothing_and_is_not_asked_again(world, monkeypatch, tmp_path):
    si = use_scenario(world, "bad-deploy", monkeypatch, will_change=False)
    api, core, apps = k8s_clients(si)

    # Settle first: the controller records the 2.5.0 rollout (revision 3) a moment after the scenario applies it.
    def settled():
        d = apps.read_namespaced_deployment("checkout-api", "shop")
        return (d.metadata.annotations or {}).get("deployment.kubernetes.io/revision") == "3" and (
            d.status.observed_generation or 0
        ) >= d.metadata.generation

    wait_for("checkout-api's rollout to revision 3 recorded", settled, timeout=LONG)
    before = _snapshot(apps, core)
    assert before[2].endswith(":2.5.0")

    inv = Investigator(
        [
            call("kubernetes.rollout_history", name="checkout-api", namespace="shop"),
            call("kubernetes.rollout_undo", name="checkout-api", namespace="shop"),
            # A stubborn model tries the very same call again after reading the denial.
            call("kubernetes.rollout_undo", name="checkout-api", namespace="shop"),
            answer("The rollback was denied; checkout-api stays on 2.5.0 until someone approves a fix."),
        ]
    )
    approver = TestApprover(approve=False, reason="not during the payments freeze")
    store = await Store(tmp_path / "store.db").open()
    try:
        session = await open_real_session(si, store, approver, inv.model)
        events = await run_turn(
            session, "checkout-api in namespace shop crash-loops after the last deploy; roll it back"
        )
        assert events[-1].reason == "answered", events[-1]

        undo = finished(events, "kubernetes.rollout_undo")
        assert [e.status for e in undo] == ["denied", "denied"], [(e.status, e.output) for e in undo]
        assert "Denied" in undo[0].output and "not during the payments freeze" in undo[0].output
        assert "without asking again" in undo[1].output
        assert len(approver.asked) == 1, "the retry must not reach the human"
        assert not [e for e in events if e.kind == "tool-call-started" and e.tool == "kubernetes.rollout_undo"]
        # What the model read after each attempt: the denial, as the tool's result.
        seen = [text for name, _, text in inv.outputs if name == "kubernetes.rollout_undo"]
        assert len(seen) == 2 and all(t.startswith("[denied]") for t in seen), seen

        rows = [r for r in await audit_rows(store, session.id) if r.tool == "kubernetes.rollout_undo"]
        assert [r.kind for r in rows] == ["denial", "denial"], [(r.kind, r.rule, r.detail) for r in rows]
        assert "by tester" in rows[0].detail and "payments freeze" in rows[0].detail
        assert rows[1].rule == "guard:repeat-of-denied"
        assert rows[0].call_hash == rows[1].call_hash == approver.asked[0].call_hash
        assert not [
            r
            for r in await audit_rows(store, session.id)
            if r.kind == "execution" and r.tool == "kubernetes.rollout_undo"
        ]
    finally:
        await store.close()
    rc, out = await audit_verifies(tmp_path / "store.db")
    assert rc == 0 and out.startswith("ok"), out

    # The controllers had time to act on a change, had there been one.
    time.sleep(3)
    after = _snapshot(apps, core)
    assert after == before
