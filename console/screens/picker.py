"""A filterable list to pick from (sessions, kube contexts): `/` filters, j/k move, enter picks."""

from __future__ import annotations

from typing import Any

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Input, Static

from console.keys import bindings


class PickTable(DataTable[Any]):
    """The rows, with j/k."""

    BINDINGS = bindings("list")


class PickerScreen(ModalScreen[str | None]):
    """Returns the key of the chosen row, or None."""

    BINDINGS = [("escape", "back", "Back"), ("slash", "filter", "Filter")]

    def __init__(
        self, title: str, columns: list[str], rows: list[tuple[str, list[str]]], *, empty: str = "nothing here yet"
    ) -> None:
        super().__init__()
        self.title_text = title
        """Shown above the list."""
        self.columns = columns
        """Column headers."""
        self.rows = rows
        """(key, cells) for every row."""
        self.empty = empty
        """Shown when there are no rows."""

    def compose(self) -> ComposeResult:
        with Vertical(id="picker-dialog"):
            yield Static(f"{self.title_text}  ·  enter opens · / filters · esc back", id="picker-title")
            yield Input(placeholder="filter…", id="picker-filter")
            yield PickTable(cursor_type="row", id="picker-table")
            yield Static(self.empty, id="picker-empty")

    def on_mount(self) -> None:
        table = self.query_one(PickTable)
        for c in self.columns:
            table.add_column(c)
        self._fill("")
        self.query_one("#picker-filter").display = False
        table.focus()

    def _fill(self, text: str) -> None:
        table = self.query_one(PickTable)
        table.clear()
        f = text.lower().strip()
        for key, cells in self.rows:
            if not f or any(f in c.lower() for c in cells):
                table.add_row(*cells, key=key)
        self.query_one("#picker-empty").display = table.row_count == 0

    def action_filter(self) -> None:
        """Show and focus the filter."""
        inp = self.query_one("#picker-filter", Input)
        inp.display = True
        inp.focus()

    def on_input_changed(self, event: Input.Changed) -> None:
        self._fill(event.value)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.query_one(PickTable).focus()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.dismiss(str(event.row_key.value))

    def action_back(self) -> None:
        """Leave the filter, or close."""
        inp = self.query_one("#picker-filter", Input)
        if inp.has_focus:
            inp.value = ""
            inp.display = False
            self.query_one(PickTable).focus()
            return
        self.dismiss(None)
