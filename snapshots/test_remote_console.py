"""Snapshots: the console attached to `lantern serve` (a real server on loopback), an approval pending:
the header says whose session it is and where it runs."""

from __future__ import annotations

import argparse
import datetime as dt

import pytest
from snap_harness import SIZE, NoCluster, ready, wait_for

from console.app import LanternApp
from console.screens.approval import ApprovalScreen
from console.testing import INCIDENT_SCRIPT, GaugeContext, incident_tools, scripted_factory
from console.widgets.header.header_bar import HeaderBar
from engine.config import Config
from server.testing import ServerThread

SHOWN_SERVER = "alice@127.0.0.1:8787"
"""The header's user@host:port, fixed for the snapshot (the test server's port is picked at random)."""


@pytest.fixture
def server(tmp_path, monkeypatch):
    s = ServerThread(
        tmp_path / "server.db", scripted_factory(INCIDENT_SCRIPT, incident_tools(), context=GaugeContext())
    ).start()
    monkeypatch.setenv("LANTERN_TOKEN", s.tokens["alice"])
    yield s
    s.stop()


class TestRemoteConsole:
    """The console over --server with the server's approval request on screen."""

    def test_approval_pending_120x40(self, snap_compare, server):
        self._compare(snap_compare, server, SIZE)

    def test_approval_pending_80x24(self, snap_compare, server):
        self._compare(snap_compare, server, (80, 24))

    def _compare(self, snap_compare, server, size):
        args = argparse.Namespace(
            server=server.url, session=None, cont=False, model=None, context=None, namespace=None, theme=None
        )
        app = LanternApp(
            args,
            config=Config(model="scripted", namespace="payments", context="sandbox"),
            tz=dt.UTC,
            blink=False,
            inspector_cluster=NoCluster,
        )

        async def run_before(pilot):
            from console.widgets.investigation.steps import StepList

            await wait_for(pilot, lambda: ready(app))
            assert app.main.query_one(HeaderBar).server.startswith("alice@127.0.0.1:")
            await pilot.press(*"why is checkout failing?", "enter")
            await wait_for(pilot, lambda: isinstance(app.screen, ApprovalScreen))
            app.main.query_one(HeaderBar).server = SHOWN_SERVER
            app.main.query_one(StepList).scroll_end(animate=False, immediate=True)
            await pilot.pause(0.2)

        assert snap_compare(app, terminal_size=size, run_before=run_before)
