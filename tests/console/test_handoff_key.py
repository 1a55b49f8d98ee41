"""`H` (or `:handoff`) writes the current session's handoff to a file and says where."""

from __future__ import annotations

import os
from pathlib import Path

from console.widgets.investigation.steps import StepList
from tests.console.test_console_app import ANSWER, SIZE, app_for, kinds, ready, until


async def test_the_handoff_key_writes_the_session_and_says_where() -> None:
    app = app_for(ANSWER)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, app)
        await pilot.press(*"why is api down", "enter")
        await until(pilot, lambda: bool(kinds(app, "turn-finished")))
        app.main.query_one(StepList).focus()  # out of the input, where H is a letter
        await pilot.press("H")
        path = Path(os.environ["LANTERN_HOME"]) / "handoffs" / f"handoff-{app.bridge.session.id}.md"
        await until(pilot, path.exists)
        text = path.read_text()
        assert text.startswith("# Handoff: why is api down") and "OOMKilled" in text
        await until(pilot, lambda: any(str(path) in n.message for n in app._notifications))
