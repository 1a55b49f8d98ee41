"""Harness apps for the snapshot tests: the real console on the scripted model, frozen clock, fixed size."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable
from typing import Any

from textual.pilot import Pilot

from console.app import LanternApp
from console.testing import GaugeContext, scripted_factory
from engine.config import Config

SIZE = (120, 40)
"""Terminal size of every snapshot."""


def harness_app(
    script: list[dict[str, Any]],
    tools: list[Any] | None = None,
    *,
    context: Any = None,
    theme: str = "lantern-dark",
    models: Any = None,
    cluster: Callable[[], Any] | None = None,
) -> LanternApp:
    """A console over the real loop with the scripted model, UTC timestamps and no cursor blink; the inspector
    checks against `cluster` (default: none, as on a machine without a kube context)."""
    return LanternApp(
        config=Config(model="scripted", namespace="payments", context="sandbox", theme=theme),
        session_factory=scripted_factory(script, tools, context=context or GaugeContext()),
        tz=dt.UTC,
        blink=False,
        inspector_models=models,
        inspector_cluster=cluster or NoCluster,
    )


class NoCluster:
    """The inspector's cluster on a machine with no kube context (a snapshot never depends on the host's kubeconfig)."""

    def schema(self) -> Any:
        from skills.kube.schema import SchemaUnavailable

        raise SchemaUnavailable("no kube context; `lantern sandbox up` starts a local cluster")

    def dry_run(self, docs: list[Any], namespace: str = "default") -> list[Any]:
        return []


async def wait_for(pilot: Pilot[Any], cond: Callable[[], bool], timeout: float = 30.0) -> None:
    """Pause until `cond()` holds (the engine runs in a worker), then let the screen settle."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not cond():
        if loop.time() > end:
            raise AssertionError("condition not reached in time")
        await pilot.pause(0.05)
    # Let deferred work settle (streamed text flushes on a timer), then wait for the screen's
    # next refresh: on a loaded machine a fixed pause alone can end before it.
    for _ in range(3):
        await pilot.pause(0.2)
    await asyncio.wait_for(pilot.app.screen.wait_for_refresh(), timeout)
    await pilot.wait_for_scheduled_animations()
    await pilot.pause()


def ready(app: LanternApp) -> bool:
    """The session is open."""
    return app.bridge is not None and app.bridge.ready


def events_of(app: LanternApp, kind: str) -> list[Any]:
    """The session's events of one kind."""
    s = app.bridge.session if app.bridge else None
    return [e for e in (s.events if s else []) if e.kind == kind]


async def ask(pilot: Pilot[Any], text: str) -> None:
    """Wait for the engine, type a question and submit it."""
    await wait_for(pilot, lambda: ready(pilot.app))  # type: ignore[arg-type]
    await pilot.press(*text, "enter")
