"""Known credential values, found in whatever form they leak: encoded, split or cut short.

A tool can echo a credential back in many shapes: as it is, base64 (an Authorization: Basic
header, a Kubernetes Secret's data), hex, URL-encoded, JSON-escaped, wrapped over two lines, or
truncated by a length limit. Each known value is expanded once into those forms; the text is
searched with its whitespace removed (so a value broken across lines still matches) and a match
that runs long enough before it stops (a value missing its last characters) counts too.
"""

from __future__ import annotations

import base64
import bisect
import json
import math
import re
from collections.abc import Iterable
from functools import lru_cache
from urllib.parse import quote, quote_plus

MIN_EXACT = 4
"""Shortest value replaced at all (shorter ones would shred ordinary words)."""
MIN_FUZZY = 12
"""Values (and forms) this long are also found split by whitespace or cut short."""
PREFIX = 8
"""Characters of a form that start a search."""
CUT_SHARE = 0.6
"""A cut-short form must still show this share of its characters (and MIN_FUZZY at least)."""
_SPACE = re.compile(r"\s+")


def _b64_middles(raw: bytes, alphabet: bytes | None) -> list[str]:
    """The base64 text of `raw` at each of the three byte alignments it can have inside a longer
    encoded blob, without the characters its neighbours would change."""
    out = []
    for shift in range(3):
        enc = base64.b64encode(b"\0" * shift + raw, altchars=alphabet).decode()
        out.append(enc[math.ceil(8 * shift / 6) : (8 * (shift + len(raw))) // 6])
    return out


@lru_cache(maxsize=1024)
def forms(value: str) -> tuple[str, ...]:
    """The shapes `value` can leak in, whitespace removed, longest first."""
    found = {value}
    if len(value) >= MIN_FUZZY // 2:
        raw = value.encode("utf-8", "surrogatepass")
        found |= {base64.b64encode(raw).decode(), base64.urlsafe_b64encode(raw).decode()}
        found |= set(_b64_middles(raw, None)) | set(_b64_middles(raw, b"-_"))
        found |= {
            raw.hex(),
            raw.hex().upper(),
            quote(value, safe=""),
            quote_plus(value, safe=""),
            json.dumps(value)[1:-1],
            json.dumps(value, ensure_ascii=False)[1:-1],
        }
    squeezed = {_SPACE.sub("", f) for f in found}
    return tuple(sorted((f for f in squeezed if len(f) >= MIN_EXACT), key=len, reverse=True))


def _needed(form: str) -> int:
    """How many leading characters of `form` must match for a hit."""
    if len(form) < MIN_FUZZY:
        return len(form)
    return max(MIN_FUZZY, math.ceil(len(form) * CUT_SHARE))


def _hits(squeezed: str, form: str) -> Iterable[tuple[int, int]]:
    need = _needed(form)
    start = squeezed.find(form[:PREFIX] if need > PREFIX else form)
    while start != -1:
        n = PREFIX if need > PREFIX else len(form)
        limit = min(len(form), len(squeezed) - start)
        while n < limit and squeezed[start + n] == form[n]:
            n += 1
        if n >= need:
            yield start, start + n
            start = squeezed.find(form[:PREFIX] if need > PREFIX else form, start + n)
        else:
            start = squeezed.find(form[:PREFIX] if need > PREFIX else form, start + 1)


def find_known(text: str, values: Iterable[str]) -> list[tuple[int, int]]:
    """Spans of `text` holding any form of any value (possibly overlapping; the caller merges)."""
    vals = [v for v in dict.fromkeys(values) if isinstance(v, str) and len(v) >= MIN_EXACT]
    if not vals or not text:
        return []
    squeezed = _SPACE.sub("", text)
    found: list[tuple[int, int]] = []
    for v in vals:
        for f in forms(v):
            found.extend(_hits(squeezed, f))
    if not found or len(squeezed) == len(text):
        return found
    # map squeezed offsets back: each whitespace run shifts everything after it
    marks, removed = [0], [0]
    for m in _SPACE.finditer(text):
        marks.append(m.start() - removed[-1])
        removed.append(removed[-1] + m.end() - m.start())

    def back(j: int, end: bool) -> int:
        i = bisect.bisect_left(marks, j) - 1 if end else bisect.bisect_right(marks, j) - 1
        return j + removed[max(i, 0)]

    return [(back(a, False), back(b, True)) for a, b in found]
