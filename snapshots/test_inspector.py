"""Snapshot: the YAML inspector with a pasted multi-document manifest and a parse error at its line."""

from __future__ import annotations

from snap_harness import SIZE, harness_app, ready, wait_for
from textual import events

from console.widgets.inspector.inspector import Inspector

PASTE = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: api
  namespace: payments
spec:
  replicas: 2
  template:
    spec:
      containers:
      - name: api
        image: registry.local/api:2.4.1
        resources:
          limits:
            memory: 128Mi
---
apiVersion: v1
kind: Service
metadata:
  name: api
spec:
  ports:
  - port: 80
    targetPort: 8080
  selector: app: api
"""


class TestInspector:
    """The inspector after a bracketed paste."""

    def test_parse_error(self, snap_compare):
        import kubernetes.client.models as models

        app = harness_app([], models=models)

        async def run_before(pilot):
            await wait_for(pilot, lambda: ready(app))
            await pilot.press("escape", "y")
            app.post_message(events.Paste(PASTE))  # as the driver delivers a bracketed paste
            await wait_for(pilot, lambda: app.main.query_one(Inspector).report is not None)

        assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


WRONG_FIELDS = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: api
  namespace: payments
  labels: {app: api, tier: 2}
spec:
  replicas: two
  template:
    spec:
      containers:
      - name: api
        image: registry.local/api:2.4.2
        imagePullPolicyy: Always
"""


class TestInspectorClusterSchema:
    """A pasted Deployment checked against the connected cluster's own schema: each problem at its line, with its field path."""

    def test_wrong_fields(self, snap_compare):
        from skills.kube.schema import ClusterSchema
        from tests.skills.test_skills_kube_schema import DEFS

        class Cluster:
            def schema(self):
                def fetch(path):
                    if path == "/openapi/v2":
                        return {"definitions": DEFS}
                    raise LookupError(path)

                return ClusterSchema(fetch, label="lantern-sandbox (v1.20)").load()

            def dry_run(self, docs, namespace="default"):
                return []

        app = harness_app([], cluster=Cluster)

        async def run_before(pilot):
            await wait_for(pilot, lambda: ready(app))
            await pilot.press("escape", "y")
            app.post_message(events.Paste(WRONG_FIELDS))
            await wait_for(pilot, lambda: app.main.query_one(Inspector).report is not None)

        assert snap_compare(app, terminal_size=SIZE, run_before=run_before)
