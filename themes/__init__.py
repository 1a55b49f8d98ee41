"""Lantern's themes: Textual `Theme` objects (dark, light, high contrast) and user themes from YAML.

Colours live here and only here; `.tcss` rules use the variables (`$risk-high`,
`$drop-warning`, `$status-ok` …), never literal colours.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

THEMES_DIR = Path(__file__).parent
"""Where the .tcss files live."""

CSS_FILES = [THEMES_DIR / "lantern.tcss"]
"""The app stylesheet(s), in load order."""

VARIABLE_NAMES = (
    "risk-read",
    "risk-write",
    "risk-dangerous",
    "risk-high",
    "drop-warning",
    "status-ok",
    "status-error",
    "status-partial",
    "status-blocked",
    "status-refused",
    "status-denied",
    "status-running",
    "model-ready",
    "model-loading",
    "model-failed",
    "gauge-system",
    "gauge-ledger",
    "gauge-summaries",
    "gauge-recent",
    "gauge-outputs",
    "gauge-other",
    "pane-border",
    "pane-border-focus",
    "muted",
)
"""Lantern's own theme variables; every theme defines them all."""


_DARK_VARS = {
    "risk-read": "#7aa2f7",
    "risk-write": "#e0af68",
    "risk-dangerous": "#f7768e",
    "risk-high": "#f7768e",
    "drop-warning": "#e0af68",
    "status-ok": "#9ece6a",
    "status-error": "#f7768e",
    "status-partial": "#e0af68",
    "status-blocked": "#bb9af7",
    "status-refused": "#73daca",
    "status-denied": "#ff9e64",
    "status-running": "#7dcfff",
    "model-ready": "#9ece6a",
    "model-loading": "#e0af68",
    "model-failed": "#f7768e",
    "gauge-system": "#565f89",
    "gauge-ledger": "#bb9af7",
    "gauge-summaries": "#7dcfff",
    "gauge-recent": "#7aa2f7",
    "gauge-outputs": "#9ece6a",
    "gauge-other": "#a9b1d6",
    "pane-border": "#3b4261",
    "pane-border-focus": "#7aa2f7",
    "muted": "#737aa2",
}

_LIGHT_VARS = {
    "risk-read": "#2e5aac",
    "risk-write": "#8f5e00",
    "risk-dangerous": "#b3261e",
    "risk-high": "#b3261e",
    "drop-warning": "#8f5e00",
    "status-ok": "#1e7a34",
    "status-error": "#b3261e",
    "status-partial": "#8f5e00",
    "status-blocked": "#6f3fb0",
    "status-refused": "#00796b",
    "status-denied": "#b35900",
    "status-running": "#00639a",
    "model-ready": "#1e7a34",
    "model-loading": "#8f5e00",
    "model-failed": "#b3261e",
    "gauge-system": "#9aa0b4",
    "gauge-ledger": "#6f3fb0",
    "gauge-summaries": "#00639a",
    "gauge-recent": "#2e5aac",
    "gauge-outputs": "#1e7a34",
    "gauge-other": "#5c6178",
    "pane-border": "#c4c8d6",
    "pane-border-focus": "#2e5aac",
    "muted": "#5c6178",
}

_CONTRAST_VARS = {
    "risk-read": "#00ffff",
    "risk-write": "#ffff00",
    "risk-dangerous": "#ff5555",
    "risk-high": "#ff5555",
    "drop-warning": "#ffff00",
    "status-ok": "#00ff00",
    "status-error": "#ff5555",
    "status-partial": "#ffff00",
    "status-blocked": "#ff00ff",
    "status-refused": "#00ffff",
    "status-denied": "#ff8800",
    "status-running": "#00ffff",
    "model-ready": "#00ff00",
    "model-loading": "#ffff00",
    "model-failed": "#ff5555",
    "gauge-system": "#ffffff",
    "gauge-ledger": "#ff00ff",
    "gauge-summaries": "#00ffff",
    "gauge-recent": "#ffff00",
    "gauge-outputs": "#00ff00",
    "gauge-other": "#ffffff",
    "pane-border": "#ffffff",
    "pane-border-focus": "#ffff00",
    "muted": "#d0d0d0",
}

BUILTIN_DATA: list[dict[str, Any]] = [
    dict(
        name="lantern-dark",
        dark=True,
        primary="#7aa2f7",
        secondary="#bb9af7",
        accent="#ff9e64",
        foreground="#c0caf5",
        background="#16161e",
        surface="#1a1b26",
        panel="#24283b",
        warning="#e0af68",
        error="#f7768e",
        success="#9ece6a",
        variables=_DARK_VARS,
    ),
    dict(
        name="lantern-light",
        dark=False,
        primary="#2e5aac",
        secondary="#6f3fb0",
        accent="#b35900",
        foreground="#1f2335",
        background="#f4f5f8",
        surface="#ffffff",
        panel="#e3e6ee",
        warning="#8f5e00",
        error="#b3261e",
        success="#1e7a34",
        variables=_LIGHT_VARS,
    ),
    dict(
        name="lantern-contrast",
        dark=True,
        primary="#ffff00",
        secondary="#00ffff",
        accent="#ff00ff",
        foreground="#ffffff",
        background="#000000",
        surface="#000000",
        panel="#1c1c1c",
        warning="#ffff00",
        error="#ff5555",
        success="#00ff00",
        variables=_CONTRAST_VARS,
    ),
]
"""The themes Lantern ships, as data (the same fields a user theme file has)."""

ALIASES = {
    "dark": "lantern-dark",
    "light": "lantern-light",
    "high-contrast": "lantern-contrast",
    "contrast": "lantern-contrast",
}
"""Short names accepted by :theme and --theme."""

DEFAULT_VARIABLES = dict(_DARK_VARS)
"""Fallback values, so a Textual built-in theme still renders Lantern's rules."""


class BuiltinTheme:
    """A shipped theme: its name and how to build the Textual Theme (no pydantic at start-up)."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data
        """The theme's fields."""
        self.name: str = data["name"]
        """Theme id."""
        self.variables: dict[str, str] = data["variables"]
        """Lantern variables."""

    def to_theme(self, base: dict[str, str] | None = None) -> Any:
        """The Textual Theme."""
        from textual.theme import Theme

        fields = {k: v for k, v in self.data.items() if k not in ("variables",)}
        return Theme(variables={**(base or {}), **self.variables}, **fields)


BUILTIN: list[BuiltinTheme] = [BuiltinTheme(d) for d in BUILTIN_DATA]
"""The shipped themes."""


def load_user_themes(directory: Path) -> tuple[list[Any], list[str]]:
    """Read every *.yaml theme in `directory`: (valid specs, one error line per bad file)."""
    if not directory.is_dir() or not any(directory.glob("*.y*ml")):
        return [], []
    from themes.user import load_user_themes as load

    return load(directory)


def resolve_name(name: str) -> str:
    """Map short names (dark, light, high-contrast) to theme ids."""
    return ALIASES.get(name, name)
