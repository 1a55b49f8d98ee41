"""Text helpers for retrieval: identifier splitting, query tokens, stopwords, clause splitting.

Tool names arrive as `snake_case`, `kebab-case`, `CamelCase` and `pack.action`; users type
words. Both sides go through `split_identifiers` so "getPodLogs", "get_pod_logs" and
"get pod logs" meet on the same terms in the BM25 index.
"""

from __future__ import annotations

import re

_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_SEP = re.compile(r"[_\-./:]+")
_WORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9_\-./:]*")
_ALNUM = re.compile(r"[a-z0-9]+")

STOPWORDS = frozenset(
    """a an the and or but if then else of to in on at by for with about from into onto over under
    is are was were be been being am do does did done doing have has had having i me my we us our
    you your he him his she her it its they them their this that these those there here what which
    who whom whose when where why how can could would should will shall may might must please
    just also too very really some any all each every so such than as not no nor only own same
    let lets let's get got need needs want wants like ok okay hey hi thanks thank yes yeah sure now
    again still one ones other another more most much many few bit kind sort lot lots something
    anything everything maybe perhaps actually basically quickly help check look see show give
    tell find i'm i'd i'll i've we're we'd we'll we've you're it's that's what's there's""".split()
)
"""Words that carry no retrieval signal in on-call requests (filler and function words)."""


def split_identifier(word: str) -> list[str]:
    """Split one identifier on snake/kebab/dot separators and CamelCase humps, lowercased."""
    parts: list[str] = []
    for chunk in _SEP.split(word):
        if not chunk:
            continue
        parts.extend(p.lower() for p in _CAMEL.split(chunk) if p)
    return parts


def split_identifiers(text: str) -> str:
    """Rewrite every identifier in `text` as its parts plus the joined form.

    "k8s.getPodLogs" → "k8s get pod logs getpodlogs": the parts match natural words, the joined
    form still matches a query that names the identifier exactly.
    """
    out: list[str] = []
    for m in _WORD.finditer(text):
        w = m.group(0).strip("_-./:")
        if not w:
            continue
        parts = split_identifier(w)
        out.extend(parts)
        if len(parts) > 1:
            out.append("".join(parts))
    return " ".join(out)


def terms(text: str, *, drop_stopwords: bool = True) -> list[str]:
    """Lowercased word terms of `text` after identifier splitting (stopwords dropped by default)."""
    ts = _ALNUM.findall(split_identifiers(text))
    if drop_stopwords:
        ts = [t for t in ts if t not in STOPWORDS and len(t) > 1]
    return ts


_CLAUSE = re.compile(
    r"(?:[.;!?]\s+|,\s*(?:and\s+|then\s+|also\s+|plus\s+)?|\s+(?:and then|and also|as well as|and|then|also|plus|after that|afterwards)\s+)",
    re.IGNORECASE,
)


def clauses(text: str, *, min_terms: int = 2) -> list[str]:
    """Split a request into the separate needs it states ("do X and find Y" → two clauses).

    Fragments too short to stand alone are merged into their neighbour, so "beef, tomatoes and
    garlic" stays one clause.
    """
    raw = [c.strip() for c in _CLAUSE.split(text) if c and c.strip()]
    out: list[str] = []
    for c in raw:
        if out and len(terms(c)) < min_terms:
            out[-1] = out[-1] + " " + c
        elif not out or len(terms(out[-1])) >= min_terms:
            out.append(c)
        else:
            out[-1] = out[-1] + " " + c
    return out or [text]
