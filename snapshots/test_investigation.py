"""Snapshot: an investigation in progress (a finished step, a step whose tool is still running)."""

from __future__ import annotations

import asyncio

from snap_harness import SIZE, ask, events_of, harness_app, wait_for

from console.testing import incident_tools
from engine.tools import python_tool


class TestInvestigation:
    """The investigation pane while the agent works."""

    def test_in_progress(self, snap_compare):
        gate = asyncio.Event()

        async def tail_logs(name: str, namespace: str) -> str:
            """Tail a deployment's logs."""
            await gate.wait()  # never released: the step stays in progress for the snapshot
            return ""

        script = [
            {
                "text": "Checking the pods in payments first: the api may be crash-looping.",
                "tool_calls": [{"name": "get_pods", "arguments": {"namespace": "payments"}}],
            },
            {
                "text": "Both api pods are OOMKilled. Reading the last log lines of api.",
                "tool_calls": [{"name": "tail_logs", "arguments": {"name": "api", "namespace": "payments"}}],
            },
        ]
        app = harness_app(script, [*incident_tools(), python_tool(tail_logs)])

        async def run_before(pilot):
            await ask(pilot, "why is checkout failing?")
            await wait_for(pilot, lambda: len(events_of(app, "tool-call-started")) == 2)

        assert snap_compare(app, terminal_size=SIZE, run_before=run_before)
