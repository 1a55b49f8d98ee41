"""`lantern --server URL`: the full console attached to a real `lantern serve` on loopback (the scripted
model, the real dispatcher, policy and audit on the server), asserted on what the person sees and on
what ran on the server."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
from typing import Any

import pytest

from console.app import LanternApp
from console.cli import main
from console.screens.approval import ApprovalScreen
from console.testing import INCIDENT_SCRIPT
from console.widgets.header.header_bar import HeaderBar
from engine.config import Config
from server.client import Remote
from server.testing import ServerThread, scripted_sessions

SIZE = (120, 40)
READS = [
    INCIDENT_SCRIPT[0],
    INCIDENT_SCRIPT[1],
    {"text": "The api is OOMKilled since revision 14 cut its memory limit."},
]


class LoopServer(ServerThread):
    """The test server, with its event loop at hand (to drop a face's WebSocket from the server's side)."""

    async def _main(self) -> None:
        self.loop = asyncio.get_running_loop()
        await super()._main()

    def drop_faces(self, sid: str) -> None:
        """Close every face's WebSocket of `sid` as the server does for one that fell behind (code 1013)."""

        def drop() -> None:
            assert self.hub is not None
            for face in list(self.hub.live[sid].faces):
                face.queue.put_nowait(None)

        self.loop.call_soon_threadsafe(drop)


def serve(tmp_path: Any, script: list[dict[str, Any]], executed: list[dict[str, Any]]) -> LoopServer:
    return LoopServer(tmp_path / "server.db", scripted_sessions(script, executed)).start()  # type: ignore[return-value]


def console(url: str, **args: Any) -> LanternApp:
    ns = argparse.Namespace(
        server=url, session=None, cont=False, model=None, context=None, namespace=None, theme=None, read_only=False
    )
    for k, v in args.items():
        setattr(ns, k, v)
    return LanternApp(ns, config=Config(model="scripted", namespace="payments"), tz=dt.UTC, blink=False)


def screen_text(app: LanternApp) -> str:
    """What the main screen shows, line by line."""
    return "\n".join(strip.text for strip in app.main._compositor.render_strips())


def conversation_text(app: LanternApp) -> str:
    """Everything the conversation holds, scrolled into view or not."""
    from textual.widgets import Static

    from console.widgets.conversation.conversation import Conversation

    out = []
    for w in app.main.query_one(Conversation).query(Static):
        shown = w.render()
        out.append(getattr(shown, "plain", None) or str(shown))
    return "\n".join(out)


async def until(pilot: Any, cond: Any, timeout: float = 30.0) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not cond():
        assert loop.time() < end, "condition not reached in time"
        await pilot.pause(0.03)


def kinds(app: LanternApp, kind: str) -> list[Any]:
    assert app.bridge is not None and app.bridge.session is not None
    return [e for e in app.bridge.session.events if e.kind == kind]


async def test_a_message_runs_on_the_server_and_the_turn_renders(tmp_path, monkeypatch) -> None:
    server = serve(tmp_path, READS, [])
    try:
        monkeypatch.setenv("LANTERN_TOKEN", server.tokens["alice"])
        app = console(server.url)
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: app.bridge is not None and app.bridge.ready)
            header = app.main.query_one(HeaderBar)
            assert header.server == f"alice@{server.url.removeprefix('http://')}"
            await pilot.press(*"why is the api crash-looping?", "enter")
            await until(pilot, lambda: bool(app.bridge.session and kinds(app, "turn-finished")))
            await pilot.pause(0.3)
            text = screen_text(app)
            assert "why is the api crash-looping?" in text
            assert "OOMKilled since revision 14" in text
            assert "get_pods" in text and "rollout_history" in text  # investigation and timeline
            assert f"alice@{server.url.removeprefix('http://')}" in text.splitlines()[0]
            assert header.model == "scripted" and header.session_id == app.bridge.session.id
        rows = await Remote(server.url, server.tokens["bob"]).sessions()
        assert rows[0]["title"] == "why is the api crash-looping?"
    finally:
        server.stop()


async def test_an_approval_from_the_server_opens_the_modal_and_the_answer_runs_the_call(tmp_path, monkeypatch) -> None:
    executed: list[dict[str, Any]] = []
    server = serve(tmp_path, INCIDENT_SCRIPT, executed)
    try:
        monkeypatch.setenv("LANTERN_TOKEN", server.tokens["bob"])  # sre-leads: may approve the rollback
        app = console(server.url)
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: app.bridge is not None and app.bridge.ready)
            await pilot.press(*"why is checkout failing?", "enter")
            await until(pilot, lambda: isinstance(app.screen, ApprovalScreen))
            request = app.screen.request  # type: ignore[attr-defined]
            assert request.tool == "rollback_deployment" and executed == []
            await pilot.press("a")
            await until(pilot, lambda: bool(kinds(app, "turn-finished")))
            (resolved,) = kinds(app, "approval-resolved")
            assert resolved.approved and resolved.by == "bob" and resolved.request_id == request.request_id
        assert executed == [{"tool": "rollback_deployment", "name": "api", "namespace": "payments", "revision": 13}]
        audit = await Remote(server.url, server.tokens["bob"]).audit()
        assert any(r["tool"] == "rollback_deployment" and r["user"] == "bob" for r in audit)
    finally:
        server.stop()


async def test_another_face_answers_first_and_the_modal_closes_saying_who(tmp_path, monkeypatch) -> None:
    executed: list[dict[str, Any]] = []
    server = serve(tmp_path, INCIDENT_SCRIPT, executed)
    try:
        monkeypatch.setenv("LANTERN_TOKEN", server.tokens["alice"])  # a responder: asks, may not approve
        app = console(server.url)
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: app.bridge is not None and app.bridge.ready)
            await pilot.press(*"why is checkout failing?", "enter")
            await until(pilot, lambda: isinstance(app.screen, ApprovalScreen))
            request = app.screen.request  # type: ignore[attr-defined]
            async with Remote(server.url, server.tokens["bob"]).attach(app.bridge.session.id) as bob:
                await bob.answer(request, True, "go")
                said = "rollback_deployment was approved by bob on another face."
                await until(pilot, lambda: any(n.message == said for n in app._notifications))
                await until(pilot, lambda: not isinstance(app.screen, ApprovalScreen))
                await until(pilot, lambda: bool(kinds(app, "turn-finished")))
            await pilot.pause(0.3)
            assert "approved by bob" in screen_text(app)
        assert [e["tool"] for e in executed] == ["rollback_deployment"]
    finally:
        server.stop()


async def test_the_console_reattaches_after_the_server_drops_it(tmp_path, monkeypatch) -> None:
    server = serve(tmp_path, READS, [])
    try:
        monkeypatch.setenv("LANTERN_TOKEN", server.tokens["alice"])
        app = console(server.url)
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: app.bridge is not None and app.bridge.ready)
            bridge = app.bridge
            bridge.retry_s = 1.5  # type: ignore[attr-defined]
            sid = bridge.session.id
            server.drop_faces(sid)
            await until(pilot, lambda: app.main.query_one(HeaderBar).model_state == "offline")
            assert not bridge.ready
            # while this face is away, another asks in the same session
            async with Remote(server.url, server.tokens["bob"]).attach(sid) as bob:
                frames = bob.frames()
                async for item in frames:
                    if isinstance(item, dict) and item.get("frame") == "live":
                        break
                await bob.message("is the api healthy?")
                async for item in frames:
                    if getattr(item, "kind", "") == "turn-finished":
                        break
            await until(pilot, lambda: bridge.ready and bool(kinds(app, "turn-finished")))
            await pilot.pause(0.3)
            text = conversation_text(app)
            assert "Lost the connection to the server" in text and "Reconnected to" in text
            assert "is the api healthy?" in text and "OOMKilled since revision 14" in text
            seqs = [e.seq for e in bridge.session.events]
            assert seqs == sorted(set(seqs)), "every event once, in order"
            # and it works again from this face
            await pilot.press(*"and now?", "enter")
            await until(pilot, lambda: len(kinds(app, "turn-finished")) == 2)
    finally:
        server.stop()


async def test_continue_opens_the_servers_latest_session_with_its_history(tmp_path, monkeypatch) -> None:
    server = serve(tmp_path, READS, [])
    try:
        remote = Remote(server.url, server.tokens["bob"])
        sid = await remote.create()
        async with remote.attach(sid) as face:
            frames = face.frames()
            async for item in frames:
                if isinstance(item, dict) and item.get("frame") == "live":
                    break
            await face.message("what is failing in payments?")
            async for item in frames:
                if getattr(item, "kind", "") == "turn-finished":
                    break
        monkeypatch.setenv("LANTERN_TOKEN", server.tokens["alice"])
        app = console(server.url, cont=True)
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: app.bridge is not None and app.bridge.ready)
            await pilot.pause(0.5)
            assert app.bridge.session.id == sid
            text = conversation_text(app)
            assert "what is failing in payments?" in text and "OOMKilled since revision 14" in text
    finally:
        server.stop()


def test_a_server_the_console_cannot_use_is_one_line(monkeypatch, capsys) -> None:
    monkeypatch.setenv("LANTERN_TOKEN", "lt_x")
    assert main(["--server", "http://127.0.0.1:9"]) == 2
    err = capsys.readouterr().err
    assert "cannot reach the server at http://127.0.0.1:9" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("url", ["ftp://host"])
def test_a_bad_server_url_is_one_line(monkeypatch, capsys, url) -> None:
    monkeypatch.setenv("LANTERN_TOKEN", "lt_x")
    assert main(["--server", url]) == 2
    assert "not a server URL" in capsys.readouterr().err


async def test_the_inspectors_apply_runs_on_the_server_through_its_approval(tmp_path, monkeypatch) -> None:
    from console.testing import scripted_factory
    from console.widgets.inspector.inspector import Inspector
    from engine.tools import Preview, Tool

    applied: list[dict[str, Any]] = []

    async def handler(args: dict[str, Any]) -> dict[str, Any]:
        applied.append(args)
        return {"applied": ["ConfigMap/payments/api-config"]}

    async def preview(args: dict[str, Any]) -> Preview:
        return Preview(diff="--- live/ConfigMap/payments/api-config\n+++ dry-run\n+  POOL_SIZE: '40'", objects=[])

    params = {
        "type": "object",
        "properties": {"manifest": {"type": "string"}, "namespace": {"type": "string"}},
        "required": ["manifest"],
    }
    tool = Tool("kubernetes.apply_manifest", "Server-side apply", params, handler, risk="dangerous", preview=preview)
    server = LoopServer(tmp_path / "server.db", scripted_factory([], [tool])).start()
    manifest = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: api-config}\ndata: {POOL_SIZE: '40'}\n"
    try:
        monkeypatch.setenv("LANTERN_TOKEN", server.tokens["alice"])
        app = console(server.url)
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: app.bridge is not None and app.bridge.ready)
            await app.main.toggle_inspector()
            app.main.query_one(Inspector).post_message(Inspector.ApplyRequested(manifest))
            await until(pilot, lambda: isinstance(app.screen, ApprovalScreen))
            request = app.screen.request  # type: ignore[attr-defined]
            assert request.tool == "kubernetes.apply_manifest" and "POOL_SIZE" in request.preview and applied == []
            await pilot.press("a")
            await until(pilot, lambda: bool(kinds(app, "turn-finished")))
            (resolved,) = kinds(app, "approval-resolved")
            assert resolved.approved and resolved.by == "alice"
        assert applied == [{"manifest": manifest, "namespace": "payments"}]
    finally:
        server.stop()
