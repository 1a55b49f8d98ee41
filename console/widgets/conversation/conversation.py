"""The conversation pane: the user's questions and the agent's streamed markdown answers."""

from __future__ import annotations

import time

from textual.containers import VerticalScroll
from textual.widgets import Markdown, Static

from console.keys import bindings


def settled_prefix(text: str) -> int:
    """Length of the part of a streaming answer made of finished paragraphs (never inside a code fence)."""
    cut = text.rfind("\n\n")
    while cut > 0 and text.count("```", 0, cut) % 2:
        cut = text.rfind("\n\n", 0, cut)
    return max(cut, 0)


class UserLine(Static):
    """One question the user asked."""


class AnswerBlock(Markdown):
    """One step's streamed answer (restyled as a hypothesis when the step goes on to call tools)."""


class StreamingAnswer(Static):
    """An answer while it streams: one widget redrawn as a whole (cheap), replaced by an
    AnswerBlock when the step's final text arrives."""

    def show(self, text: str) -> None:
        """Draw the text so far as markdown."""
        from rich.markdown import Markdown as RichMarkdown

        self.update(RichMarkdown(text, hyperlinks=False))


class NoticeLine(Static):
    """A notice, warning or error from the engine or the console."""


class ToolsLoaded(Static, can_focus=True):
    """Which tools a step loaded, folded to one short line; enter or a click unfolds the list."""

    def __init__(self, loaded: list[tuple[str, str]]) -> None:
        super().__init__(markup=False)
        self.loaded = loaded
        """(tool, why) in the order the engine gave them."""
        self.expanded = False
        """True while the whole list shows."""
        self.update(self._text())

    def _text(self) -> str:
        whys = list(dict.fromkeys(why for _, why in self.loaded if why and why != "registered"))
        head = f"{'▾' if self.expanded else '▸'} {len(self.loaded)} tool{'s' if len(self.loaded) != 1 else ''} loaded"
        if whys:
            head += " · " + ", ".join(whys[:2]) + (" …" if len(whys) > 2 else "")
        if not self.expanded:
            return head
        return head + "".join(f"\n    {name}" + (f"  ({why})" if why else "") for name, why in self.loaded)

    def toggle(self) -> None:
        """Fold or unfold the list."""
        self.expanded = not self.expanded
        self.update(self._text())

    def on_click(self) -> None:
        self.toggle()

    def key_enter(self) -> None:
        self.toggle()


class TurnFooter(Static):
    """How a turn ended: reason, steps, tokens, time."""


class Conversation(VerticalScroll):
    """Scrolls to the newest block unless the user has scrolled up to read."""

    BINDINGS = bindings("conversation")

    FLUSH_S = 0.15
    """Streamed text is drawn at most this often: reading speed, and keys stay responsive."""
    TYPING_FLUSH_S = 0.4
    """While the user types, streamed text is drawn at most this often: keys come first."""
    SETTLE_CHARS = 1200
    """Finished paragraphs are frozen into their own widget in chunks of at least this size."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self._answers: dict[tuple[int, int], AnswerBlock] = {}
        self._streaming: dict[tuple[int, int], list[StreamingAnswer]] = {}
        self._settled: dict[tuple[int, int], int] = {}
        self._latest: dict[tuple[int, int], str] = {}
        self._flush_timer: object | None = None
        self._flushed_at = 0.0
        self._final: set[tuple[int, int]] = set()

    def watch_virtual_size(self) -> None:
        # Anchored, the layout itself keeps the newest block in view: no second frame to scroll
        # after each streamed update. Textual's anchor also pushes short content to the bottom,
        # so it is set only once the conversation overflows (checked once this layout is done).
        # Scrolling up releases it; scrolling back to the end restores it.
        self.call_later(self._anchor_when_overflowing)

    def _anchor_when_overflowing(self) -> None:
        overflows = self.max_scroll_y > 0
        if overflows != self.is_anchored:
            self.anchor(overflows)

    def add_user(self, text: str) -> None:
        """Show the user's question."""
        self.mount(UserLine(f"› {text}", markup=False))

    def stream(self, turn: int, step: int, text: str) -> None:
        """Note everything streamed so far for a step; it is drawn on the next flush."""
        self._latest[(turn, step)] = text
        if self._flush_timer is None:
            self._flush_timer = self.set_timer(self.FLUSH_S, self._flush)

    async def _flush(self) -> None:
        self._flush_timer = None
        now = time.monotonic()
        # A redraw of the stream relays out the pane; one under way when a key arrives delays
        # that key's echo. So while keys arrive the stream is drawn less often (never stalled).
        typing = now - getattr(self.app, "last_key_at", 0.0) < self.FLUSH_S
        if typing and now - self._flushed_at < self.TYPING_FLUSH_S:
            self._flush_timer = self.set_timer(self.FLUSH_S, self._flush)
            return
        self._flushed_at = now
        latest, self._latest = self._latest, {}
        for (turn, step), text in latest.items():
            await self._draw(turn, step, text)

    async def _draw(self, turn: int, step: int, text: str) -> None:
        """Redraw the streaming answer of a step: finished paragraphs are drawn once, only the
        paragraph in progress is redrawn (the cost of a frame stays flat as the answer grows)."""
        key = (turn, step)
        if key in self._final:
            return
        parts = self._streaming.get(key)
        if parts is None:
            parts = [StreamingAnswer()]
            self._streaming[key] = parts
            self._settled[key] = 0
            await self.mount(parts[0])
            if key in self._final:
                return
        tail = parts[-1]
        done = self._settled[key]
        cut = settled_prefix(text)
        if cut - done >= self.SETTLE_CHARS:
            settled = StreamingAnswer()
            settled.show(text[done:cut])
            parts.insert(-1, settled)
            self._settled[key] = cut
            await self.mount(settled, before=tail)
        tail.show(text[self._settled[key] :])

    async def finish(self, turn: int, step: int, text: str, *, hypothesis: bool) -> None:
        """The step's final text replaces the streamed one; a step that calls tools is a hypothesis."""
        key = (turn, step)
        self._latest.pop(key, None)
        self._final.add(key)
        parts = self._streaming.pop(key, None) or []
        if not text:
            for w in parts:
                await w.remove()
            return
        block = AnswerBlock(text)
        block.set_class(hypothesis, "hypothesis")
        self._answers[key] = block
        if parts:
            await self.mount(block, before=parts[0])
            await self.remove_children(parts)
        else:
            await self.mount(block)

    def notice(self, text: str, level: str = "info") -> None:
        """Show a notice (info, warning or error)."""
        line = NoticeLine(text, markup=False)
        line.add_class(level)
        self.mount(line)

    def tools_loaded(self, loaded: list[tuple[str, str]]) -> None:
        """One folded line for the tools a step loaded."""
        self.mount(ToolsLoaded(loaded))

    def turn_finished(self, text: str, reason: str) -> None:
        """Close a turn with its summary line."""
        footer = TurnFooter(text, markup=False)
        footer.add_class(reason)
        self.mount(footer)
