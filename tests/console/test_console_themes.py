"""Themes: the shipped ones define every variable; user themes are validated with clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from themes import BUILTIN, VARIABLE_NAMES
from themes.user import ThemeFileError, load_theme_file, load_user_themes


def test_builtin_themes_define_every_variable() -> None:
    for spec in BUILTIN:
        assert set(VARIABLE_NAMES) <= set(spec.variables), spec.name


def test_stylesheet_uses_variables_not_literal_colours() -> None:
    css = (Path(__file__).parents[2] / "themes" / "lantern.tcss").read_text()
    assert "#" not in "".join(
        line.split(":", 1)[1]
        for line in css.splitlines()
        if ":" in line and not line.strip().startswith(("/*", "#", "MainScreen", "."))
    )


def test_user_theme_yaml(tmp_path: Path) -> None:
    (tmp_path / "night.yaml").write_text("primary: '#88c0d0'\nvariables:\n  risk-high: '#bf616a'\n")
    (tmp_path / "bad.yaml").write_text("primary: not-a-colour\n")
    specs, errors = load_user_themes(tmp_path)
    assert [s.name for s in specs] == ["night"]
    assert len(errors) == 1 and "bad.yaml" in errors[0] and "primary" in errors[0]


def test_user_theme_unknown_variable_names_the_field(tmp_path: Path) -> None:
    p = tmp_path / "x.yaml"
    p.write_text("primary: '#ffffff'\nvariables:\n  risk-hgih: '#ff0000'\n")
    with pytest.raises(ThemeFileError, match="variables.risk-hgih"):
        load_theme_file(p)


def test_user_theme_yaml_syntax_error_has_a_line(tmp_path: Path) -> None:
    p = tmp_path / "y.yaml"
    p.write_text("primary: '#fff'\nvariables: [\n")
    with pytest.raises(ThemeFileError, match=r"y.yaml line \d+"):
        load_theme_file(p)
