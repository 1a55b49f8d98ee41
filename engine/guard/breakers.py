"""Circuit breakers (per tool, per backend, per identical call) and budgets (per turn, per session).

A breaker opens after `threshold` consecutive transient failures (timeouts, 429, 5xx, connection
errors) of a tool or of its backend, refuses calls while open, lets one trial call through after
`cooldown_s` (half-open), and closes on a success. Independently, the same failing call (same
tool and arguments hash) is run at most `identical_limit` times: the next identical call is
refused without executing, with a message saying so, until that call succeeds.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from engine import events as ev

if TYPE_CHECKING:
    from engine.loop import TurnContext

# -- error classification ------------------------------------------------------------------


@dataclass(frozen=True)
class Failure:
    """A classified tool failure."""

    kind: str
    """timeout | rate-limited | unavailable | client | schema | internal."""
    transient: bool
    """Counts toward opening a breaker."""
    message: str
    """What the model reads."""
    retry_after: float | None = None


DETAIL_CHARS = 300
"""How much of an error's text a Failure message quotes."""


def status_of(exc: BaseException) -> int | None:
    """The HTTP status a client library's exception carries (`.status_code`, the kubernetes
    client's `.status`, httpx's `.response.status_code`), or None."""
    for v in (
        getattr(exc, "status_code", None),
        getattr(exc, "status", None),
        getattr(getattr(exc, "response", None), "status_code", None),
    ):
        if isinstance(v, int) and not isinstance(v, bool) and 100 <= v <= 599:
            return v
    return None


def transient_kind(exc: BaseException | None) -> str | None:
    """'timeout' or 'unavailable' when an exception (or one it wraps: urllib3's MaxRetryError keeps
    the refused connection in `.reason`) says the backend did not answer, else None."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        name = type(exc).__name__
        if isinstance(exc, (asyncio.TimeoutError, TimeoutError)) or "Timeout" in name:
            return "timeout"
        if (
            isinstance(exc, (ConnectionError, OSError))
            or "Connect" in name
            or "Transport" in name
            or "MaxRetry" in name
            or "NameResolution" in name
        ):
            return "unavailable"
        nxt = getattr(exc, "reason", None)
        exc = nxt if isinstance(nxt, BaseException) else (exc.__cause__ or exc.__context__)
    return None


def classify(
    exc: BaseException | None = None, *, status: int | None = None, text: str = "", hint: str | None = None
) -> Failure:
    """Turn an exception (or an error status, or an executor's `hint`: timeout, unavailable,
    client) into a Failure with an actionable message."""
    name = type(exc).__name__ if exc is not None else ""
    detail = (str(exc) if exc is not None else text).strip()[:DETAIL_CHARS]
    code = status if status is not None else (status_of(exc) if exc is not None else None)
    kind = hint or transient_kind(exc)
    if kind == "timeout":
        return Failure(
            "timeout",
            True,
            f"timed out{': ' + detail if detail else ''}. The backend may be slow or down; try a narrower query or later.",
        )
    if code == 429:
        ra = getattr(exc, "retry_after", None)
        return Failure(
            "rate-limited",
            True,
            f"rate limited by the backend (429){': ' + detail if detail else ''}. Wait before calling it again.",
            ra if isinstance(ra, (int, float)) else None,
        )
    if code is not None and code >= 500:
        return Failure(
            "unavailable",
            True,
            f"backend error {code}{': ' + detail if detail else ''}. The backend is failing; retrying the same call is unlikely to help soon.",
        )
    if kind == "unavailable":
        return Failure(
            "unavailable", True, f"could not reach the backend ({name + ': ' if name else ''}{detail or 'no answer'})."
        )
    if kind == "client" or (code is not None and 400 <= code < 500):
        return Failure(
            "client",
            False,
            f"the backend refused the request{f' ({code})' if code else ''}{': ' + detail if detail else ''}. Check the arguments.",
        )
    if isinstance(exc, (KeyError, TypeError, ValueError, AttributeError)):
        return Failure(
            "schema",
            False,
            f"the response did not have the expected shape ({name}: {detail}). The backend's API may have changed.",
        )
    return Failure("internal", False, f"{name or 'error'}: {detail or 'failed'}")


# -- breakers -------------------------------------------------------------------------------


@dataclass
class _State:
    failures: int = 0
    opened_at: float | None = None
    trial: bool = False
    """A half-open trial call is in flight."""


class Breakers:
    """Breaker state for tools, backends and identical calls, for one session."""

    def __init__(
        self,
        threshold: int = 5,
        cooldown_s: float = 30.0,
        identical_limit: int = 3,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.threshold = threshold
        """Consecutive transient failures that open a breaker."""
        self.cooldown_s = cooldown_s
        """Seconds an open breaker waits before letting a trial call through."""
        self.identical_limit = identical_limit
        """Failures of one exact call after which it is refused without running."""
        self.clock = clock
        """Monotonic time source (tests advance it)."""
        self._states: dict[str, _State] = {}
        self._identical: dict[str, int] = {}

    def state(self, key: str) -> str:
        """closed | open | half-open for a breaker key ('tool:NAME' or 'backend:NAME')."""
        st = self._states.get(key)
        if st is None or st.opened_at is None:
            return "closed"
        if self.clock() - st.opened_at >= self.cooldown_s:
            return "half-open"
        return "open"

    def check(self, tool: str, backend: str | None, call_hash: str) -> str | None:
        """A refusal message when the call must not run now, else None (and a half-open trial is taken)."""
        n = self._identical.get(call_hash, 0)
        if n >= self.identical_limit:
            return (
                f"Refused without running: this exact call to {tool} has already failed {n} times in this session. "
                "Repeating it will not help; change the arguments, use another tool, or report the failure."
            )
        for key in (f"tool:{tool}", f"backend:{backend}" if backend else None):
            if key is None:
                continue
            st = self._states.get(key)
            s = self.state(key)
            if s == "open":
                assert st is not None and st.opened_at is not None
                wait = self.cooldown_s - (self.clock() - st.opened_at)
                what = key.split(":", 1)
                return (
                    f"Refused without running: the circuit breaker for {what[0]} {what[1]} is open after {st.failures} consecutive failures. "
                    f"It will allow one trial call in {wait:.0f}s; until then use other evidence or report the outage."
                )
            if s == "half-open" and st is not None:
                if st.trial:
                    return f"Refused without running: {key.split(':', 1)[1]} is recovering; one trial call is already in progress."
                st.trial = True
        return None

    def release(self, tool: str, backend: str | None) -> None:
        """Give back a half-open trial taken by `check` when the call did not run (blocked, denied, cancelled)."""
        for key in (f"tool:{tool}", f"backend:{backend}" if backend else None):
            st = self._states.get(key) if key else None
            if st is not None:
                st.trial = False

    def record(self, tool: str, backend: str | None, call_hash: str, failure: Failure | None) -> list[str]:
        """Record a call's outcome; returns notes (breaker opened/closed) for the model and the user."""
        notes = []
        if failure is None:
            self._identical.pop(call_hash, None)
        else:
            self._identical[call_hash] = self._identical.get(call_hash, 0) + 1
        for key in (f"tool:{tool}", f"backend:{backend}" if backend else None):
            if key is None:
                continue
            st = self._states.setdefault(key, _State())
            was = self.state(key)
            st.trial = False
            if failure is None:
                if st.opened_at is not None:
                    notes.append(f"circuit for {key.replace(':', ' ')} closed again after a successful call")
                st.failures = 0
                st.opened_at = None
            elif failure.transient:
                st.failures += 1
                if was == "half-open":
                    st.opened_at = self.clock()
                    notes.append(f"circuit for {key.replace(':', ' ')} re-opened: the trial call failed")
                elif st.failures >= self.threshold and st.opened_at is None:
                    st.opened_at = self.clock()
                    notes.append(
                        f"circuit for {key.replace(':', ' ')} opened after {st.failures} consecutive failures; calls are refused for {self.cooldown_s:.0f}s"
                    )
        return notes


# -- budgets --------------------------------------------------------------------------------


@dataclass
class Spend:
    """What a scope has used so far."""

    calls: int = 0
    tokens: int = 0
    cost_usd: float = 0.0
    wall_s: float = 0.0


@dataclass
class Budgets:
    """Per-turn and per-session limits on tool calls, tokens (model + tool output), cost and wall time."""

    turn_limits: dict[str, float] = field(
        default_factory=lambda: {"calls": 40, "tokens": 200_000, "cost_usd": 2.0, "wall_s": 900.0}
    )
    session_limits: dict[str, float] = field(
        default_factory=lambda: {"calls": 400, "tokens": 2_000_000, "cost_usd": 20.0, "wall_s": 4 * 3600.0}
    )
    turn: Spend = field(default_factory=Spend)
    session: Spend = field(default_factory=Spend)
    _turn_no: int = -1
    _tool_tokens_turn: int = 0
    _tool_tokens_session: int = 0
    _tool_wall_turn: float = 0.0
    _tool_wall_session: float = 0.0

    def sync(self, ctx: TurnContext) -> None:
        """Refresh model spend from the session's StepFinished events; reset the turn on a new turn."""
        if ctx.turn != self._turn_no:
            self._turn_no = ctx.turn
            self.turn = Spend()
            self._tool_tokens_turn = 0
            self._tool_wall_turn = 0.0
        t_tok = s_tok = 0
        t_cost = s_cost = 0.0
        t_calls = s_calls = 0
        first_at = None
        for e in ctx.events:
            if isinstance(e, ev.StepFinished):
                tok = e.prompt_tokens + e.completion_tokens
                s_tok += tok
                s_cost += e.cost_usd
                if e.turn == ctx.turn:
                    t_tok += tok
                    t_cost += e.cost_usd
            elif isinstance(e, ev.ToolCallStarted):
                s_calls += 1
                if e.turn == ctx.turn:
                    t_calls += 1
            elif isinstance(e, ev.UserMessage) and e.turn == ctx.turn and first_at is None:
                first_at = e.at
        self.turn.tokens = t_tok + self._tool_tokens_turn
        self.session.tokens = s_tok + self._tool_tokens_session
        self.turn.cost_usd, self.session.cost_usd = t_cost, s_cost
        self.turn.calls, self.session.calls = t_calls, s_calls
        if first_at is not None:
            try:
                self.turn.wall_s = max(0.0, (ctx.now() - first_at).total_seconds())
            except (TypeError, AttributeError):
                self.turn.wall_s = self._tool_wall_turn
        self.session.wall_s = max(self.session.wall_s, self._tool_wall_session)

    def add_tool(self, tokens: int, wall_s: float) -> None:
        """Count a finished tool call's output tokens and time."""
        self._tool_tokens_turn += tokens
        self._tool_tokens_session += tokens
        self._tool_wall_turn += wall_s
        self._tool_wall_session += wall_s
        self.turn.tokens += tokens
        self.session.tokens += tokens

    def exceeded(self) -> str | None:
        """A message when a turn or session limit is reached (the next call is refused)."""
        for scope, spend, limits in (
            ("turn", self.turn, self.turn_limits),
            ("session", self.session, self.session_limits),
        ):
            for k in ("calls", "tokens", "cost_usd", "wall_s"):
                lim = limits.get(k)
                if lim is not None and getattr(spend, k) >= lim:
                    label = {"calls": "tool calls", "tokens": "tokens", "cost_usd": "cost (USD)", "wall_s": "seconds"}[
                        k
                    ]
                    return f"Refused without running: the {scope} budget for {label} is spent ({getattr(spend, k):,.0f} of {lim:,.0f}). Answer with what you have."
        return None

    def events(self, ctx: TurnContext) -> list[Any]:
        """BudgetUpdate events for the turn and the session."""

        out = []
        for scope, spend, limits in (
            ("turn", self.turn, self.turn_limits),
            ("session", self.session, self.session_limits),
        ):
            out.append(
                ctx.event(
                    ev.BudgetUpdate,
                    scope=scope,
                    calls=spend.calls,
                    tokens=spend.tokens,
                    cost_usd=round(spend.cost_usd, 6),
                    wall_s=round(spend.wall_s, 3),
                    limits={k: float(v) for k, v in limits.items()},
                )
            )
        return out
