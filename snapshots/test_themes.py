"""Snapshots: the same finished investigation in each shipped theme."""

from __future__ import annotations

import pytest
from snap_harness import SIZE, ask, events_of, harness_app, wait_for

from console.testing import GaugeContext, incident_tools

SCRIPT = [
    {
        "text": "Checking the pods in payments.",
        "tool_calls": [{"name": "get_pods", "arguments": {"namespace": "payments"}}],
    },
    {
        "text": "Looking at the rollout history.",
        "tool_calls": [{"name": "rollout_history", "arguments": {"name": "api", "namespace": "payments"}}],
    },
    {
        "text": "## Root cause\n\nRevision 14 cut `limits.memory` to **128Mi**; the api pods are `OOMKilled`.\n\n- fix: `rollback_deployment` to revision 13\n"
    },
]
DROPS = [
    {
        "ref": "out:logs:api",
        "what": "api container logs, 2,140 lines",
        "from_step": 1,
        "tokens": 5120,
        "action": "dropped",
    }
]


class TestThemes:
    """Dark, light and high contrast."""

    @pytest.mark.parametrize("theme", ["lantern-dark", "lantern-light", "lantern-contrast"])
    def test_theme(self, snap_compare, theme):
        app = harness_app(
            SCRIPT,
            incident_tools(),
            theme=theme,
            context=GaugeContext(drops=DROPS, tiers={"system": 900, "recent": 2400, "outputs": 3100}),
        )

        async def run_before(pilot):
            await ask(pilot, "why is checkout failing?")
            await wait_for(pilot, lambda: bool(events_of(app, "turn-finished")))

        assert snap_compare(app, terminal_size=SIZE, run_before=run_before)
