"""`?` help: generated from the key and command registry, with the user's keymap applied."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from console.keys import COMMAND_ALIASES, COMMANDS, KEYS, effective_keys

SCOPE_TITLES = {
    "app": "Everywhere",
    "conversation": "Conversation",
    "list": "Lists (timeline, dropped items, sessions)",
    "steps": "Investigation steps",
    "gauge": "Context gauge · dropped items",
    "inspector": "YAML inspector",
    "approval": "Approval dialog",
}
"""Section titles, in order."""

KEY_NAMES = {
    "question_mark": "?",
    "colon": ":",
    "slash": "/",
    "escape": "esc",
    "left_square_bracket": "[",
    "right_square_bracket": "]",
    "space": "space",
}
"""Textual key names shown as the characters people type."""


def pretty_keys(keys: str) -> str:
    """'question_mark,f1' → '? / f1'."""
    return " / ".join(KEY_NAMES.get(k.strip(), k.strip()) for k in keys.split(","))


def help_tables(keymap: dict[str, str], muted: str = "") -> list[Table]:
    """One table per scope, then the commands."""
    out = []
    for scope, title in SCOPE_TITLES.items():
        # expand: a title is as wide as its table, so a narrow table wrapped a long title.
        t = Table(title=title, title_justify="left", show_header=False, box=None, padding=(0, 2), expand=True)
        t.add_column("keys", no_wrap=True, style="bold", width=16)
        t.add_column("what")
        for k in KEYS:
            if k.scope == scope:
                t.add_row(pretty_keys(effective_keys(k, keymap)), k.help or k.description)
        out.append(t)
    t = Table(
        title="Commands (: in the panes, / in the input, or ctrl+p)",
        title_justify="left",
        show_header=False,
        box=None,
        padding=(0, 2),
        expand=True,
    )
    t.add_column("cmd", no_wrap=True, style="bold", width=16)
    t.add_column("what")
    aliases: dict[str, list[str]] = {}
    for a, name in COMMAND_ALIASES.items():
        aliases.setdefault(name, []).append(a)
    for c in COMMANDS:
        extra = f"  (also :{', :'.join(aliases[c.name])})" if c.name in aliases else ""
        t.add_row(f":{c.name} {c.args}".rstrip(), Text(c.help) + Text(extra, style=muted))
    out.append(t)
    return out


class HelpScreen(ModalScreen[None]):
    """Every key and command; esc, q or ? closes it."""

    BINDINGS = [
        ("escape,q,question_mark", "dismiss", "Close"),
        ("j,down", "scroll('down')", "Down"),
        ("k,up", "scroll('up')", "Up"),
    ]

    def __init__(self, keymap: dict[str, str] | None = None) -> None:
        super().__init__()
        self.keymap = keymap or {}
        """The user's remapped keys."""

    def compose(self) -> ComposeResult:
        with Vertical(id="help-dialog"):
            yield Static(Text("Lantern keys  ·  esc closes", style="bold"), id="help-title")
            with VerticalScroll(id="help-body"):
                for table in help_tables(self.keymap, self.app.theme_variables.get("muted", "")):
                    yield Static(table, classes="help-table")

    def action_scroll(self, direction: str) -> None:
        """Scroll the help."""
        body = self.query_one("#help-body")
        body.scroll_down() if direction == "down" else body.scroll_up()

    async def action_dismiss(self, result: None = None) -> None:
        self.dismiss(None)
