"""Snapshot: how each call ended, in words and colours of their own (ok, refused, failed, partial),
with the model's intent above its calls; through the real dispatch pipeline, at both sizes."""

from __future__ import annotations

import datetime as dt
from typing import Any

from snap_harness import SIZE, ask, events_of, wait_for

from console.app import LanternApp
from console.testing import FixedTimingSession, GaugeContext, frozen_clock
from engine import events as ev
from engine.config import Config
from engine.tools import ToolOutput, python_tool

MODEL = "local/qwen2.5-coder-1.5b-instruct"
"""A long model name: the header at 80 columns shortens it, never drops it."""
SCRIPT: list[dict[str, Any]] = [
    {
        "text": "Listing the payments pods.",
        "tool_calls": [{"name": "get_pods", "arguments": {"namespace": "payments"}}],
    },
    {"text": "", "tool_calls": [{"name": "get_pods", "arguments": {"namespace": "payments"}}]},
    {
        "text": "Reading the api's logs and events.",
        "tool_calls": [
            {"name": "tail_logs", "arguments": {"name": "api"}},
            {"name": "list_events", "arguments": {"namespace": "payments"}},
        ],
    },
    {"text": "The api pods are OOMKilled at a 128Mi limit; the logs could not be read."},
]


def outcome_tools() -> list[Any]:
    """A read that works, one whose backend is down, one that answers in part."""

    def get_pods(namespace: str) -> str:
        """List pods in a namespace."""
        return "api-7d9f8b6c5-x2k4p  0/1  CrashLoopBackOff  37  OOMKilled\napi-7d9f8b6c5-q8w1z  0/1  CrashLoopBackOff  35  OOMKilled"

    def tail_logs(name: str) -> str:
        """Tail a deployment's logs."""
        raise ConnectionRefusedError("kubelet 10.0.3.7:10250 refused the connection")

    def list_events(namespace: str) -> ToolOutput:
        """List events in a namespace."""
        return ToolOutput(
            text="OOMKilling  api-7d9f8b6c5-x2k4p  memory limit 128Mi", partial="partial: 50 of ≥ 51 events"
        )

    return [python_tool(get_pods), python_tool(tail_logs), python_tool(list_events)]


def guarded_factory(script: list[dict[str, Any]], tools: list[Any]) -> Any:
    """A SessionFactory over the real loop, store, Dispatcher and audit (the shipped policy's defaults)."""
    from engine.dispatch import Dispatcher
    from engine.policy.audit import AuditLog
    from engine.policy.rules import Policy
    from engine.testing import ScriptedModel
    from engine.toolbox import Toolbox

    async def factory(cfg: Any, *, store: Any, approver: Any, session_id: str | None = None) -> Any:
        dispatcher = Dispatcher(
            Policy(),
            await AuditLog.open(store.db),
            user="alice",
            clock=lambda: dt.datetime(2026, 3, 14, 3, 7, tzinfo=dt.UTC),
        )
        session = FixedTimingSession(
            ScriptedModel(list(script), name=MODEL, chunk=12),
            Toolbox(list(tools), dispatcher=dispatcher),
            session_id="snap0002",
            sink=store,
            approver=approver,
            context=GaugeContext(),
            clock=frozen_clock(),
            redact=dispatcher.redact,
        )
        await store.create_session(session.id, model=MODEL, context=cfg.context)
        await session.emit(ev.SessionStarted, model=MODEL, context=cfg.context, namespace=cfg.namespace)
        return session

    return factory


class TestOutcomes:
    """The Investigation and Timeline panes after calls that ended every way."""

    def test_outcomes_120x40(self, snap_compare):
        self._compare(snap_compare, SIZE)

    def test_outcomes_80x24(self, snap_compare):
        self._compare(snap_compare, (80, 24))

    def _compare(self, snap_compare, size):
        app = LanternApp(
            config=Config(model=MODEL, namespace="payments", context="sandbox"),
            session_factory=guarded_factory(SCRIPT, outcome_tools()),
            tz=dt.UTC,
            blink=False,
        )

        async def run_before(pilot):
            await ask(pilot, "why is checkout failing?")
            await wait_for(pilot, lambda: bool(events_of(app, "turn-finished")))
            if size != SIZE:
                await pilot.press("escape")  # the stacked layout: show the investigation panes
            # the pane follows the newest step on its next refresh: settle it explicitly (stable snapshots)
            from console.widgets.investigation.steps import StepList

            app.main.query_one(StepList).scroll_end(animate=False, immediate=True)
            await pilot.pause(0.3)

        assert snap_compare(app, terminal_size=size, run_before=run_before)
