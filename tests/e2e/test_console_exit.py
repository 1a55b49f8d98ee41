"""Quitting the console: a sandbox cluster it started is stopped when the setting says so, and the
first alert is re-armed from the scenario, not replayed from a run that already healed it."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
from typing import Any

import pytest
from e2e_support import LONG

from console.app import LanternApp
from console.launch import _leave_world
from engine.config import Config

pytestmark = pytest.mark.sandbox


async def _until(pilot: Any, cond: Any, what: str, timeout: float = LONG) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not cond():
        assert loop.time() < end, f"timed out waiting for {what}"
        await pilot.pause(0.2)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:
        return f.read().split()[2] != "Z"


async def test_quitting_a_console_that_started_the_sandbox_stops_it(tmp_path, monkeypatch, capsys):
    from sandbox.cluster import started_here

    monkeypatch.setenv("LANTERN_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.delenv("LANTERN_CONTEXT", raising=False)
    script = tmp_path / "s.json"
    script.write_text(json.dumps([{"text": "Looking at it."}] * 4))
    app = LanternApp(config=Config(model=f"scripted:{script}", sandbox_on_exit="stop"), tz=dt.UTC, blink=False)
    pids: list[int] = []
    try:
        await _quit_after_the_first_turn(app, pids)
    except BaseException:
        # a failed assertion must not leave the test's sandbox running (the console did not get to stop it)
        from sandbox.cluster import down

        down(tmp_path / "home" / "sandbox")
        raise
    _leave_world(app)
    assert "Stopped the sandbox cluster" in capsys.readouterr().err
    assert not [p for p in pids if _alive(p)] and not started_here()


async def _quit_after_the_first_turn(app: LanternApp, pids: list[int]) -> None:
    from sandbox.cluster import Layout, components, started_here

    async with app.run_test(size=(120, 40)) as pilot:
        await _until(pilot, lambda: app.bridge is not None and app.bridge.ready, "the engine and its sandbox")
        assert started_here(), "this console started the sandbox"
        state = Layout().read_state()
        pids += [p for p in (state.get("pids") or {}).values() if p]
        assert len(pids) == len(components(state)) and all(_alive(p) for p in pids)
        opening = getattr(app.bridge.session, "opening", "")
        assert "unconfirmed" in opening
        # Before the model's first step the alert's namespace is read, and the findings' follow-ups
        # (the sick pod described, its log) run with it.
        session = app.bridge.session
        await _until(pilot, lambda: any(e.kind == "turn-finished" for e in session.events), "the first turn")
        first = [e for e in session.events if e.turn == 1]
        calls = [c["name"] for e in first if e.kind == "assistant-message" and e.step == 0 for c in e.tool_calls]
        # (which follow-ups run depends on how far the pods got: describe, then the log once it crashed)
        assert calls[0] == "kubernetes.list_pods" and {"kubernetes.describe_pod", "kubernetes.get_pod_logs"} & set(
            calls
        )
        assert session.config.opening == [], "later turns start from the model"
