"""Benchmarks and evaluations sit beside the product: no product module imports them, the wheel
leaves them out, and from an installation without them `lantern bench`/`eval` say so in one line."""

from __future__ import annotations

import ast
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PRODUCT = ("engine", "skills", "sandbox", "server", "wiring", "console", "themes")
OUTSIDE = ("bench", "evals")


def _imported(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
    return names


def test_no_product_module_imports_a_benchmark_or_an_evaluation() -> None:
    bad = [
        f"{p.relative_to(ROOT)}: {name}"
        for pkg in PRODUCT
        for p in sorted((ROOT / pkg).rglob("*.py"))
        for name in _imported(p)
        if name.split(".")[0] in OUTSIDE
    ]
    assert bad == []


def test_the_wheel_ships_the_product_packages_only() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert sorted(config["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"]) == sorted(PRODUCT)


_WITHOUT = """
import sys
class Absent:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("bench", "evals"):
            raise ModuleNotFoundError(f"No module named {name.split('.')[0]!r}", name=name.split(".")[0])
sys.meta_path.insert(0, Absent())
from console.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_bench_and_eval_from_an_installation_without_them_say_so_in_one_line() -> None:
    for argv in (["bench", "scrub", "--json"], ["eval", "cloudops", "--cases", "x"]):
        p = subprocess.run(
            [sys.executable, "-c", _WITHOUT, *argv], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
        )
        assert p.returncode == 2, p.stderr
        assert p.stdout == "" and len(p.stderr.strip().splitlines()) == 1, p.stderr
        assert "checkout" in p.stderr and "Traceback" not in p.stderr
