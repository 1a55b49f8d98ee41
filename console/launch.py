"""Start the full-screen console (imports Textual only here; the engine warms up after the first frame)."""

from __future__ import annotations

from typing import Any


def run_console(args: Any) -> int:
    """Open the Textual console; returns the exit code."""
    from console.app import LanternApp

    app = LanternApp(args)
    app.run()
    _leave_world(app)
    return app.return_code or 0


def check_server(url: str) -> str:
    """Why the console cannot attach to the server at `url` ('' when it can): a bad URL, no token, a
    refused token, nobody listening. Said in one line before the full screen opens."""
    import asyncio

    from server.client import Remote, RemoteError

    async def whoami() -> None:
        await Remote(url).json("GET", "/v1/whoami")

    try:
        asyncio.run(whoami())
    except RemoteError as exc:
        return str(exc)
    return ""


def _leave_world(app: Any) -> None:
    """Stop, or say how to stop, the sandbox this console started (never a traceback on the way out)."""
    import sys

    if app.bridge is None or app.bridge.remote is not None:  # a server's sessions run in its world
        return
    try:
        from wiring import leave_world

        said = leave_world(app.cfg)
    except Exception as exc:  # noqa: BLE001 - quitting must not fail on the sandbox's account
        said = f"Could not check the sandbox cluster on exit: {exc}"
    if said:
        print(said, file=sys.stderr)
