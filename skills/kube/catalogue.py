"""The failure catalogue (catalogue.yaml): documented Kubernetes signals and the causes they show.

Loaded once; `match` answers which causes a line shows, given where it was read (an event, a
container state, a condition, a log line) and its reason.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import yaml

PATH = Path(__file__).with_name("catalogue.yaml")
"""The shipped catalogue."""


@dataclass(frozen=True)
class Entry:
    """One cause and the signal that shows it."""

    cause: str
    family: str
    object: str
    """workload | node | namespace | service: what the cause names."""
    places: frozenset[str]
    reasons: frozenset[str]
    pattern: re.Pattern[str] | None
    weight: float
    source: str


@lru_cache(maxsize=2)
def entries(path: str = str(PATH)) -> tuple[Entry, ...]:
    """The catalogue's entries, in file order."""
    data = yaml.safe_load(Path(path).read_text()) or {}
    out = []
    for e in data.get("causes") or []:
        rx = re.compile(e["match"], re.I | re.M) if e.get("match") else None
        out.append(
            Entry(
                e["cause"],
                e.get("family", ""),
                e.get("object", "workload"),
                frozenset(e.get("in") or []),
                frozenset(e.get("reasons") or []),
                rx,
                float(e.get("weight", 0.5)),
                e.get("source", ""),
            )
        )
    return tuple(out)


def match(place: str, reason: str, message: str) -> list[Entry]:
    """Entries whose signal this line shows: read in `place`, with `reason` when the entry names
    reasons, and its pattern found in the message (an entry with reasons and no pattern matches on
    the reason alone)."""
    found = []
    for e in entries():
        if place not in e.places:
            continue
        if e.reasons and reason not in e.reasons and not (e.pattern and not reason):
            continue
        if e.pattern is None and not (e.reasons and reason in e.reasons):
            continue
        if e.pattern is not None and not (e.pattern.search(message) or (reason and e.pattern.search(reason))):
            continue
        found.append(e)
    return found


def families() -> dict[str, str]:
    """cause → family (admission, scheduling, startup, runtime, service, infrastructure, performance)."""
    return {e.cause: e.family for e in entries()}
