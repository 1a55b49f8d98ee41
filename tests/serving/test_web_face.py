"""The browser face of `lantern serve`: the console itself in a real headless Chromium, signed in with a
one-time link, asking, approving and seeing the answer; and the sign-in refusing what it must."""

from __future__ import annotations

import asyncio
import os
from typing import Any

import httpx
import pytest

from console.testing import INCIDENT_SCRIPT
from server.client import Remote
from server.testing import ServerThread, scripted_sessions
from tests.serving.chromium import Browser, chromium_or_skip


@pytest.fixture
def executed() -> list[dict[str, Any]]:
    return []


@pytest.fixture
def server(tmp_path, executed):
    s = ServerThread(tmp_path / "server.db", scripted_sessions(INCIDENT_SCRIPT, executed)).start()
    yield s
    s.stop()


async def one_time_link(server: Any, user: str, session: str = "") -> str:
    got = await Remote(server.url, server.tokens[user]).json(
        "POST", "/v1/web/links" + (f"?session={session}" if session else "")
    )
    return server.url + got["path"]


async def test_the_console_in_chromium_asks_approves_and_shows_the_answer(server, executed, tmp_path) -> None:
    binary = chromium_or_skip()
    link = await one_time_link(server, "bob")  # sre-leads: may approve the rollback
    shot = os.environ.get("LANTERN_WEB_SCREENSHOT") or str(tmp_path / "web-face.png")
    async with Browser(binary) as browser:
        await browser.page("Page.navigate", url=link)
        host = server.url.removeprefix("http://")
        await browser.until_text("◆ Lantern", f"bob@{host}", "ready")
        assert await browser.evaluate("location.search") == "", "the one-time code left the address bar"
        await browser.type("why is checkout failing?")
        await browser.until_text("Approval needed", "rollback_deployment")
        assert executed == []
        await browser.screenshot(shot.replace(".png", "-approval.png"))
        await browser.key("a", "a", 65)
        await browser.until_text("Root cause")
        await asyncio.sleep(1.0)
        png = await browser.screenshot(shot)
        assert png.startswith(b"\x89PNG") and len(png) > 10_000
    assert executed == [{"tool": "rollback_deployment", "name": "api", "namespace": "payments", "revision": 13}]
    rows = await Remote(server.url, server.tokens["alice"]).sessions()
    assert rows[0]["title"] == "why is checkout failing?"
    audit = await Remote(server.url, server.tokens["alice"]).audit()
    assert any(r["tool"] == "rollback_deployment" and r["user"] == "bob" for r in audit)


async def test_the_web_page_needs_a_sign_in_and_a_link_works_once(server) -> None:
    async with httpx.AsyncClient(base_url=server.url, trust_env=False, follow_redirects=False) as http:
        form = await http.get("/web/")
        assert form.status_code == 200 and 'name="token"' in form.text and "terminal" not in form.text
        assert (await http.post("/v1/web/links")).status_code == 401
        refused = await http.post("/web/login", content="token=lt_wrong")
        assert refused.status_code == 401 and "refused" in refused.text
        link = await one_time_link(server, "alice")
        path = link.removeprefix(server.url)
        signed = await http.get(path)
        assert signed.status_code == 303 and signed.headers["location"] == "/web/"
        cookie = signed.headers["set-cookie"]
        assert (
            "httponly" in cookie.lower() and "samesite=lax" in cookie.lower() and server.tokens["alice"] not in cookie
        )
        page = await http.get("/web/")
        assert page.status_code == 200 and 'id="terminal"' in page.text and "/web/ws/" in page.text
        again = await httpx.AsyncClient(base_url=server.url, trust_env=False).get(path)
        assert again.status_code == 401 and "used or expired" in again.text
    rows = await Remote(server.url, server.tokens["alice"]).audit()
    assert any(r["kind"] == "refusal" and "web" in r["detail"] for r in rows)


async def test_the_terminal_refuses_a_browser_without_a_sign_in_or_from_another_origin(server) -> None:
    from websockets.asyncio.client import connect
    from websockets.exceptions import InvalidStatus

    ws_url = server.url.replace("http://", "ws://") + "/web/ws/?width=80&height=24"
    with pytest.raises(InvalidStatus):
        await connect(ws_url, proxy=None)
    link = await one_time_link(server, "alice")
    async with httpx.AsyncClient(trust_env=False) as http:
        signed = await http.get(link)
    cookie = signed.headers["set-cookie"].split(";")[0]
    with pytest.raises(InvalidStatus):
        await connect(ws_url, proxy=None, additional_headers={"Cookie": cookie}, origin="http://evil.example")  # type: ignore[arg-type]
