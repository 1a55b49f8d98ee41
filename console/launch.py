"""Start the full-screen console (imports Textual only here)."""

from __future__ import annotations

from typing import Any


def run_console(args: Any) -> int:
    """Open the Textual console."""
    from console.app import LanternApp

    app = LanternApp(args)
    app.run()
    return app.return_code or 0
