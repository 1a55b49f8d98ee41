"""The findings of one session, and the reads that would take them further."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from engine.diagnose import kube


@dataclass(frozen=True)
class Finding:
    """One failure signal read off a tool's output."""

    cause: str
    """The cause it points at, e.g. `taint_toleration_mismatch`."""
    object: str
    """What the cause names: `service/NAME`, `node/NAME` or `namespace/NAME`."""
    evidence: str
    """The line of output that shows it, verbatim (cut to 200 characters)."""
    weight: float
    """How strongly the line alone points at the cause (0 to 1)."""

    def line(self) -> str:
        """How the model and the console read it."""
        return f"{self.cause} on {self.object} (weight {self.weight:.2f}): {self.evidence}"


@dataclass(frozen=True)
class Read:
    """A read worth running next: an intent (describe_pod, node_service, logs, manifest,
    endpoints, services, error_logs) with its arguments, and why."""

    intent: str
    args: tuple[tuple[str, Any], ...]
    why: str

    def arguments(self) -> dict[str, Any]:
        """The arguments as a dict."""
        return dict(self.args)


@dataclass
class Diagnoser:
    """Reads each tool output of a session and keeps the findings and the reads they suggest.

    `observe` is called with every finished call; it returns only the findings that are new,
    so a tool message never repeats what an earlier one already said."""

    namespace: str = "default"
    state: kube.ClusterState = field(default_factory=kube.ClusterState)
    findings: list[Finding] = field(default_factory=list)
    _seen: set[tuple[str, str]] = field(default_factory=set)
    _done: set[Read] = field(default_factory=set)

    def observe(self, tool: str, args: dict[str, Any], text: str, data: Any = None) -> list[Finding]:
        """Findings new in this output (by cause and object): from `data` when it is a shape the
        checks know (a client pack's pods, events, describe), else from the text."""
        hits = kube.read_data(self.state, tool, args, data, self.namespace) if isinstance(data, dict) else None
        if hits is None:
            if not text or not text.strip():
                return []
            hits = kube.read_output(self.state, tool, args, text, self.namespace)
        for h in hits:
            self.state.strong = max(self.state.strong, h[3])
        new: list[Finding] = []
        for cause, obj, evidence, weight in hits:
            key = (cause, obj)
            if key in self._seen:
                continue
            self._seen.add(key)
            f = Finding(cause, obj, evidence.strip()[:200], round(weight, 2))
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
        """Findings by weight, adjusted for what the cluster shows now (a cause on a service
        whose pods are all healthy now counts for less: the event is most likely stale)."""
        scored = [(kube.adjust(self.state, f.cause, f.object, f.weight), i, f) for i, f in enumerate(self.findings)]
        scored.sort(key=lambda t: (-t[0], t[1]))
        return [Finding(f.cause, f.object, f.evidence, round(w, 2)) for w, _, f in scored]

    def next_reads(self, limit: int = 4) -> list[Read]:
        """Reads not yet run that would confirm or rule out a cause, most useful first."""
        out: list[Read] = []
        for intent, args, why in kube.follow_ups(self.state, self.namespace):
            r = Read(intent, tuple(sorted(args.items())), why)
            if r in self._done or r in out:
                continue
            out.append(r)
            if len(out) >= limit:
                break
        return out

    def mark_done(self, read: Read) -> None:
        """A read that has run (or cannot run here): never suggested again."""
        self._done.add(read)

    def summary(self, limit: int = 3, ranked: list[Finding] | None = None) -> str:
        """The strongest findings as short lines ('' when there are none)."""
        top = (self.ranked() if ranked is None else ranked)[:limit]
        return "\n".join(f"{i}. {f.line()}" for i, f in enumerate(top, 1))
