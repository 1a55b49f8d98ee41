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
