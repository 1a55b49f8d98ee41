"""The tool-call timeline: time, tool, duration, status, tokens; `/` filters it."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from rich.cells import cell_len
from rich.text import Text
from textual.widgets import DataTable
from textual.widgets.data_table import ColumnKey

from console.keys import bindings

STATUS_WORD = {"error": "failed"}
"""A status as the Timeline says it: a call that ran and failed is 'failed'; one the guard did
not run is 'refused', one a person turned down 'denied', one the policy stopped 'blocked'."""


@dataclass
class Row:
    """One call in the timeline."""

    call_id: str
    at: dt.datetime
    tool: str
    status: str = "running"
    duration_ms: float = 0.0
    tokens: int = 0


class Timeline(DataTable[Any]):
    """Every tool call of the session, newest last."""

    BINDINGS = bindings("list")

    def __init__(self, *, tz: dt.tzinfo | None = None, **kwargs: Any) -> None:
        super().__init__(cursor_type="row", zebra_stripes=False, **kwargs)
        self.border_title = "Timeline"
        self.tz = tz
        """Time zone for the time column (None: local)."""
        self.rows_by_id: dict[str, Row] = {}
        """Calls by id, in arrival order."""
        self.filter_text = ""
        """Current `/` filter."""

    def on_mount(self) -> None:
        self.add_column("time", key="time", width=8)
        # Sized here, not by DataTable's auto width: that is measured when the table next goes
        # idle, and a row drawn before then keeps its cropped cell (the cell cache does not key
        # on width), so the newest tool name could stay cut short ("rollout_") on a busy machine.
        self.add_column("tool", key="tool", width=cell_len("tool"))
        self.add_column("ms", key="ms", width=7)
        self.add_column("status", key="status", width=9)
        self.add_column("tok", key="tok", width=6)

    def _cells(self, r: Row) -> list[Any]:
        v = self.app.theme_variables
        style = v.get(f"status-{r.status}", "")
        local = r.at.astimezone(self.tz) if self.tz is not None else r.at.astimezone()
        ms = "" if r.status in ("running", "awaiting") else (f"{r.duration_ms:,.0f}")
        return [
            local.strftime("%H:%M:%S"),
            r.tool,
            Text(ms, justify="right"),
            Text(STATUS_WORD.get(r.status, r.status), style=style),
            Text(str(r.tokens) if r.tokens else "", justify="right"),
        ]

    def _visible(self, r: Row) -> bool:
        f = self.filter_text.lower()
        return not f or f in r.tool.lower() or f in r.status or f in STATUS_WORD.get(r.status, "")

    def upsert(self, row: Row) -> None:
        """Add a call or update it in place."""
        known = row.call_id in self.rows_by_id
        self.rows_by_id[row.call_id] = row
        if not self._visible(row):
            return
        if known and row.call_id in self.rows:
            for key, value in zip(("time", "tool", "ms", "status", "tok"), self._cells(row)):
                self.update_cell(row.call_id, key, value)
        else:
            self._fit(row)
            self.add_row(*self._cells(row), key=row.call_id)
            self.move_cursor(row=self.row_count - 1, animate=False)

    def _fit(self, row: Row) -> None:
        """Widen the tool column to this row's name before the row is added (which redraws)."""
        column = self.columns.get(ColumnKey("tool"))
        if column is not None:
            column.width = max(column.width, cell_len(row.tool))

    def get(self, call_id: str) -> Row | None:
        """A known call."""
        return self.rows_by_id.get(call_id)

    def apply_filter(self, text: str) -> None:
        """Show only calls whose tool or status contains `text`."""
        self.filter_text = text.strip()
        self.clear()
        for r in self.rows_by_id.values():
            if self._visible(r):
                self._fit(r)
                self.add_row(*self._cells(r), key=r.call_id)
        self.border_subtitle = f"/{self.filter_text}" if self.filter_text else ""

    def reset(self) -> None:
        """Forget every call (a new session)."""
        self.rows_by_id.clear()
        self.clear()
        if (column := self.columns.get(ColumnKey("tool"))) is not None:
            column.width = cell_len("tool")
