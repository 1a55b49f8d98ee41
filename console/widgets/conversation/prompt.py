"""The question input: history (up/down), `/` slash commands with completion, `:`/`?` at an empty line."""

from __future__ import annotations

from textual import events
from textual.binding import Binding
from textual.geometry import Size
from textual.message import Message
from textual.reactive import Reactive
from textual.suggester import SuggestFromList
from textual.widgets import Input

from console.keys import completions


class PromptInput(Input):
    """Where the user asks; submitting posts `Asked` (or `CommandEntered` for /commands)."""

    BINDINGS = [
        Binding("up", "history(-1)", "Previous", show=False, id="prompt.history_prev"),
        Binding("down", "history(1)", "Next", show=False, id="prompt.history_next"),
        Binding("tab", "complete", "Complete", show=False, id="prompt.complete"),
    ]

    virtual_size: Reactive[Size] = Reactive(Size(0, 0), layout=False, repaint=True)
    """The text's extent. Input sets it on every keystroke; as Widget's layout reactive that
    relaid out the whole screen per key (costly while an answer streams), and the prompt's own
    size never depends on its text."""

    class Asked(Message):
        """The user submitted a question."""

        def __init__(self, text: str) -> None:
            super().__init__()
            self.text = text
            """The question."""

    class CommandEntered(Message):
        """The user submitted a `/command` (same table as `:` commands)."""

        def __init__(self, line: str) -> None:
            super().__init__()
            self.line = line
            """The command line, slash included."""

    class ModeRequested(Message):
        """`:` or `?` typed at an empty input: open command mode or help instead of typing it."""

        def __init__(self, mode: str) -> None:
            super().__init__()
            self.mode = mode
            """'command' or 'help'."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(
            placeholder="Ask about an incident…  (/ commands · : command mode · ? help · esc panes)",
            suggester=SuggestFromList(completions("/"), case_sensitive=False),
            **kwargs,  # type: ignore[arg-type]
        )
        self.history: list[str] = []
        """Submitted lines, oldest first."""
        self._pos = 0
        self._draft = ""

    async def _on_key(self, event: events.Key) -> None:
        if not self.value and event.character in (":", "?"):
            event.prevent_default()
            event.stop()
            self.post_message(self.ModeRequested("command" if event.character == ":" else "help"))
            return
        await super()._on_key(event)

    def action_history(self, delta: int) -> None:
        """Walk the history like a shell."""
        if not self.history:
            return
        if self._pos == len(self.history):
            self._draft = self.value
        self._pos = max(0, min(len(self.history), self._pos + delta))
        self.value = self.history[self._pos] if self._pos < len(self.history) else self._draft
        self.cursor_position = len(self.value)

    def action_complete(self) -> None:
        """Accept the suggested completion, or move focus on like tab does elsewhere."""
        if self._suggestion and self._suggestion != self.value:
            self.value = self._suggestion
            self.cursor_position = len(self.value)
        else:
            self.screen.focus_next()

    async def action_submit(self) -> None:
        text = self.value.strip()
        if not text:
            return
        if not self.history or self.history[-1] != text:
            self.history.append(text)
        self._pos = len(self.history)
        self._draft = ""
        self.value = ""
        if text.startswith("/"):
            self.post_message(self.CommandEntered(text))
        else:
            self.post_message(self.Asked(text))
