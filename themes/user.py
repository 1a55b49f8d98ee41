"""User themes: YAML files validated by pydantic, with errors that name the file, line or field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from themes import VARIABLE_NAMES


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

    @field_validator(
        "primary", "secondary", "accent", "foreground", "background", "surface", "panel", "warning", "error", "success"
    )
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


class ThemeFileError(Exception):
    """A user theme file is unreadable or invalid; the message names the file, line or field."""


def load_user_themes(directory: Path) -> tuple[list[ThemeSpec], list[str]]:
    """Read every *.yaml theme in `directory`: (valid specs, one error line per bad file)."""
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
    unknown = [
        k
        for k in spec.variables
        if k not in VARIABLE_NAMES
        and not k.startswith(("text-", "border", "block-", "footer-", "input-", "scrollbar", "button-", "link-"))
    ]
    if unknown:
        raise ThemeFileError(
            f"{path}: field 'variables.{unknown[0]}': unknown variable; known: {', '.join(VARIABLE_NAMES)}"
        )
    return spec
