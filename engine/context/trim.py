"""Shortening one text: projection of JSON outputs, key-line trimming, fact digests, summary lines.

Every function here is deterministic and works on one item; the builder decides which item gets
which treatment and records each loss as a drop.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from typing import Any

from engine.context.ledger import _EXC_RE, _JSON_LEVEL_RE, _LEVEL_RE, _VOCAB_RE, _norm

_KEY_LINE_RE = re.compile(
    r"(?i)error|fail|fatal|panic|exception|killed|oom|crash|back-?off|refused|denied|timeout|timed out|"
    r"unavailable|unhealthy|evict|exit code|reason:|status:|warning|exceed|pressure|not ?ready|pending|"
    r"\b[45]\d\d\b|last state|message:"
)


class ProjectionError(ValueError):
    """A projection path is malformed (names the path)."""


def _parse_path(path: str) -> list[tuple[str, bool]]:
    """'items[].metadata.name' → [('items', True), ('metadata', False), ('name', False)]."""
    if not isinstance(path, str) or not path.strip():
        raise ProjectionError(f"projection path must be a non-empty string, got {path!r}")
    parts: list[tuple[str, bool]] = []
    for raw in path.strip().split("."):
        each = raw.endswith("[]")
        name = raw[:-2] if each else raw
        if not name and not each:
            raise ProjectionError(f"projection path {path!r} has an empty segment")
        if "[" in name or "]" in name:
            raise ProjectionError(f"projection path {path!r}: only a trailing [] is understood in {raw!r}")
        parts.append((name, each))
    return parts


def _project(value: Any, parts: list[tuple[str, bool]]) -> Any:
    """The part of `value` that the path reaches, in the same nesting; _MISSING when none."""
    if not parts:
        return value
    (name, each), rest = parts[0], parts[1:]
    if name:
        if not isinstance(value, dict) or name not in value:
            return _MISSING
        value = value[name]
    if each:
        if not isinstance(value, list):
            return _MISSING
        items = [_project(v, rest) for v in value]
        return [v for v in items if v is not _MISSING]
    sub = _project(value, rest)
    return sub


_MISSING = object()


def _merge(a: Any, b: Any) -> Any:
    if isinstance(a, dict) and isinstance(b, dict):
        out = dict(a)
        for k, v in b.items():
            out[k] = _merge(out[k], v) if k in out else v
        return out
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [_merge(x, y) for x, y in zip(a, b)]
    return b


def _wrap_top(parts: list[tuple[str, bool]], projected: Any) -> Any:
    # `projected` already holds the list level for [] segments; rebuild the named keys around it.
    if not parts:
        return projected
    (name, each), rest = parts[0], parts[1:]
    if each:
        inner = [_wrap_top(rest, v) for v in projected] if isinstance(projected, list) else projected
    else:
        inner = _wrap_top(rest, projected)
    return {name: inner} if name else inner


def project_json(text: str, paths: Iterable[str]) -> str | None:
    """Keep only the fields named by `paths` (e.g. 'items[].metadata.name') of a JSON text.

    Returns None when the text is not JSON (the caller falls back to line trimming); raises
    ProjectionError for a malformed path.
    """
    parsed_paths = [_parse_path(p) for p in paths]
    if not parsed_paths:
        return None
    stripped = text.strip()
    if not stripped or stripped[0] not in "[{":
        return None
    try:
        data = json.loads(stripped)
    except (json.JSONDecodeError, RecursionError):
        return None
    result: Any = _MISSING
    for parts in parsed_paths:
        sub = _project(data, parts)
        if sub is _MISSING:
            continue
        shaped = _wrap_top(parts, sub)
        result = shaped if result is _MISSING else _merge(result, shaped)
    if result is _MISSING:
        result = {}
    return json.dumps(result, separators=(",", ":"), ensure_ascii=False)


def key_lines(text: str, max_tokens: int, count: Callable[[str], int], *, head: int = 3, tail: int = 2) -> str:
    """Shorten a long text to the lines that carry evidence, within `max_tokens`.

    Keeps the first `head` lines (table headers, the object's name), lines with errors, reasons
    and status words (first of each normalised shape), and the last `tail` lines, in their
    original order, with '… N lines omitted …' where lines were left out.
    """
    if count(text) <= max_tokens:
        return text
    lines = text.splitlines()
    if len(lines) <= 1:
        # one huge line: keep its start and end
        chars = max(40, max_tokens * 3)
        return text[: chars * 2 // 3] + f" … [{len(text) - chars} chars omitted] … " + text[-chars // 3 :]
    chosen: list[int] = list(range(min(head, len(lines))))
    seen: set[str] = set()
    scored: list[tuple[int, int]] = []
    for i, line in enumerate(lines):
        if i < head:
            continue
        score = 0
        if _EXC_RE.search(line) or _JSON_LEVEL_RE.search(line) or _LEVEL_RE.search(line):
            score += 3
        if _VOCAB_RE.search(line):
            score += 2
        if _KEY_LINE_RE.search(line):
            score += 1
        if score:
            shape = _norm(line)[:120]
            if shape in seen:
                continue
            seen.add(shape)
            scored.append((score, i))
    tail_idx = [i for i in range(max(head, len(lines) - tail), len(lines))]
    scored.sort(key=lambda x: (-x[0], x[1]))
    budget = max_tokens - sum(count(lines[i]) + 1 for i in chosen + tail_idx) - 12
    for _, i in scored:
        cost = count(lines[i][:400]) + 1
        if cost > budget:
            continue
        chosen.append(i)
        budget -= cost
    keep = sorted(set(chosen + tail_idx))
    out: list[str] = []
    prev = -1
    for i in keep:
        if i - prev > 1:
            out.append(f"… {i - prev - 1} lines omitted …")
        out.append(lines[i] if len(lines[i]) <= 400 else lines[i][:400] + " …")
        prev = i
    if prev < len(lines) - 1:
        out.append(f"… {len(lines) - 1 - prev} lines omitted …")
    return "\n".join(out)


def digest(text: str, max_tokens: int, count: Callable[[str], int]) -> str:
    """An old output reduced to its key lines (errors, reasons), without head or tail context."""
    return key_lines(text, max_tokens, count, head=1, tail=0)


def first_sentences(text: str, max_chars: int = 220) -> str:
    """The opening of a message, cut at a sentence end where possible."""
    text = " ".join(text.split())
    if len(text) <= max_chars:
        return text
    cut = text[:max_chars]
    m = re.search(r"^(.*[.!?])\s", cut)
    if m and len(m.group(1)) > max_chars // 3:
        return m.group(1) + " …"
    return cut.rstrip() + " …"


def call_line(name: str, arguments: dict[str, Any], max_chars: int = 120) -> str:
    """`name(k=v, …)` for a summary, arguments shortened."""
    parts = []
    for k, v in arguments.items():
        s = v if isinstance(v, str) else json.dumps(v, ensure_ascii=False, default=str)
        parts.append(f"{k}={s}")
    line = f"{name}({', '.join(parts)})"
    return line if len(line) <= max_chars else line[: max_chars - 2] + "…)"
