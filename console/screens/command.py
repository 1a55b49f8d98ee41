"""`:` command mode: a one-line prompt at the bottom with completion from the command registry."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.screen import ModalScreen
from textual.suggester import SuggestFromList
from textual.widgets import Input, Static

from console.keys import COMMANDS


class CommandScreen(ModalScreen[str | None]):
    """Returns the typed command line, or None on escape."""

    BINDINGS = [("escape", "cancel", "Back"), ("tab", "complete", "Complete")]

    def __init__(self, extra: list[str] | None = None) -> None:
        super().__init__()
        self.suggestions = [c.name + (" " if c.args else "") for c in COMMANDS] + list(extra or [])
        """Everything completion offers (commands, theme and namespace names)."""

    def compose(self) -> ComposeResult:
        yield Static(" · ".join(f":{c.name}" for c in COMMANDS), id="command-hints")
        yield Input(
            placeholder="pods · ns NAME · ctx · sessions · theme NAME · quit",
            id="command-line",
            suggester=SuggestFromList(self.suggestions, case_sensitive=False),
        )

    def on_mount(self) -> None:
        self.query_one(Input).border_title = ":"

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.dismiss(event.value.strip() or None)

    def action_complete(self) -> None:
        """Accept the suggested completion."""
        inp = self.query_one(Input)
        if inp._suggestion:
            inp.value = inp._suggestion
            inp.cursor_position = len(inp.value)

    def action_cancel(self) -> None:
        """Leave command mode."""
        self.dismiss(None)
