"""The console's approval modal over the real runtime and the sandbox: the keyboard decides whether the
rollback of the bad deploy runs, and the cluster and the audit log show it."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from typing import Any

import aiosqlite
import pytest
from e2e_support import LONG, Investigator, answer, audit_verifies, call, config, use_scenario

from console.app import LanternApp
from console.screens.approval import ApprovalScreen
from engine.policy.audit import AuditLog
from sandbox.testing import k8s_clients, wait_for

pytestmark = pytest.mark.sandbox

SIZE = (120, 40)


def _app(si: Any, inv: Investigator, store_path: str) -> LanternApp:
    async def factory(cfg: Any, *, store: Any, approver: Any, session_id: str | None = None) -> Any:
        from wiring import build_toolbox, open_session

        toolbox = await asyncio.to_thread(build_toolbox, cfg)
        return await open_session(
            cfg, store=store, approver=approver, session_id=session_id, model=inv.model, toolbox=toolbox
        )

    return LanternApp(config=config(si), session_factory=factory, tz=dt.UTC, blink=False, store_path=store_path)


def _plan() -> Investigator:
    return Investigator(
        [
            call("kubernetes.rollout_history", name="checkout-api", namespace="shop"),
            call("kubernetes.rollout_undo", name="checkout-api", namespace="shop"),
            answer("Rolled checkout-api back from 2.5.0, whose config key was renamed."),
        ]
    )


async def _until(pilot: Any, cond: Any, what: str, timeout: float = LONG) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not cond():
        assert loop.time() < end, f"timed out waiting for {what}"
        await pilot.pause(0.1)


def _events(app: LanternApp, kind: str) -> list[Any]:
    return [e for e in app.bridge.session.events if e.kind == kind]


async def _drive(app: LanternApp, key: str) -> tuple[str, list[Any]]:
    """Ask, wait for the modal, press `key`, wait for the turn to end; (session id, its events)."""
    async with app.run_test(size=SIZE) as pilot:
        await _until(
            pilot, lambda: app.bridge is not None and app.bridge.session is not None and app.bridge.ready, "the engine"
        )
        await pilot.press(*"roll back checkout-api in shop", "enter")
        await _until(pilot, lambda: isinstance(app.screen, ApprovalScreen), "the approval modal")
        assert not [e for e in _events(app, "tool-call-started") if e.tool == "kubernetes.rollout_undo"], (
            "nothing runs before the human answers"
        )
        # the approval carries the API server's dry run of this very rollback: the image goes back to 2.4.3
        (req,) = _events(app, "approval-requested")
        assert req.objects == ["Deployment/shop/checkout-api"] and any(
            line.startswith("+") and "checkout-api:2.4.3" in line for line in req.preview.splitlines()
        ), req.preview
        await pilot.press(key)
        await _until(pilot, lambda: bool(_events(app, "turn-finished")), "the end of the turn")
        return app.bridge.session.id, list(app.bridge.session.events)


async def _audit(path: str, session_id: str) -> list[Any]:
    async with aiosqlite.connect(path) as db:
        return [
            r
            for r in await (await AuditLog.open(db)).rows(session_id=session_id)
            if r.tool == "kubernetes.rollout_undo"
        ]


def _image(apps: Any) -> str:
    return apps.read_namespaced_deployment("checkout-api", "shop").spec.template.spec.containers[0].image


async def test_deny_in_the_modal_runs_nothing(world, monkeypatch, tmp_path):
    si = use_scenario(world, "bad-deploy", monkeypatch, will_change=False)
    _, core, apps = k8s_clients(si)
    generation = apps.read_namespaced_deployment("checkout-api", "shop").metadata.generation
    store_path = str(tmp_path / "store.db")
    sid, events = await _drive(_app(si, _plan(), store_path), "d")

    (resolved,) = [e for e in events if e.kind == "approval-resolved"]
    assert not resolved.approved and resolved.by == "tester"
    (undo,) = [e for e in events if e.kind == "tool-call-finished" and e.tool == "kubernetes.rollout_undo"]
    assert undo.status == "denied"
    assert not [e for e in events if e.kind == "tool-call-started" and e.tool == "kubernetes.rollout_undo"]
    rows = await _audit(store_path, sid)
    assert [r.kind for r in rows] == ["denial"] and "by tester" in rows[0].detail
    rc, out = await audit_verifies(tmp_path / "store.db")
    assert rc == 0, out
    time.sleep(3)
    d = apps.read_namespaced_deployment("checkout-api", "shop")
    assert d.metadata.generation == generation and _image(apps).endswith(":2.5.0")


async def test_approve_in_the_modal_rolls_back_and_pods_heal(world, monkeypatch, tmp_path):
    si = use_scenario(world, "bad-deploy", monkeypatch, will_change=True)
    _, core, apps = k8s_clients(si)
    assert _image(apps).endswith(":2.5.0")
    store_path = str(tmp_path / "store.db")
    sid, events = await _drive(_app(si, _plan(), store_path), "a")

    (resolved,) = [e for e in events if e.kind == "approval-resolved"]
    assert resolved.approved and resolved.by == "tester"
    (undo,) = [e for e in events if e.kind == "tool-call-finished" and e.tool == "kubernetes.rollout_undo"]
    assert undo.status == "ok" and "2.4.3" in undo.output, undo.output
    rows = await _audit(store_path, sid)
    assert [r.kind for r in rows] == ["approval", "intent", "execution"], [(r.kind, r.detail) for r in rows]
    assert "by tester" in rows[0].detail and "approved by tester" in rows[1].detail
    rc, out = await audit_verifies(tmp_path / "store.db")
    assert rc == 0, out

    def healed() -> bool:
        d = apps.read_namespaced_deployment("checkout-api", "shop")
        pods = [
            p
            for p in core.list_namespaced_pod("shop", label_selector="app=checkout-api").items
            if not p.metadata.deletion_timestamp
        ]
        return (
            _image(apps).endswith(":2.4.3")
            and (d.status.available_replicas or 0) == d.spec.replicas
            and len(pods) == d.spec.replicas
            and all(
                p.status.phase == "Running" and all(c.ready for c in p.status.container_statuses or []) for p in pods
            )
        )

    wait_for("checkout-api pods Running and Ready on 2.4.3", healed, timeout=LONG)
