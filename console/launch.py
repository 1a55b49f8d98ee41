"""Start the full-screen console (imports Textual only here; the engine warms up after the first frame)."""

from __future__ import annotations

from typing import Any


def run_console(args: Any) -> int:
    """Open the Textual console; returns the exit code."""
    from console.app import LanternApp

    app = LanternApp(args)
    app.run()
    return app.return_code or 0
