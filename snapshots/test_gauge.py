"""Snapshot: the context gauge by tier, with dropped details listed and the drop warning."""

from __future__ import annotations

from snap_harness import SIZE, ask, events_of, harness_app, wait_for

from console.testing import GaugeContext, incident_tools

DROPS = [
    {
        "ref": "out:get_pods:1",
        "what": "get_pods output (3 pods)",
        "from_step": 1,
        "tokens": 412,
        "action": "summarised",
    },
    {
        "ref": "out:logs:api",
        "what": "api container logs, 2,140 lines",
        "from_step": 1,
        "tokens": 5120,
        "action": "dropped",
    },
    {
        "ref": "out:events:payments",
        "what": "events in payments (last 1h)",
        "from_step": 2,
        "tokens": 1830,
        "action": "trimmed",
    },
]


class TestGauge:
    """The gauge after compaction dropped details."""

    def test_dropped_details(self, snap_compare):
        script = [
            {
                "text": "Checking the pods.",
                "tool_calls": [{"name": "get_pods", "arguments": {"namespace": "payments"}}],
            },
            {"text": "The api pods are **OOMKilled**; older outputs were compacted to fit the window."},
        ]
        tiers = {"system": 1200, "ledger": 640, "summaries": 1900, "recent": 3100, "outputs": 2600}
        app = harness_app(
            script, incident_tools(), context=GaugeContext(budget=12_000, window=32_000, drops=DROPS, tiers=tiers)
        )

        async def run_before(pilot):
            await ask(pilot, "why is checkout failing?")
            await wait_for(pilot, lambda: bool(events_of(app, "turn-finished")))
            await pilot.press("escape", "g", "j")
            await pilot.pause(0.1)

        assert snap_compare(app, terminal_size=SIZE, run_before=run_before)
