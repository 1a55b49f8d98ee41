"""The YAML inspector over the real runtime and the sandbox: a pasted Deployment with a wrong field is
named at its line by the cluster's own schema; the corrected one passes the API server's dry run,
its Apply shows the server-side dry-run diff in the same approval as an agent's call, and once
approved the Deployment on the cluster has changed, with the same audit rows bound to the call's hash."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import aiosqlite
import pytest
from e2e_support import LONG, Investigator, audit_verifies, config

from console.app import LanternApp
from console.screens.approval import ApprovalScreen
from console.widgets.inspector.inspector import Inspector, IssueList
from engine.policy.audit import AuditLog
from sandbox.testing import k8s_clients

pytestmark = pytest.mark.sandbox

NS = "inspector-e2e"
LIVE = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: inspector-e2e
  labels: {app: web}
spec:
  replicas: 1
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: registry.example.com/team/web:1.0.0
        imagePullPolicy: IfNotPresent
"""
WANTED = LIVE.replace("web:1.0.0", "web:1.1.0").replace("  replicas: 1\n", "  replicas: 2\n")
WRONG = WANTED.replace("imagePullPolicy: IfNotPresent", "imagePullPolicyy: IfNotPresent")


async def _until(pilot: Any, cond: Any, what: str, timeout: float = LONG) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not cond():
        assert loop.time() < end, f"timed out waiting for {what}"
        await pilot.pause(0.1)


def _shown(inspector: Inspector) -> list[str]:
    issues = inspector.query_one(IssueList)
    return [str(issues.get_option_at_index(i).prompt) for i in range(issues.option_count)]


async def test_paste_validate_against_the_cluster_then_apply_through_the_approval(world, tmp_path):
    from kubernetes import client

    _, core, apps = k8s_clients(world)
    try:
        core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=NS)))
    except client.exceptions.ApiException as exc:
        assert exc.status == 409, exc
    import yaml

    try:
        apps.delete_namespaced_deployment("web", NS)  # a rerun on the same sandbox starts from LIVE too
    except client.exceptions.ApiException as exc:
        assert exc.status == 404, exc
    apps.create_namespaced_deployment(NS, yaml.safe_load(LIVE))
    store_path = str(tmp_path / "store.db")
    inv = Investigator([])

    async def factory(cfg: Any, *, store: Any, approver: Any, session_id: str | None = None) -> Any:
        from wiring import build_toolbox, open_session

        toolbox = await asyncio.to_thread(build_toolbox, cfg)
        return await open_session(
            cfg, store=store, approver=approver, session_id=session_id, model=inv.model, toolbox=toolbox
        )

    app = LanternApp(config=config(world), session_factory=factory, tz=dt.UTC, blink=False, store_path=store_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await _until(
            pilot, lambda: app.bridge is not None and app.bridge.session is not None and app.bridge.ready, "the engine"
        )
        app.namespace = NS
        await app.main.toggle_inspector()
        inspector = app.main.query_one(Inspector)

        # 1. the wrong field, named at its line by the cluster's own schema
        inspector.load_text(WRONG)
        await _until(pilot, lambda: inspector.report is not None and inspector.text == WRONG, "the first check")
        assert _shown(inspector) == [
            "L18  ✗ spec.template.spec.containers[0].imagePullPolicyy: unknown field (did you mean imagePullPolicy?)"
        ]
        status = str(inspector.query_one("#inspector-status").content)
        assert "checked against lantern-sandbox (v1.20) openapi/v2" in status, status
        inspector.post_message(Inspector.ActionRequested("apply"))
        await pilot.pause(0.3)
        assert not isinstance(app.screen, ApprovalScreen), "a manifest that does not validate is not applied"

        # 2. corrected: the schema and the API server's dry run pass it
        inspector.report = None
        inspector.load_text(WANTED)
        await _until(
            pilot, lambda: inspector.report is not None and inspector.report.server_checked, "the second check"
        )
        assert inspector.report.ok and _shown(inspector) == []
        assert "and its API server's dry run" in str(inspector.query_one("#inspector-status").content)

        # 3. Apply: the approval carries the server-side dry-run diff of the live object
        inspector.post_message(Inspector.ActionRequested("apply"))
        await _until(pilot, lambda: isinstance(app.screen, ApprovalScreen), "the approval modal")
        session = app.bridge.session
        (req,) = [e for e in session.events if e.kind == "approval-requested"]
        assert req.tool == "kubernetes.apply_manifest" and req.objects == [f"Deployment/{NS}/web"]
        lines = req.preview.splitlines()
        assert "-  replicas: 1" in lines and "+  replicas: 2" in lines, req.preview
        assert any(x.startswith("-") and x.endswith("web:1.0.0") for x in lines) and any(
            x.startswith("+") and x.endswith("web:1.1.0") for x in lines
        )
        assert apps.read_namespaced_deployment("web", NS).spec.replicas == 1, "nothing changes before the human answers"
        await pilot.press("a")
        await _until(pilot, lambda: any(e.kind == "turn-finished" for e in session.events), "the end of the call")
        events = list(session.events)

    (done,) = [e for e in events if e.kind == "tool-call-finished" and e.tool == "kubernetes.apply_manifest"]
    assert done.status == "ok", done.output
    d = apps.read_namespaced_deployment("web", NS)
    assert d.spec.replicas == 2 and d.spec.template.spec.containers[0].image.endswith("web:1.1.0")

    # the same audit trail as an agent's call: approval, intent, execution, all bound to the approved call's hash
    async with aiosqlite.connect(store_path) as db:
        rows = [
            r
            for r in await (await AuditLog.open(db)).rows(session_id=session.id)
            if r.tool == "kubernetes.apply_manifest"
        ]
    assert [r.kind for r in rows] == ["approval", "intent", "execution"], [(r.kind, r.detail) for r in rows]
    assert {r.call_hash for r in rows} == {req.call_hash}
    assert (
        "approved by tester" in rows[-1].detail
        and f"undo: re-apply the previous Deployment/{NS}/web" in rows[-1].detail
    )
    rc, out = await audit_verifies(tmp_path / "store.db")
    assert rc == 0, out
