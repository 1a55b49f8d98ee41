"""A real headless Chromium (Debian's `chromium` package) driven over the DevTools protocol with the
`websockets` library: no Playwright or Selenium, nothing from the network (every host but loopback
resolves to nothing)."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import shutil
import subprocess
import tempfile
from typing import Any

import pytest

ANSI = re.compile(r"\x1b\[[0-9;?<>=]*[ -/]*[@-~]|\x1b[@-Z\\-_]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)")
"""Terminal escape sequences (CSI, OSC, two-byte)."""


def chromium_or_skip() -> str:
    """The Chromium binary; a skip with the reason when there is none (a failure when LANTERN_REQUIRE_CHROMIUM=1)."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    why = "Chromium is not installed (Debian: apt-get install chromium; `make test` installs it when root)"
    if os.environ.get("LANTERN_REQUIRE_CHROMIUM") == "1":
        pytest.fail(why)
    pytest.skip(why)


class Browser:
    """One headless Chromium with one page; `terminal_text` is what the page's terminal WebSockets received."""

    def __init__(self, binary: str, size: tuple[int, int] = (1400, 900)) -> None:
        self.binary = binary
        self.size = size
        self.proc: subprocess.Popen[bytes] | None = None
        self.ws: Any = None
        self.session = ""
        self.events: list[dict[str, Any]] = []
        self.received: list[str] = []
        self._n = 0
        self._profile = tempfile.mkdtemp(prefix="lantern-chromium-")

    async def __aenter__(self) -> Browser:
        from websockets.asyncio.client import connect

        argv = [
            self.binary,
            "--headless=new",
            "--remote-debugging-port=0",
            f"--user-data-dir={self._profile}",
            "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
            f"--window-size={self.size[0]},{self.size[1]}",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-gpu",
            "--enable-unsafe-swiftshader",
            "about:blank",
        ]
        if os.geteuid() == 0:
            argv.insert(1, "--no-sandbox")
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        url = await asyncio.to_thread(self._devtools_url)
        self.ws = await connect(url, max_size=2**26, proxy=None)
        target = await self.call("Target.createTarget", url="about:blank")
        attached = await self.call("Target.attachToTarget", targetId=target["targetId"], flatten=True)
        self.session = attached["sessionId"]
        for domain in ("Page", "Runtime", "Network"):
            await self.call(f"{domain}.enable", session=True)
        return self

    def _devtools_url(self) -> str:
        assert self.proc is not None and self.proc.stderr is not None
        for raw in self.proc.stderr:
            line = raw.decode("utf-8", "replace")
            m = re.search(r"DevTools listening on (ws://\S+)", line)
            if m:
                return m.group(1)
        raise RuntimeError("Chromium exited before it opened the DevTools port")

    async def __aexit__(self, *exc: object) -> None:
        if self.ws is not None:
            await self.ws.close()
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        shutil.rmtree(self._profile, ignore_errors=True)

    async def call(self, method: str, *, session: bool = False, **params: Any) -> dict[str, Any]:
        """One DevTools command; events that arrive meanwhile are kept."""
        self._n += 1
        n = self._n
        msg: dict[str, Any] = {"id": n, "method": method, "params": params}
        if session:
            msg["sessionId"] = self.session
        await self.ws.send(json.dumps(msg))
        while True:
            data = json.loads(await self.ws.recv())
            if data.get("id") == n:
                if "error" in data:
                    raise RuntimeError(f"{method}: {data['error']}")
                return dict(data.get("result") or {})
            self._event(data)

    def _event(self, data: dict[str, Any]) -> None:
        if data.get("method") == "Network.webSocketFrameReceived":
            frame = data["params"]["response"]
            payload = frame.get("payloadData", "")
            if frame.get("opcode") == 2:
                payload = base64.b64decode(payload).decode("utf-8", "replace")
            self.received.append(payload)
        else:
            self.events.append(data)

    async def page(self, method: str, **params: Any) -> dict[str, Any]:
        """A command to the page."""
        return await self.call(method, session=True, **params)

    def terminal_text(self) -> str:
        """Everything the terminal was sent so far, without escape sequences."""
        return ANSI.sub("", "".join(self.received))

    async def until_text(self, *needles: str, timeout: float = 90.0) -> str:
        """Wait until the terminal was sent every one of `needles`."""
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        while True:
            text = self.terminal_text()
            if all(n in text for n in needles):
                return text
            if loop.time() > end:
                missing = [n for n in needles if n not in text]
                raise AssertionError(f"the browser's terminal never showed {missing}; it showed …{text[-600:]!r}")
            await self.page("Runtime.evaluate", expression="1")  # lets the frames in
            await asyncio.sleep(0.2)

    async def evaluate(self, expression: str) -> Any:
        got = await self.page("Runtime.evaluate", expression=expression, returnByValue=True)
        return got.get("result", {}).get("value")

    async def type(self, text: str) -> None:
        """Type into the focused terminal, then press Enter."""
        await self.evaluate("document.querySelector('.xterm-helper-textarea').focus()")
        await self.page("Input.insertText", text=text)
        await self.key("Enter", "\r", 13)

    async def key(self, key: str, text: str, code: int) -> None:
        """Press and release one key."""
        for kind in ("keyDown", "keyUp"):
            params: dict[str, Any] = {"type": kind, "key": key, "code": key, "windowsVirtualKeyCode": code}
            if kind == "keyDown":
                params["text"] = text
            await self.page("Input.dispatchKeyEvent", **params)

    async def screenshot(self, path: str) -> bytes:
        """A PNG of the page."""
        got = await self.page("Page.captureScreenshot", format="png")
        data = base64.b64decode(got["data"])
        with open(path, "wb") as f:
            f.write(data)
        return data
