"""Reading a BEIR-format tool corpus (corpus.jsonl) into Docs; queries and qrels are read by
engine.retrieval.beir, which `lantern experience import` uses too.

Tool corpora such as ToolLens write each tool as one line of `key:value, ...` text
(`category_name:…, tool_name:…, api_name:…, api_description:…, required_params: [...]`);
those keys map onto Doc fields. Any other corpus line becomes a Doc from its title and text.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from engine.retrieval.beir import read_jsonl
from engine.retrieval.index import Doc

_KEYS = (
    "category_name",
    "tool_name",
    "api_name",
    "api_description",
    "required_params",
    "optional_params",
    "return_schema",
)
_KEY_RE = re.compile(r"(?:^|, )(" + "|".join(_KEYS) + r"):\s?")


def _params(blob: str) -> list[tuple[str, str]]:
    try:
        items = json.loads(blob)
    except ValueError:
        return [(n, "") for n in re.findall(r'"name":\s*"([^"]+)"', blob)]
    if not isinstance(items, list):
        return []
    return [
        (str(i.get("name")), str(i.get("description") or "")) for i in items if isinstance(i, dict) and i.get("name")
    ]


def _schema_keys(blob: str) -> list[str]:
    """Field names of a return schema (what the tool gives back is part of what it is for)."""
    return list(dict.fromkeys(re.findall(r'"([A-Za-z_][\w]*)"\s*:', blob)))[:40]


def doc_from_beir(row: dict) -> Doc:
    """One corpus row as a tool Doc (structured tool text parsed when present)."""
    text = str(row.get("text") or "")
    title = str(row.get("title") or "")
    marks = list(_KEY_RE.finditer(text))
    if len(marks) >= 3:
        fields: dict[str, str] = {}
        for i, m in enumerate(marks):
            end = marks[i + 1].start() if i + 1 < len(marks) else len(text)
            fields[m.group(1)] = text[m.end() : end].strip()
        params = _params(fields.get("required_params", "[]")) + _params(fields.get("optional_params", "[]"))
        details = "; ".join(f"{n}: {d}" if d else n for n, d in params if d)
        keys = _schema_keys(fields.get("return_schema", ""))
        if keys:
            details += ("; " if details else "") + "returns " + " ".join(keys)
        return Doc(
            id=str(row["_id"]),
            kind="tool",
            name=fields.get("api_name") or title or str(row["_id"]),
            description=fields.get("api_description", ""),
            pack=fields.get("tool_name", ""),
            keywords=tuple(k for k in [fields.get("category_name", "").replace("_", " ")] if k),
            params=tuple(n for n, _ in params),
            details=details,
        )
    return Doc(id=str(row["_id"]), kind="tool", name=title or str(row["_id"]), description=text)


def load_corpus(path: str | Path) -> list[Doc]:
    """Every corpus row as a Doc."""
    return [doc_from_beir(r) for r in read_jsonl(Path(path))]
