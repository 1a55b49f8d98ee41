"""The findings of one session, the checks that make them, and the reads that would take them further."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Protocol


@dataclass(frozen=True)
class Finding:
    """One failure signal read off a tool's output."""

    cause: str
    """The cause it points at, e.g. `taint_toleration_mismatch`."""
    object: str
    """What the cause names, as `kind/NAME` (the check's vocabulary)."""
    evidence: str
    """The line of output that shows it, verbatim (cut to 200 characters)."""
    weight: float
    """How strongly the line alone points at the cause (0 to 1)."""

    def line(self) -> str:
        """How the model and the console read it."""
        return f"{self.cause} on {self.object} (weight {self.weight:.2f}): {self.evidence}"


@dataclass(frozen=True)
class Read:
    """A read worth running next: an intent a check names (what to look at, not which tool),
    its arguments, and why."""

    intent: str
    args: tuple[tuple[str, Any], ...]
    why: str

    @classmethod
    def of(cls, intent: str, args: Mapping[str, Any], why: str) -> Read:
        """A read from its arguments as a mapping."""
        return cls(intent, tuple(sorted(args.items())), why)

    def arguments(self) -> dict[str, Any]:
        """The arguments as a dict."""
        return dict(self.args)


@dataclass(frozen=True)
class Route:
    """How one tool answers a read intent: the tool, and its arguments as templates over the
    read's (a value `"{name}"` is the read's `name`; any other value is literal)."""

    intent: str
    tool: str
    arguments: tuple[tuple[str, Any], ...] = ()

    def call(self, read: Read) -> dict[str, Any] | None:
        """`{"name": tool, "arguments": {...}}` for `read`, or None when the read lacks a value the
        templates name."""
        given = read.arguments()
        out: dict[str, Any] = {}
        for key, value in self.arguments:
            if isinstance(value, str) and value.startswith("{") and value.endswith("}"):
                ref = value[1:-1]
                if ref not in given:
                    return None
                value = given[ref]
            out[key] = value
        return {"name": self.tool, "arguments": out}


class Check(Protocol):
    """Reads tool outputs for the failure signals of one domain. One instance per session: it keeps
    what the session has read so far (a pack's `checks` names the classes; `CheckSet` makes them)."""

    def read(self, tool: str, args: Mapping[str, Any], text: str, data: Any, namespace: str) -> list[Finding]:
        """Every finding in one output (raw: the diagnoser keeps the new ones and cuts their evidence)."""
        ...

    def weigh(self, finding: Finding) -> float:
        """A finding's weight against what the session shows now (its own weight when the check has
        nothing to add)."""
        ...

    def follow_ups(self, namespace: str) -> Iterable[Read]:
        """Reads that would confirm or rule out a cause, most useful first."""
        ...


@dataclass(frozen=True)
class CheckSet:
    """What a session is given to diagnose with, by whoever builds it: how to make its checks
    (fresh for each session) and the routes from a read intent to a tool the session may have."""

    makers: tuple[Callable[[], Check], ...] = ()
    routes: tuple[Route, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.makers)

    def diagnoser(self, namespace: str = "default") -> Diagnoser:
        """A diagnoser for one session, with checks of its own."""
        return Diagnoser([make() for make in self.makers], self.routes, namespace=namespace)


@dataclass
class Diagnoser:
    """Runs a session's checks over each tool output and keeps the findings and the reads they suggest.

    `observe` is called with every finished call; it returns only the findings that are new,
    so a tool message never repeats what an earlier one already said."""

    checks: list[Check] = field(default_factory=list)
    routes: tuple[Route, ...] = ()
    namespace: str = "default"
    findings: list[Finding] = field(default_factory=list)
    _seen: set[tuple[str, str]] = field(default_factory=set)
    _done: set[Read] = field(default_factory=set)

    def observe(self, tool: str, args: dict[str, Any], text: str, data: Any = None) -> list[Finding]:
        """Findings new in this output (by cause and object)."""
        new: list[Finding] = []
        for check in self.checks:
            for hit in check.read(tool, args, text, data, self.namespace):
                key = (hit.cause, hit.object)
                if key in self._seen:
                    continue
                self._seen.add(key)
                f = Finding(hit.cause, hit.object, hit.evidence.strip()[:200], round(hit.weight, 2))
                self.findings.append(f)
                new.append(f)
        return new

    def lines(self, tool: str, args: dict[str, Any], text: str, data: Any = None) -> list[str]:
        """`observe` as the lines a tool result carries; a check that trips says so in a line
        instead of costing the call."""
        try:
            return [f.line() for f in self.observe(tool, args, text, data)]
        except Exception as exc:  # noqa: BLE001 - the call's result matters more than a check
            return [f"(the engine's checks could not read this output: {type(exc).__name__})"]

    def ranked(self) -> list[Finding]:
        """Findings by weight, as the checks weigh them against what the session shows now."""
        scored = []
        for i, f in enumerate(self.findings):
            w = f.weight
            for check in self.checks:
                w = check.weigh(replace(f, weight=w))
            scored.append((w, i, f))
        scored.sort(key=lambda t: (-t[0], t[1]))
        return [Finding(f.cause, f.object, f.evidence, round(w, 2)) for w, _, f in scored]

    def next_reads(self, limit: int = 4) -> list[Read]:
        """Reads not yet run that would confirm or rule out a cause, most useful first."""
        out: list[Read] = []
        for check in self.checks:
            for r in check.follow_ups(self.namespace):
                if r in self._done or r in out:
                    continue
                out.append(r)
                if len(out) >= limit:
                    return out
        return out

    def mark_done(self, read: Read) -> None:
        """A read that has run (or cannot run here): never suggested again."""
        self._done.add(read)

    def call_for(self, read: Read, available: set[str]) -> dict[str, Any] | None:
        """The call that answers `read`: the first route for its intent whose tool is loaded."""
        for route in self.routes:
            if route.intent == read.intent and route.tool in available:
                call = route.call(read)
                if call is not None:
                    return call
        return None

    def summary(self, limit: int = 3, ranked: list[Finding] | None = None) -> str:
        """The strongest findings as short lines ('' when there are none)."""
        top = (self.ranked() if ranked is None else ranked)[:limit]
        return "\n".join(f"{i}. {f.line()}" for i, f in enumerate(top, 1))
