"""Investigation blocks: one block per model step (hypothesis, tool calls, summarised results).

A block expands to the full scrubbed output of its calls (fetched from the store by reference
when the event carries one). j/k move between blocks, enter expands.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from rich.console import Group
from rich.padding import Padding
from rich.text import Text
from textual.containers import VerticalScroll
from textual.message import Message
from textual.widgets import Static

from console.keys import bindings

STATUS_MARK = {
    "ok": "✓",
    "error": "✗",
    "partial": "◑",
    "blocked": "⊘",
    "denied": "⊗",
    "refused": "↺",
    "cancelled": "–",
    "running": "…",
    "awaiting": "?",
}
"""One glyph per call status (colour comes from the theme)."""


def short_args(arguments: dict[str, Any], limit: int = 90) -> str:
    """Arguments as compact `k=v` pairs, cut to `limit` characters."""
    parts = []
    for k, v in arguments.items():
        s = v if isinstance(v, str) else json.dumps(v, ensure_ascii=False)
        parts.append(f"{k}={s}")
    out = " ".join(parts)
    return out if len(out) <= limit else out[: limit - 1] + "…"


def one_line_summary(summary: str, output: str, limit: int = 160) -> str:
    """The summary, or a compact one-line form of JSON output when the summary is only a bracket."""
    s = summary.strip()
    if s in ("{", "[", "") and output.strip():
        try:
            s = json.dumps(json.loads(output), ensure_ascii=False, separators=(", ", ": "))
        except ValueError:
            s = " ".join(output.split())
    return s if len(s) <= limit else s[: limit - 1] + "…"


@dataclass
class CallView:
    """What a block shows for one tool call."""

    call_id: str
    tool: str
    arguments: dict[str, Any]
    risk: str = "read"
    status: str = "running"
    summary: str = ""
    output: str = ""
    output_ref: str | None = None
    partial: str | None = None
    duration_ms: float = 0.0
    approval: str = ""
    """'' or a line about the approval (awaiting / approved by / denied by)."""
    notes: list[str] = field(default_factory=list)
    findings: list[str] = field(default_factory=list)
    """What the engine's checks read in the output (cause on object: the line)."""


class StepBlock(Static):
    """One step of the investigation (drawn as one renderable: no child widgets to race with)."""

    def __init__(self, turn: int, step: int) -> None:
        super().__init__(classes="step")
        self.turn = turn
        """The turn it belongs to."""
        self.step = step
        """The step number within the turn."""
        self.hypothesis = ""
        """What the model said it was checking."""
        self.calls: dict[str, CallView] = {}
        """Calls in this step, by call id."""
        self.expanded = False
        """Whether the full outputs are shown."""
        self.full: dict[str, str] = {}
        """Full outputs fetched from the store, by call id."""

    def on_mount(self) -> None:
        self.refresh_view()

    def refresh_view(self) -> None:
        """Re-render the block from its state."""
        v = self.app.theme_variables
        muted = v.get("muted", "")
        statuses = [c.status for c in self.calls.values()]
        title = Text(no_wrap=True, overflow="ellipsis")
        title.append("▾ " if self.expanded else "▸ ", style=muted)
        title.append(f"turn {self.turn} · step {self.step}", style="bold")
        if statuses:
            title.append("  " + " ".join(STATUS_MARK.get(s, s) for s in statuses), style=muted)
        parts: list[Any] = [title]
        if self.hypothesis:
            parts.append(Padding(Text(self.hypothesis, style=f"italic {muted}"), (0, 0, 0, 2)))
        lines = Text()
        for c in self.calls.values():
            if lines:
                lines.append("\n")
            style = (
                v.get(f"status-{c.status}", v.get("status-running", ""))
                if c.status != "awaiting"
                else v.get("risk-high", "")
            )
            lines.append(f"{STATUS_MARK.get(c.status, '?')} ", style=f"bold {style}")
            lines.append(c.tool, style="bold")
            if c.risk != "read":
                lines.append(f" [{c.risk}]", style=v.get(f"risk-{c.risk}", ""))
            lines.append(" " + short_args(c.arguments), style=muted)
            if c.approval:
                lines.append("\n  " + c.approval, style=v.get("risk-high", "") if c.status == "awaiting" else muted)
            summary = one_line_summary(c.summary, c.output)
            if summary:
                lines.append("\n  → " + summary)
            if c.partial:
                lines.append(f"\n  {c.partial}", style=v.get("status-partial", ""))
            for f in c.findings[:3]:
                lines.append("\n  ◆ finding: " + f.split(" (weight", 1)[0], style=v.get("status-partial", ""))
        if self.calls:
            parts.append(Padding(lines, (0, 0, 0, 2)))
        if self.expanded and self.calls:
            body = Text()
            for c in self.calls.values():
                text = self.full.get(c.call_id) or c.output or c.summary or "(no output)"
                body.append(f"── {c.tool} ──\n", style=muted)
                body.append(text.rstrip() + "\n")
            parts.append(Padding(body, (0, 0, 0, 2)))
        self.update(Group(*parts))


class StepList(VerticalScroll, can_focus=True):
    """The investigation pane: blocks in order, one selected."""

    BINDINGS = bindings("steps")

    class ExpandRequested(Message):
        """A block was expanded; the screen fetches full outputs by reference."""

        def __init__(self, block: StepBlock) -> None:
            super().__init__()
            self.block = block
            """The block."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.border_title = "Investigation"
        self._blocks: dict[tuple[int, int], StepBlock] = {}
        self._calls: dict[str, StepBlock] = {}
        self.selected = -1
        """Index of the selected block (-1: follow the newest)."""

    @property
    def blocks(self) -> list[StepBlock]:
        """Blocks in order."""
        return list(self.query(StepBlock))

    def block(self, turn: int, step: int) -> StepBlock:
        """The block for a step, created on first use."""
        key = (turn, step)
        b = self._blocks.get(key)
        if b is None:
            b = StepBlock(turn, step)
            self._blocks[key] = b
            self.mount(b)
            if self.selected < 0:
                self.call_after_refresh(self.scroll_end, animate=False)
        return b

    def block_of_call(self, call_id: str) -> StepBlock | None:
        """The block holding a call."""
        return self._calls.get(call_id)

    def set_hypothesis(self, turn: int, step: int, text: str) -> None:
        """The model's reasoning for the step."""
        b = self.block(turn, step)
        b.hypothesis = text.strip()
        b.refresh_view()

    def call(self, turn: int, step: int, view: CallView) -> None:
        """Add or update a call."""
        b = self.block(turn, step)
        old = b.calls.get(view.call_id)
        if old is not None and not view.approval:
            view.approval = old.approval
        b.calls[view.call_id] = view
        self._calls[view.call_id] = b
        b.refresh_view()

    def update_call(self, call_id: str, **changes: Any) -> None:
        """Change fields of a known call."""
        b = self._calls.get(call_id)
        if b is None:
            return
        c = b.calls[call_id]
        for k, v in changes.items():
            setattr(c, k, v)
        b.refresh_view()

    def clear_blocks(self) -> None:
        """Forget every block (a new session)."""
        self._blocks.clear()
        self._calls.clear()
        self.selected = -1
        self.remove_children()

    def _select(self, index: int) -> None:
        blocks = self.blocks
        if not blocks:
            return
        index = max(0, min(len(blocks) - 1, index))
        for i, b in enumerate(blocks):
            b.set_class(i == index, "-selected")
        self.selected = index
        self.scroll_to_widget(blocks[index], animate=False)

    def action_move(self, delta: int) -> None:
        """Select the next/previous block."""
        start = self.selected if self.selected >= 0 else len(self.blocks)
        self._select(start + delta)

    def action_toggle(self) -> None:
        """Expand or collapse the selected block."""
        blocks = self.blocks
        if not blocks:
            return
        if self.selected < 0:
            self._select(len(blocks) - 1)
        b = blocks[self.selected]
        b.expanded = not b.expanded
        b.refresh_view()
        if b.expanded:
            self.post_message(self.ExpandRequested(b))

    def on_focus(self) -> None:
        if self.selected < 0 and self.blocks:
            self._select(len(self.blocks) - 1)

    def on_click(self, event: Any) -> None:
        # Mouse works too: clicking a block selects and toggles it.
        widget = event.widget
        while widget is not None and not isinstance(widget, StepBlock):
            widget = widget.parent
        if isinstance(widget, StepBlock):
            self._select(self.blocks.index(widget))
            self.action_toggle()
