"""One multi-pattern pass that says which scrubber rules may match a text, and where.

Every rule is compiled into one Hyperscan database (Vectorscan's API, through the `hyperscan`
package) in prefilter mode, which accepts Python's lookarounds and back-references by widening
them, so a report is a superset of the rule's real matches. The scrubber then runs only the
rules that were reported, with Python's `re`, and only on the windows around their reports: the
text is read once by a DFA at hundreds of MB/s, and Python sees the few spans worth checking.

Rules whose matches are rare (vendor formats, keyword assignments) are compiled single-match:
one report says "present", and their keywords or the whole text give the windows. Numeric
personal data (phones, cards, SSNs, IP addresses) is everywhere in kubectl output, so those rules
report every end offset of a cheap candidate shape (`hs:` in rules.yaml) and are checked in a
small window around each. Without the `hyperscan` package the same interface falls back to a
keyword prefilter.
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

Window = tuple[int, int]

KEYWORD_GATE_MIN = 4
"""A rule whose keywords are all at least this long is gated on them alone (shorter ones, such as
`ac` or `sk`, occur everywhere: such a rule is gated on its own pattern)."""

COMMON_WORDS = frozenset(
    {
        "secret",
        "token",
        "password",
        "passwd",
        "credential",
        "private",
        "access",
        "client",
        "bearer",
        "basic",
        "auth",
        "api-",
        "dapi",
        "data:",
        "://",
    }
)
"""Keywords that fill kubectl output (Secret volumes, service-account tokens): a rule keyed on one
is gated on its own pattern, or it would run on every describe."""

_HS_FLAGS = {"i": "HS_FLAG_CASELESS", "m": "HS_FLAG_MULTILINE", "s": "HS_FLAG_DOTALL"}


@dataclass(frozen=True)
class Spec:
    """What the scanner needs of one rule."""

    pattern: str
    """The rule's Python regex (compiled in prefilter mode when `hs` is empty)."""
    hs: str
    """A Hyperscan-compatible candidate shape whose every end is reported ('' when none)."""
    flags: str
    keywords: tuple[str, ...]
    whole_text: bool
    prefilter: str = ""
    """A Hyperscan expression whose one match says the rule may match ('' = the rule itself)."""


class Scanner:
    """Which rules may match a text, and the windows to run each on (None: the whole text)."""

    def __init__(self, specs: Sequence[Spec]) -> None:
        self.specs = list(specs)
        self._db, self._always = _compile(self.specs)
        """The database (None without hyperscan) and the rules it could not take."""
        self._local = threading.local()
        """Scratch space per thread: one scratch may not serve two scans at once."""

    @property
    def accelerated(self) -> bool:
        """True when the one-pass Hyperscan database is in use."""
        return self._db is not None

    def candidates(self, text: str) -> dict[int, list[Window] | None]:
        """rule index → windows around its candidate matches, or None to run it on the whole text."""
        if self._db is None:
            lower = text.lower()
            return {
                i: None for i, sp in enumerate(self.specs) if not sp.keywords or any(k in lower for k in sp.keywords)
            }
        # Each non-ASCII character becomes one '?', so byte offsets stay character offsets.
        data = text.encode("ascii", "replace")
        reports: dict[int, list[int]] = {}
        self._db.scan(data, match_event_handler=_collect, context=reports, scratch=self._scratch())
        out: dict[int, list[Window] | None] = {}
        n = len(text)
        lower = text.lower() if n >= 4096 or self._always else ""  # only keyword windows need it
        for i, ends in reports.items():
            spec = self.specs[i]
            if spec.hs and spec.whole_text:
                out[i] = None  # the candidate is where a block starts: the rule reads on from there
            elif spec.hs:
                out[i] = _merge([(max(0, e - 64), min(n, e + 8)) for e in ends])
            elif spec.whole_text or n < 4096 or len(lower) != n:  # lower-casing changed offsets: whole text
                out[i] = None
            else:
                out[i] = _keyword_lines(text, lower, spec.keywords) or None
        for i in self._always:
            spec = self.specs[i]
            if not spec.keywords or any(k in lower for k in spec.keywords):
                out[i] = None
        return out

    def _scratch(self):
        sc = getattr(self._local, "scratch", None)
        if sc is None:
            import hyperscan

            sc = self._local.scratch = hyperscan.Scratch(self._db)
        return sc


def _collect(rule: int, start: int, end: int, flags: int, reports: dict[int, list[int]]) -> None:
    reports.setdefault(rule, []).append(end)


def _compile(specs: Sequence[Spec]):
    """One database of every rule Hyperscan accepts; the rest are listed to run by keyword. The
    compiled database is cached on disk by the hash of the rules (compiling takes seconds)."""
    try:
        import hyperscan
    except ImportError:
        return None, list(range(len(specs)))
    compiled = [(i, *_expression(hyperscan, s)) for i, s in enumerate(specs)]
    key = hashlib.sha256(
        repr([(e, f) for _, e, f in compiled]).encode() + str(getattr(hyperscan, "__version__", "")).encode()
    ).hexdigest()[:24]
    cached = _cache_path(key)
    if cached is not None and cached.is_file():
        try:
            db = hyperscan.loadb(cached.read_bytes(), mode=hyperscan.HS_MODE_BLOCK)
            return db, [int(x) for x in cached.with_suffix(".skip").read_text().split()]
        except (hyperscan.error, OSError, ValueError):
            pass  # a stale or cut-off cache: compile again
    db, always = _build(hyperscan, compiled)
    if cached is not None:
        try:
            cached.parent.mkdir(parents=True, exist_ok=True)
            cached.with_suffix(".skip").write_text(" ".join(map(str, always)))
            cached.write_bytes(hyperscan.dumpb(db))
        except OSError:
            pass
    return db, always


def _build(hyperscan, compiled: list[tuple[int, bytes, int]]):
    """The database; when Hyperscan refuses the whole set, each pattern alone finds the ones it refuses."""
    always: list[int] = []
    try:
        return _database(hyperscan, compiled), always
    except hyperscan.error:
        pass
    ok = []
    for item in compiled:
        try:
            _database(hyperscan, [item])
            ok.append(item)
        except hyperscan.error:
            always.append(item[0])
    return _database(hyperscan, ok), always


def _database(hyperscan, items: list[tuple[int, bytes, int]]):
    db = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
    db.compile(expressions=[e for _, e, _ in items], ids=[i for i, _, _ in items], flags=[f for _, _, f in items])
    return db


def _cache_path(key: str) -> Path | None:
    base = os.environ.get("LANTERN_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "lantern")
    return Path(base) / "scrub" / f"rules-{key}.hsdb"


def _expression(hyperscan, s: Spec) -> tuple[bytes, int]:
    fl = hyperscan.HS_FLAG_ALLOWEMPTY
    for ch in s.flags:
        fl |= getattr(hyperscan, _HS_FLAGS[ch])
    if s.hs:
        return s.hs.encode(), fl
    if (
        not s.prefilter
        and s.keywords
        and not s.whole_text
        and min(map(len, s.keywords)) >= KEYWORD_GATE_MIN
        and not COMMON_WORDS.intersection(s.keywords)
    ):
        # Literals are what Hyperscan matches fastest; the rule itself then runs on the keyword's lines.
        gate = "|".join(re.escape(k) for k in s.keywords)
        return gate.encode(), hyperscan.HS_FLAG_CASELESS | hyperscan.HS_FLAG_SINGLEMATCH
    return (s.prefilter or s.pattern).encode(), fl | hyperscan.HS_FLAG_PREFILTER | hyperscan.HS_FLAG_SINGLEMATCH


def _keyword_lines(text: str, lower: str, keywords: tuple[str, ...]) -> list[Window]:
    """The lines that hold one of the keywords (a rule that matches within one line)."""
    found: list[Window] = []
    for kw in keywords:
        i = lower.find(kw)
        while i != -1:
            a = text.rfind("\n", 0, i) + 1
            b = text.find("\n", i)
            b = len(text) if b == -1 else b
            found.append((a, b))
            i = lower.find(kw, b)
    return _merge(found)


def _merge(windows: list[Window]) -> list[Window]:
    windows.sort()
    out: list[Window] = []
    for a, b in windows:
        if out and a <= out[-1][1]:
            if b > out[-1][1]:
                out[-1] = (out[-1][0], b)
        else:
            out.append((a, b))
    return out
