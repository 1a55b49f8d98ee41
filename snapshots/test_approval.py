"""Snapshot: the approval modal for a write, with its server-side dry-run diff and rollback."""

from __future__ import annotations

from snap_harness import SIZE, ask, harness_app, wait_for

from console.screens.approval import ApprovalScreen
from console.testing import INCIDENT_SCRIPT, incident_tools


class TestApproval:
    """The approval modal as the engine asks."""

    def test_modal_with_dry_run_diff(self, snap_compare):
        self._compare(snap_compare, SIZE)

    def test_modal_at_80x24(self, snap_compare):
        # The action, risk, rule and buttons stay put; the diff scrolls between them.
        self._compare(snap_compare, (80, 24))

    def _compare(self, snap_compare, size):
        app = harness_app(INCIDENT_SCRIPT, incident_tools())

        async def run_before(pilot):
            await ask(pilot, "why is checkout failing?")
            await wait_for(pilot, lambda: isinstance(app.screen, ApprovalScreen))
            # Behind the modal the investigation pane follows the newest step; scrolling is deferred
            # to its next refresh, which a covered screen may not get: settle it explicitly.
            from console.widgets.investigation.steps import StepList

            app.main.query_one(StepList).scroll_end(animate=False, immediate=True)
            await pilot.pause(0.2)

        assert snap_compare(app, terminal_size=size, run_before=run_before)


# What the sandbox's API server answered to the inspector's Apply of a ConfigMap and a Deployment
# (server-side apply, dryRun=All), as skills.kube.fix shows it: the live objects against the dry run.
APPLY_DIFF = """\
--- live/ConfigMap/payments/api-config
+++ dry-run/ConfigMap/payments/api-config
@@ -1,5 +1,6 @@
 apiVersion: v1
 data:
+  PAYMENTS_TIMEOUT_MS: '2500'
   POOL_SIZE: '20'
 kind: ConfigMap
 metadata:
--- live/Deployment/payments/api
+++ dry-run/Deployment/payments/api
@@ -9,7 +9,7 @@
   namespace: payments
 spec:
   progressDeadlineSeconds: 600
-  replicas: 2
+  replicas: 3
   revisionHistoryLimit: 10
   selector:
     matchLabels:
@@ -26,11 +26,11 @@
         app: api
     spec:
       containers:
-      - image: registry.local/api:2.4.1
+      - image: registry.local/api:2.4.2
         imagePullPolicy: IfNotPresent
         name: api
         resources:
           limits:
-            memory: 128Mi
+            memory: 512Mi
         terminationMessagePath: /dev/termination-log"""
MANIFEST = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: api-config}\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: api}\n"


class TestApprovalOfAnApply:
    """The inspector's Apply as the approver reads it: the API server's dry-run diff of two documents."""

    def test_apply_120x40(self, snap_compare):
        self._compare(snap_compare, SIZE)

    def test_apply_80x24(self, snap_compare):
        self._compare(snap_compare, (80, 24))

    def _compare(self, snap_compare, size):
        from engine.tools import Preview, Tool, ToolMeta

        async def handler(args):
            return {"applied": ["ConfigMap/payments/api-config", "Deployment/payments/api"]}

        async def preview(args):
            return Preview(diff=APPLY_DIFF, objects=["ConfigMap/payments/api-config", "Deployment/payments/api"])

        params = {
            "type": "object",
            "properties": {"manifest": {"type": "string"}, "namespace": {"type": "string"}},
            "required": ["manifest"],
        }
        tool = Tool(
            "kubernetes.apply_manifest",
            "Server-side apply a manifest",
            params,
            handler,
            risk="dangerous",
            pack="kubernetes",
            meta=ToolMeta(
                rollback="Delete the objects it created and re-apply the previous ones (both reported in the result)."
            ),
            preview=preview,
        )
        app = harness_app([], [tool])

        async def run_before(pilot):
            from snap_harness import ready

            from console.widgets.inspector.inspector import Inspector

            await wait_for(pilot, lambda: ready(app))
            await app.main.toggle_inspector()
            app.main.query_one(Inspector).post_message(Inspector.ApplyRequested(MANIFEST))
            await wait_for(
                pilot, lambda: isinstance(app.screen, ApprovalScreen) and bool(app.screen.query("#approval-diff"))
            )

        assert snap_compare(app, terminal_size=size, run_before=run_before)
