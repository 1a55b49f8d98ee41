"""The conversation pane: the user's questions and the agent's streamed markdown answers."""

from __future__ import annotations

from textual.containers import VerticalScroll
from textual.widgets import Markdown, Static


class UserLine(Static):
    """One question the user asked."""


class AnswerBlock(Markdown):
    """One step's streamed answer (restyled as a hypothesis when the step goes on to call tools)."""


class NoticeLine(Static):
    """A notice, warning or error from the engine or the console."""


class TurnFooter(Static):
    """How a turn ended: reason, steps, tokens, time."""


class Conversation(VerticalScroll):
    """Scrolls to the newest block unless the user has scrolled up to read."""

    FLUSH_S = 0.08
    """Streamed text is drawn at most this often: reading speed, and keys stay responsive."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self._answers: dict[tuple[int, int], AnswerBlock] = {}
        self._shown: dict[tuple[int, int], int] = {}
        self._latest: dict[tuple[int, int], str] = {}
        self._flush_timer: object | None = None
        self._final: set[tuple[int, int]] = set()

    def _follow(self) -> None:
        # Only follow the stream when the reader is already at the bottom.
        if self.max_scroll_y - self.scroll_y <= 3:
            self.call_after_refresh(self.scroll_end, animate=False)

    def add_user(self, text: str) -> None:
        """Show the user's question."""
        self.mount(UserLine(f"› {text}", markup=False))
        self._follow()

    def stream(self, turn: int, step: int, text: str) -> None:
        """Note everything streamed so far for a step; it is drawn on the next flush."""
        self._latest[(turn, step)] = text
        if self._flush_timer is None:
            self._flush_timer = self.set_timer(self.FLUSH_S, self._flush)

    async def _flush(self) -> None:
        self._flush_timer = None
        latest, self._latest = self._latest, {}
        for (turn, step), text in latest.items():
            await self._draw(turn, step, text)

    async def _draw(self, turn: int, step: int, text: str) -> None:
        """Append the part of `text` not drawn yet."""
        key = (turn, step)
        if key in self._final:
            return
        block = self._answers.get(key)
        if block is None:
            block = AnswerBlock("")
            self._answers[key] = block
            self._shown[key] = 0
            await self.mount(block)
            if key in self._final:
                return
        new = text[self._shown[key] :]
        if new:
            self._shown[key] = len(text)
            await block.append(new)
        self._follow()

    async def finish(self, turn: int, step: int, text: str, *, hypothesis: bool) -> None:
        """The step's final text: replaces the streamed one; a step that calls tools is a hypothesis."""
        key = (turn, step)
        self._latest.pop(key, None)
        self._final.add(key)
        block = self._answers.get(key)
        if not text and block is None:
            return
        if block is None:
            block = AnswerBlock("")
            self._answers[key] = block
            await self.mount(block)
        if self._shown.get(key) != len(text):
            await block.update(text)
        self._shown[key] = len(text)
        block.set_class(hypothesis, "hypothesis")
        if not text:
            block.display = False
        self._follow()

    def notice(self, text: str, level: str = "info") -> None:
        """Show a notice (info, warning or error)."""
        line = NoticeLine(text, markup=False)
        line.add_class(level)
        self.mount(line)
        self._follow()

    def turn_finished(self, text: str, reason: str) -> None:
        """Close a turn with its summary line."""
        footer = TurnFooter(text, markup=False)
        footer.add_class(reason)
        self.mount(footer)
        self._follow()
