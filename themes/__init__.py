"""Lantern's themes: Textual `Theme` objects (dark, light, high contrast) and user themes from YAML.

Colours live here and only here; `.tcss` rules use the variables (`$risk-high`,
`$drop-warning`, `$status-ok` …), never literal colours.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

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


class ThemeSpec(BaseModel):
    """A theme as data (built-in or a user's YAML file), validated before Textual sees it."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    """Theme id used by :theme and the config."""
    dark: bool = True
    """Whether it is a dark theme."""
    primary: str
    secondary: str | None = None
    accent: str | None = None
    foreground: str | None = None
    background: str | None = None
    surface: str | None = None
    panel: str | None = None
    warning: str | None = None
    error: str | None = None
    success: str | None = None
    variables: dict[str, str] = Field(default_factory=dict)
    """Lantern variables (risk-high, drop-warning …) and any Textual variables."""

    @field_validator("primary", "secondary", "accent", "foreground", "background", "surface", "panel", "warning", "error", "success")
    @classmethod
    def _colour(cls, v: str | None) -> str | None:
        if v is None:
            return v
        from textual.color import Color, ColorParseError

        try:
            Color.parse(v)
        except ColorParseError as exc:
            raise ValueError(f"not a colour: {v!r} ({exc})") from None
        return v

    def to_theme(self, base: dict[str, str] | None = None) -> Any:
        """The Textual Theme, with missing Lantern variables taken from `base`."""
        from textual.theme import Theme

        variables = {**(base or {}), **self.variables}
        fields = self.model_dump(exclude={"name", "dark", "variables"}, exclude_none=True)
        return Theme(name=self.name, dark=self.dark, variables=variables, **fields)


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

BUILTIN: list[ThemeSpec] = [
    ThemeSpec(
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
    ThemeSpec(
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
    ThemeSpec(
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
"""The themes Lantern ships."""

ALIASES = {"dark": "lantern-dark", "light": "lantern-light", "high-contrast": "lantern-contrast", "contrast": "lantern-contrast"}
"""Short names accepted by :theme and --theme."""

DEFAULT_VARIABLES = dict(_DARK_VARS)
"""Fallback values, so a Textual built-in theme still renders Lantern's rules."""


class ThemeFileError(Exception):
    """A user theme file is unreadable or invalid; the message names the file, line or field."""


def load_user_themes(directory: Path) -> tuple[list[ThemeSpec], list[str]]:
    """Read every *.yaml theme in `directory`: (valid specs, one error line per bad file)."""
    import yaml

    specs: list[ThemeSpec] = []
    errors: list[str] = []
    if not directory.is_dir():
        return specs, errors
    for path in sorted(directory.glob("*.y*ml")):
        try:
            specs.append(load_theme_file(path))
        except ThemeFileError as exc:
            errors.append(str(exc))
    return specs, errors


def load_theme_file(path: Path) -> ThemeSpec:
    """One user theme from YAML, with errors that name the file and the field or line."""
    import yaml

    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ThemeFileError(f"{path}: cannot read: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise ThemeFileError(f"{path}{where}: not valid YAML: {getattr(exc, 'problem', exc)}") from None
    if not isinstance(data, dict):
        raise ThemeFileError(f"{path}: expected a mapping with name, primary, … at the top level")
    data.setdefault("name", path.stem)
    try:
        spec = ThemeSpec.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(x) for x in first["loc"]) or "(top)"
        raise ThemeFileError(f"{path}: field '{field}': {first['msg']}") from None
    unknown = [k for k in spec.variables if k not in VARIABLE_NAMES and not k.startswith(("text-", "border", "block-", "footer-", "input-", "scrollbar", "button-", "link-"))]
    if unknown:
        raise ThemeFileError(f"{path}: field 'variables.{unknown[0]}': unknown variable; known: {', '.join(VARIABLE_NAMES)}")
    return spec


def resolve_name(name: str) -> str:
    """Map short names (dark, light, high-contrast) to theme ids."""
    return ALIASES.get(name, name)
