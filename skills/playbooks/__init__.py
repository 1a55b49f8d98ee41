"""Playbooks: runbook documents (Markdown with YAML front matter) indexed for retrieval like tools."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).parent


@dataclass
class Playbook:
    """One runbook: what it is for, the symptoms that point to it, and its text."""

    name: str
    title: str
    symptoms: list[str] = field(default_factory=list)
    keywords: list[str] = field(default_factory=list)
    body: str = ""
    path: Path | None = None

    @property
    def checks(self) -> list[str]:
        """The tools the "Checks" section names (`pack.action` in backticks), in order, once each."""
        m = re.search(r"^##\s*Checks[^\n]*\n(.*?)(?=^##\s|\Z)", self.body, re.M | re.S)
        return list(dict.fromkeys(_TOOL_REF.findall(m.group(1)))) if m else []

    def doc(self) -> Any:
        """The retrieval document of this playbook (the index's runbook table): what it is for and
        its symptoms are the text, its checks the tools it points to."""
        from engine.retrieval.index import runbook_doc

        return runbook_doc(
            self.name,
            self.title,
            "Symptoms: " + "; ".join(self.symptoms) if self.symptoms else self.title,
            tools=self.checks,
            keywords=self.keywords,
        )


_TOOL_REF = re.compile(r"`([a-z][a-z0-9_-]*\.[a-z][a-z0-9_]*)`")


class PlaybookError(ValueError):
    """A playbook file is malformed; the message names the file."""


def parse(path: Path) -> Playbook:
    """Read one playbook file."""
    text = path.read_text()
    if not text.startswith("---"):
        raise PlaybookError(f"{path}: a playbook starts with a '---' YAML front-matter block")
    try:
        _, front, body = text.split("---", 2)
        meta = yaml.safe_load(front) or {}
    except (ValueError, yaml.YAMLError) as exc:
        raise PlaybookError(f"{path}: front matter is not valid YAML: {exc}") from None
    missing = [k for k in ("name", "title") if not meta.get(k)]
    if missing:
        raise PlaybookError(f"{path}: front matter lacks {', '.join(missing)}")
    return Playbook(
        meta["name"],
        meta["title"],
        [str(x) for x in meta.get("symptoms") or []],
        [str(x) for x in meta.get("keywords") or []],
        body.strip(),
        path,
    )


def load_playbooks(dirs: list[Path] | None = None) -> tuple[list[Playbook], list[str]]:
    """All playbooks from the built-in directory and `dirs`; errors are returned, not raised."""
    books: list[Playbook] = []
    errors: list[str] = []
    for d in [HERE, *(dirs or [])]:
        for p in sorted(Path(d).glob("*.md")):
            try:
                books.append(parse(p))
            except PlaybookError as exc:
                errors.append(str(exc))
    return books, errors
