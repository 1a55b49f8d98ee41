"""Reading BEIR-format request sets (queries.jsonl, qrels.tsv): `lantern experience import`
loads a history of past requests and the tools that answered them from these files."""

from __future__ import annotations

import json
from pathlib import Path


class DataError(Exception):
    """A BEIR file is missing or malformed (the message names the file and line)."""


def read_jsonl(path: Path) -> list[dict]:
    """Every row of a BEIR JSON-lines file (each must carry an `_id`)."""
    if not path.exists():
        raise DataError(f"{path}: no such file")
    out = []
    with path.open(encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError as exc:
                raise DataError(f"{path}:{n}: not JSON ({exc})") from exc
            if "_id" not in row:
                raise DataError(f"{path}:{n}: missing _id")
            out.append(row)
    return out


def load_queries(path: str | Path) -> dict[str, str]:
    """Query id → text."""
    return {str(r["_id"]): str(r.get("text") or "") for r in read_jsonl(Path(path))}


def load_qrels(path: str | Path) -> dict[str, set[str]]:
    """Query id → relevant corpus ids (score > 0); a header line is skipped."""
    p = Path(path)
    if not p.exists():
        raise DataError(f"{p}: no such file")
    out: dict[str, set[str]] = {}
    with p.open(encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            parts = line.rstrip("\n").split("\t")
            if len(parts) < 2 or (n == 1 and parts[0] in ("query-id", "query_id", "qid")):
                continue
            if len(parts) < 3:
                raise DataError(f"{p}:{n}: expected query-id, corpus-id, score")
            try:
                score = float(parts[2])
            except ValueError as exc:
                raise DataError(f"{p}:{n}: score {parts[2]!r} is not a number") from exc
            if score > 0:
                out.setdefault(parts[0], set()).add(parts[1])
    return out
