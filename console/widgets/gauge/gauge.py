"""The context gauge: used/budget by tier, a warning when details were dropped, and the dropped list.

Selecting a dropped item and pressing `r` asks the agent (a user turn) to bring it back with
its `recall_detail` tool; the console never reaches into the context itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rich.text import Text
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option

from console.keys import bindings

TIER_ORDER = ("system", "ledger", "summaries", "recent", "outputs")
"""Tiers in the order they are drawn; unknown tiers follow as 'other'."""


def short(n: int) -> str:
    """1234 → '1.2k' (gauge labels must fit narrow panes)."""
    return f"{n / 1000:.1f}k" if n >= 1000 else str(n)


@dataclass
class Dropped:
    """One detail that compaction removed or shortened."""

    ref: str
    what: str
    tokens: int
    action: str
    from_step: int


def bar(tiers: dict[str, int], used: int, budget: int, width: int, variables: dict[str, str]) -> Text:
    """A one-line bar: each tier's share of the budget in its colour, the rest as dots."""
    t = Text(no_wrap=True)
    if budget <= 0 or width <= 0:
        return t
    cells = 0
    known = [k for k in TIER_ORDER if k in tiers] + [k for k in tiers if k not in TIER_ORDER]
    for name in known:
        n = round(width * tiers[name] / budget)
        n = min(n, width - cells)
        if n <= 0:
            continue
        style = variables.get(f"gauge-{name}", variables.get("gauge-other", ""))
        t.append("█" * n, style=style)
        cells += n
    rest_used = round(width * used / budget) - cells
    if rest_used > 0 and cells < width:
        n = min(rest_used, width - cells)
        t.append("█" * n, style=variables.get("gauge-other", ""))
        cells += n
    t.append("·" * max(0, width - cells), style=variables.get("muted", ""))
    return t


class DroppedList(OptionList):
    """Dropped details; `r`/enter recalls the highlighted one, `/` filters."""

    BINDINGS = [*bindings("list"), *bindings("gauge")]

    class RecallRequested(Message):
        """The user wants a dropped detail back."""

        def __init__(self, item: Dropped) -> None:
            super().__init__()
            self.item = item
            """The item to recall."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.items: list[Dropped] = []
        """Every dropped item, oldest first."""
        self.filter_text = ""
        """Current `/` filter."""

    def add_item(self, item: Dropped) -> None:
        """Add a dropped detail."""
        self.items.append(item)
        self._rebuild()

    def apply_filter(self, text: str) -> None:
        """Show only items whose description or ref contains `text`."""
        self.filter_text = text.strip().lower()
        self._rebuild()

    def _rebuild(self) -> None:
        keep = self.highlighted
        self.clear_options()
        width = max(20, (self.content_region.width or 60) - 1)
        for i, d in enumerate(self.items):
            if self.filter_text and self.filter_text not in d.what.lower() and self.filter_text not in d.ref.lower():
                continue
            label = Text(no_wrap=True, overflow="ellipsis")
            label.append(f"{d.action:<10} ", style="italic")
            label.append(d.what)
            label.append(f" · {short(d.tokens)} tok · {d.ref}", style=self.app.theme_variables.get("muted", ""))
            label.truncate(width, overflow="ellipsis")
            self.add_option(Option(label, id=str(i)))
        if keep is not None and self.option_count:
            self.highlighted = min(keep, self.option_count - 1)

    def on_resize(self) -> None:
        self._rebuild()

    def on_focus(self) -> None:
        # Arriving with the keyboard selects the first item, so `r` works at once.
        if self.highlighted is None and self.option_count:
            self.highlighted = 0

    def action_recall(self) -> None:
        """Ask for the highlighted item."""
        if self.highlighted is None:
            return
        opt = self.get_option_at_index(self.highlighted)
        if opt.id is not None:
            self.post_message(self.RecallRequested(self.items[int(opt.id)]))

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        self.action_recall()

    def reset(self) -> None:
        """Forget every item."""
        self.items.clear()
        self._rebuild()


class GaugeView(Vertical):
    """The gauge pane."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.border_title = "Context"
        self.used = 0
        """Tokens in the last prompt."""
        self.budget = 0
        """The prompt budget."""
        self.window = 0
        """The model's window."""
        self.tiers: dict[str, int] = {}
        """Tokens by tier."""
        self.dropped_count = 0
        """How many items are no longer held in full."""

    def compose(self):  # type: ignore[no-untyped-def]
        yield Static(id="gauge-bar")
        yield Static(id="gauge-legend")
        yield DroppedList(id="dropped")

    def on_mount(self) -> None:
        self.refresh_view()

    def on_resize(self) -> None:
        self.refresh_view()

    def update_gauge(self, used: int, budget: int, window: int, tiers: dict[str, int], dropped: int) -> None:
        """New numbers from a ContextGauge event."""
        self.used, self.budget, self.window, self.tiers, self.dropped_count = used, budget, window, dict(tiers), dropped
        self.refresh_view()

    def add_dropped(self, item: Dropped) -> None:
        """A DetailDropped event."""
        self.query_one(DroppedList).add_item(item)
        self.dropped_count = max(self.dropped_count, len(self.query_one(DroppedList).items))
        self.refresh_view()

    def reset(self) -> None:
        """A new session."""
        self.used = self.budget = self.window = self.dropped_count = 0
        self.tiers = {}
        self.query_one(DroppedList).reset()
        self.refresh_view()

    def refresh_view(self) -> None:
        """Redraw the bar and the legend."""
        if not self.is_mounted:
            return
        v = self.app.theme_variables
        width = max(10, self.content_region.width or 30)
        head = Text(no_wrap=True, overflow="ellipsis")
        if self.budget:
            pct = 100 * self.used / self.budget
            head.append(f"{self.used:,} / {self.budget:,} tok ({pct:.0f}%)", style="bold")
            if self.window:
                head.append(f"  window {self.window:,}", style=v.get("muted", ""))
        else:
            head.append("no prompt yet", style=v.get("muted", ""))
        if self.dropped_count:
            head.append(f"  ⚠ {self.dropped_count} dropped", style=f"bold {v.get('drop-warning', '')}")
        gauge = Text()
        gauge.append_text(head)
        gauge.append("\n")
        gauge.append_text(
            bar(self.tiers, self.used, self.budget or 1, width, v)
            if self.budget
            else Text("·" * width, style=v.get("muted", ""))
        )
        self.query_one("#gauge-bar", Static).update(gauge)
        legend = Text(no_wrap=True, overflow="ellipsis")
        known = [k for k in TIER_ORDER if k in self.tiers] + [k for k in self.tiers if k not in TIER_ORDER]
        for name in known:
            legend.append("■ ", style=v.get(f"gauge-{name}", v.get("gauge-other", "")))
            legend.append(f"{name} {short(self.tiers[name])}  ")
        self.query_one("#gauge-legend", Static).update(legend)
        self.set_class(bool(self.dropped_count), "-dropped")
