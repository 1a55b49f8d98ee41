"""The house rules, checked by the test command: the layers (import-linter's contracts in
pyproject.toml), lint and format (ruff), types (mypy on the engine), and no function of the
product longer than 80 lines."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
PRODUCT = ["engine", "skills", "console", "wiring", "sandbox", "server"]


def _run(*cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)


def _tool(name: str) -> str:
    path = BIN / name
    if not path.exists():
        pytest.fail(f"{name} is not installed in this environment (uv sync installs the dev group)")
    return str(path)


def test_the_layers_hold():
    p = _run(_tool("lint-imports"), "--no-cache")
    assert p.returncode == 0, p.stdout[-4000:] + p.stderr[-2000:]


def test_ruff_finds_nothing():
    p = _run(_tool("ruff"), "check", ".")
    assert p.returncode == 0, p.stdout[-4000:] + p.stderr[-2000:]


def test_the_code_is_formatted():
    p = _run(_tool("ruff"), "format", "--check", ".")
    assert p.returncode == 0, p.stdout[-4000:] + p.stderr[-2000:]


def test_the_engine_type_checks():
    p = _run(_tool("mypy"), "--no-incremental")
    assert p.returncode == 0, p.stdout[-4000:] + p.stderr[-2000:]


def test_no_product_function_is_longer_than_80_lines():
    long = []
    for pkg in PRODUCT:
        for path in sorted((ROOT / pkg).rglob("*.py")) if (ROOT / pkg).is_dir() else ():
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                    n = (node.end_lineno or node.lineno) - node.lineno + 1
                    if n > 80:
                        long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({n} lines)")
    assert not long, "\n".join(long)


def test_no_benchmark_code_ships_in_the_product():
    # the CLI's `lantern bench` command module only dispatches to bench/
    found = [
        str(p.relative_to(ROOT))
        for pkg in PRODUCT
        if (ROOT / pkg).is_dir()
        for p in (ROOT / pkg).rglob("bench*.py")
        if p.parent.name != "commands"
    ]
    assert not found, found
