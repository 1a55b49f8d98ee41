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


def _leave_world(app: Any) -> None:
    """Stop, or say how to stop, the sandbox this console started (never a traceback on the way out)."""
    import sys

    if app.bridge is None:
        return
    try:
        from wiring import leave_world

        said = leave_world(app.cfg)
    except Exception as exc:  # noqa: BLE001 - quitting must not fail on the sandbox's account
        said = f"Could not check the sandbox cluster on exit: {exc}"
    if said:
        print(said, file=sys.stderr)
