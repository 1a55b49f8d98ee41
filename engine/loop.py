"""The one agent loop: `Session.run_turn(text)` is an async iterator of events.

Every face (console, plain terminal, tests, eval) consumes this same stream. Tool calls pass
through one seam, `Toolbox.dispatch`, which the retrieval, guard, policy and executor layers
fill; context assembly passes through `ContextBuilder`; plans with writes pass `PlanReviewer`.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, runtime_checkable

from engine import events as ev
from engine.answers import check_answer, proposed_call, restate_request
from engine.diagnose import CheckSet
from engine.models.base import (
    Completion,
    ExcludingModel,
    FixingModel,
    Message,
    Model,
    ModelChunk,
    TextDelta,
    ToolCall,
    ToolSpec,
    Usage,
)
from engine.models.errors import ModelError
from engine.notes import DONE_HEAD, FIX_TOOLS_SHOWN, call_text, done_this_turn, fix_tools_note, with_note
from engine.textsafe import safe_tree

if TYPE_CHECKING:
    from engine.diagnose import Diagnoser

T = TypeVar("T")

DEFAULT_SYSTEM_PROMPT = (
    "You are Lantern, an on-call assistant investigating production incidents. "
    "Use the tools to gather evidence before concluding. Name the root cause with the evidence "
    "(resource names, error codes, metric values, timestamps). Propose the smallest safe fix as a call "
    "of a tool you can run, by its full name with named arguments; writes run only after a human "
    "approves them. If no available tool can make the fix, say so plainly and what a person must do. "
    "If a tool you need is not offered, call find_tools with what you are looking for."
)


@dataclass
class LoopConfig:
    """Per-turn limits: a turn stops cleanly, with a visible reason, when one is reached."""

    max_steps: int = 12
    """Model steps per turn."""
    max_tokens: int = 200_000
    """Prompt + completion tokens per turn."""
    max_cost_usd: float = 2.0
    """Provider cost per turn."""
    max_wall_s: float = 900.0
    """Wall time per turn."""
    system_prompt: str = DEFAULT_SYSTEM_PROMPT
    answer_schema: dict[str, Any] | None = None
    """A JSON Schema the turn's final answer must match (structured output), or None for prose."""
    opening: list[dict[str, Any]] = field(default_factory=list)
    """Read calls ({name, arguments}) a triage playbook runs at the start of each turn, before the
    model's first step, through the same guarded dispatch; the model starts from their results."""
    diagnose: bool = True
    """Read every tool output with the checks the session was given (engine.diagnose) and note the
    failure signals they find on the result the model reads."""
    follow_up_rounds: int = 2
    """After the opening reads, rounds of the reads the findings ask for (read-only, at most
    four a round), then the ranked findings, all before the model's first step."""
    settle_after: int = 2
    """Once a strong finding stands (weight ≥ STRONG_FINDING), this many steps in a row whose
    reads found nothing new make the next step the answer (no tools offered); 0: never."""


class TurnCancelled(Exception):
    """Raised inside the loop when the user cancels the running turn."""


@dataclass(kw_only=True)
class ApprovalAnswer:
    """A human's (or the headless policy's) answer to one approval request, bound to it: the
    dispatcher refuses an answer for another call or request."""

    approved: bool
    by: str
    call_hash: str
    """The hash of the call the human saw."""
    request_id: str
    """The request answered."""
    reason: str = ""

    @classmethod
    def to(cls, request: ev.ApprovalRequested, approved: bool, by: str, reason: str = "") -> ApprovalAnswer:
        """The answer to `request`, bound to its call hash and request id."""
        return cls(approved=approved, by=by, reason=reason, call_hash=request.call_hash, request_id=request.request_id)


class Approver(Protocol):
    """Asks a human. The console shows a modal; the plain face prompts y/N; headless denies."""

    async def ask(self, request: ev.ApprovalRequested) -> ApprovalAnswer: ...


class DenyAll:
    """The approver of a non-interactive run: every request is denied, with the reason."""

    async def ask(self, request: ev.ApprovalRequested) -> ApprovalAnswer:
        return ApprovalAnswer.to(request, False, "non-interactive", "no human is present to approve")


@dataclass
class TurnContext:
    """What the loop's collaborators see of the turn in progress."""

    session: Session
    turn: int
    step: int = 0
    query: str = ""
    """The user's text for this turn."""
    cancelled: asyncio.Event = field(default_factory=asyncio.Event)
    reviewed: bool = False
    """The plan critic asked this turn to revise a plan (it asks once a turn)."""
    requests: list[str] = field(default_factory=list)
    """What the engine asks of the next step (the answer check's request), said once in the closing note."""
    answer_checked: bool = False
    """The answer check asked this turn to restate a fix (it asks once a turn)."""
    answer_next: bool = False
    """The next step answers (no tools offered): the model repeated a call even with it ruled
    out, or the findings have settled."""
    unchanged_steps: int = 0
    """Steps in a row whose reads added no finding while a strong one stood."""

    def event(self, cls: type[T], **fields: Any) -> T:
        """Stamp a new event of this session (seq, time, turn)."""
        return self.session.stamp(cls, turn=self.turn, **fields)

    @property
    def approver(self) -> Approver:
        """Who answers approval requests in this session."""
        return self.session.approver

    async def race(self, aw: Awaitable[T]) -> T:
        """Await `aw`, abandoning it if the turn is cancelled meanwhile."""
        return await self.session._race(aw, self.cancelled)

    # -- the session's services, by name ------------------------------------------------------
    @property
    def session_id(self) -> str:
        return self.session.id

    @property
    def events(self) -> list[ev.Event]:
        """Every event of the session so far."""
        return self.session.events

    @property
    def diagnoser(self) -> Diagnoser | None:
        """The session's checks, or None."""
        return self.session.diagnoser

    @property
    def blobs(self) -> BlobStore | None:
        """Where whole tool outputs are kept (the store), or None."""
        sink = self.session.sink
        return sink if isinstance(sink, BlobStore) else None

    def now(self) -> Any:
        """The session's clock."""
        return self.session.clock()

    def offered(self) -> list[str]:
        """The tools offered at the latest step."""
        for e in reversed(self.session.events):
            if isinstance(e, ev.StepStarted):
                return list(e.tools)
        return []

    def count_tokens(self, text: str) -> int:
        """`text`'s size in the session model's tokens (an estimate when the model cannot count)."""
        if not text:
            return 0
        try:
            return int(self.session.model.count_tokens([Message(role="tool", content=text)]))
        except Exception:  # noqa: BLE001 - an estimate is enough for budgets
            return max(1, len(text) // 4)


class Toolbox(Protocol):
    """The tool seam: which tools to offer, and how a call runs (guard, policy, executors)."""

    async def select(self, ctx: TurnContext) -> tuple[list[ToolSpec], Any | None]:
        """Tools to offer at this step, and a ToolSetChanged event when the set changed."""
        ...

    def dispatch(self, call: ToolCall, ctx: TurnContext) -> AsyncIterator[Any]:
        """Run one call; yields events, the last a ToolCallFinished."""
        ...

    def risk_of(self, name: str) -> str:
        """read | write | dangerous for a tool name ('read' when unknown)."""
        ...

    def all_tool_names(self) -> list[str]:
        """Every tool the session can call, offered now or not."""
        ...

    def repeat_of(self, call: ToolCall, ctx: TurnContext) -> str | None:
        """Why `call` would learn nothing new this turn (a refused repeat, a denied call), or None."""
        ...

    def fixes_for(self, query: str, offered: list[ToolSpec], limit: int) -> list[ToolSpec]:
        """The write actions an answer should name for the findings in `query`, best first."""
        ...


class ContextBuilder(Protocol):
    """Assembles the prompt for this model's window from the session's events."""

    def build(self, ctx: TurnContext, system: str, tools: list[ToolSpec]) -> tuple[list[Message], list[Any]]:
        """(messages, events such as ContextGauge/DetailDropped to emit)."""
        ...


class PlanReviewer(Protocol):
    """Checks a plan of write calls before any approval is asked."""

    async def review(self, calls: list[ToolCall], ctx: TurnContext) -> tuple[str, list[str], list[dict[str, Any]]]:
        """(verdict ok|simplify|reject, findings, suggested steps)."""
        ...


class EventSink(Protocol):
    """Where events are persisted as they happen (the store)."""

    async def append(self, event: Any) -> Any:
        """Persist `event`; return it as stored (a shared store may re-stamp its seq), or None."""
        ...


@runtime_checkable
class BlobStore(Protocol):
    """Keeps whole tool outputs by reference (the store)."""

    async def put_blob(self, ref: str, session_id: str, text: str) -> None: ...


def history_messages(events: list[Any]) -> list[Message]:
    """Rebuild the chat history (without system prompt) from a session's events."""
    out: list[Message] = []
    for e in events:
        kind = getattr(e, "kind", "")
        if kind == "user-message":
            out.append(Message(role="user", content=e.text))
        elif kind == "assistant-message":
            calls = [ToolCall(id=c["id"], name=c["name"], arguments=c.get("arguments") or {}) for c in e.tool_calls]
            out.append(Message(role="assistant", content=e.text, tool_calls=calls))
        elif kind == "tool-call-finished":
            out.append(Message(role="tool", content=tool_message_text(e), tool_call_id=e.call_id, name=e.tool))
    return out


def tool_message_text(e: ev.ToolCallFinished) -> str:
    """What the model reads for a finished call: status line, notes, partial flag, output."""
    head = [] if e.status == "ok" else [f"[{e.status}]"]
    if e.partial:
        head.append(f"[{e.partial}]")
    head.extend(f"[note: {n}]" for n in e.notes)
    head.extend(f"[finding: {f}]" for f in e.findings)
    body = e.output or e.summary
    return (" ".join(head) + "\n" + body).strip() if head else body


class VerbatimContext:
    """The simplest ContextBuilder: system prompt plus the whole history, no compaction."""

    def build(self, ctx: TurnContext, system: str, tools: list[ToolSpec]) -> tuple[list[Message], list[Any]]:
        msgs = [Message(role="system", content=system), *history_messages(ctx.events)]
        return msgs, []


class _HeldBack:
    """Streamed text shown only once it is scrubbed as a whole: the unfinished last word (and at
    least BATCH characters) wait, so a credential split across fragments never shows in part.
    Without a scrubber, fragments pass through as they come."""

    BATCH = 32

    def __init__(self, redact: Callable[[str], str] | None) -> None:
        self.redact = redact
        self.raw = ""
        self.done = 0
        """Raw characters already shown."""
        self.sent = 0
        """Scrubbed characters already shown."""

    def feed(self, text: str) -> str:
        if self.redact is None:
            return text
        self.raw += text
        cut = max(self.raw.rfind(" "), self.raw.rfind("\n")) + 1
        if cut - self.done < self.BATCH:
            return ""
        return self._upto(cut)

    def flush(self) -> str:
        return self._upto(len(self.raw)) if self.redact is not None else ""

    def _upto(self, cut: int) -> str:
        assert self.redact is not None
        clean = self.redact(self.raw[:cut])
        out = clean[self.sent :]
        self.done, self.sent = cut, max(self.sent, len(clean))
        return out


@dataclass
class Step:
    """One model step in progress, as the hooks see it."""

    started: float = field(default_factory=time.perf_counter)
    tools: list[ToolSpec] = field(default_factory=list)
    messages: list[Message] = field(default_factory=list)
    text: str = ""
    calls: list[ToolCall] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)
    outside: float = 0.0
    """Seconds spent in the model and the tools (the rest is the engine's own time)."""
    held: bool = False
    """A review hook held the calls back: nothing more runs in this step."""
    again: bool = False
    """An answer hook asked for one more step (the fix check): the turn goes on."""
    fixes: list[ToolSpec] = field(default_factory=list)
    """At an answer step: the write actions its fix may name (a model that can shape its answer
    writes the fix as one call of them)."""


Hook = Callable[[TurnContext, Step], AsyncIterator[Any]]
"""A named point of a turn where the engine's own work runs; yields events."""


@dataclass
class Hooks:
    """The engine's own work around the model's steps, by name."""

    opening: list[Hook] = field(default_factory=list)
    """Before the first step (the triage playbook's reads and their follow-ups)."""
    review: list[Hook] = field(default_factory=list)
    """After the model asks for calls, before any runs (the plan critic; may hold them back)."""
    after_calls: list[Hook] = field(default_factory=list)
    """After the step's calls ran (the reads the findings ask for)."""
    answered: list[Hook] = field(default_factory=list)
    """After a step without calls, the model's answer (the fix check; may ask for one more step)."""


_IDS = frozenset(
    {"call_id", "call_hash", "request_id", "output_ref", "ref", "tool", "model", "status", "kind", "risk", "decision"}
)
"""Event fields that are identifiers, never scrubbed (an approval binds to call_hash and request_id)."""


class Session:
    """One conversation with the agent; owns the event log and runs turns."""

    def __init__(
        self,
        model: Model,
        toolbox: Toolbox,
        *,
        session_id: str | None = None,
        sink: EventSink | None = None,
        approver: Approver | None = None,
        context: ContextBuilder | None = None,
        reviewer: PlanReviewer | None = None,
        config: LoopConfig | None = None,
        events: list[Any] | None = None,
        clock: Callable[[], Any] = ev.utcnow,
        redact: Callable[[str], str] | None = None,
        checks: CheckSet | None = None,
    ) -> None:
        self.model = model
        """The model this session talks to."""
        self.toolbox = toolbox
        """Tool selection and dispatch."""
        self.id = session_id or uuid.uuid4().hex[:12]
        """Stable session id (store key)."""
        self.sink = sink
        """Persistence for events, written before a face sees them."""
        self.approver: Approver = approver or DenyAll()
        """Who answers approval requests."""
        self.context: ContextBuilder = context or VerbatimContext()
        """Prompt assembly."""
        self.reviewer = reviewer
        """Plan critic, when configured."""
        self.config = config or LoopConfig()
        """Per-turn limits."""
        self.events: list[Any] = list(events or [])
        """Every event of the session so far, in order."""
        self.clock = clock
        """Time source (frozen in snapshot tests)."""
        self.redact = redact
        """Scrubs credentials and personal data from every text an event carries (the user's
        message, the model's text and arguments, plans, critic notes) before it is stored or shown."""
        self._seq = self.events[-1].seq if self.events else 0
        self._turn = max((getattr(e, "turn", 0) for e in self.events), default=0)
        self._cancel: asyncio.Event | None = None
        self.hooks = Hooks(
            opening=[self.triage_opening],
            review=[self.critic_review],
            after_calls=[self.follow_up_reads],
            answered=[self.fix_check],
        )
        """The engine's own work around the model's steps."""
        self.diagnoser = checks.diagnoser(self._namespace()) if checks and self.config.diagnose else None
        """The session's findings (engine.diagnose): the checks it was given, when the config asks for them."""

    def first_turn_reads(self, reads: list[dict[str, Any]], namespace: str) -> None:
        """Run `reads` (a playbook's checks, a page's first reads) before the model's first step of
        the next turn only, through the opening hook; the checks read them in `namespace`."""
        if not reads:
            return
        self.config.opening = list(reads)

        async def once(ctx: TurnContext, step: Step) -> AsyncIterator[Any]:
            self.config.opening = []  # later turns (a person continuing the thread) start from the model
            return
            yield

        self.hooks.opening.append(once)
        checks = getattr(self.toolbox, "checks", None)
        if namespace and self.diagnoser is not None and checks is not None:
            self.diagnoser = checks.diagnoser(namespace)

    def _namespace(self) -> str:
        for c in self.config.opening:
            ns = (c.get("arguments") or {}).get("namespace")
            if ns:
                return str(ns)
        return "default"

    # -- events -----------------------------------------------------------------------------
    def stamp(self, cls: type[T], **fields: Any) -> T:
        """Create the next event of this session."""
        self._seq += 1
        fields.setdefault("turn", self._turn)
        if self.redact is not None and cls is not ev.ToolCallFinished:  # a tool's output is scrubbed by the dispatcher
            fields = {k: v if k in _IDS else safe_tree(v, self.redact) for k, v in fields.items()}
        return cls(session_id=self.id, seq=self._seq, at=self.clock(), **fields)  # type: ignore[call-arg]

    async def _record(self, event: Any) -> Any:
        if self.sink is not None:
            stored = await self.sink.append(event)
            if stored is not None and stored.seq != event.seq:  # another writer took that seq
                event, self._seq = stored, stored.seq
        self.events.append(event)
        return event

    async def emit(self, cls: type[T], **fields: Any) -> T:
        """Stamp and persist an event outside a turn (session start, notices)."""
        return await self._record(self.stamp(cls, **fields))

    def absorb(self, events: list[Any]) -> None:
        """Events another process appended to this session's store since this object last wrote
        (a shared store): kept in order, so the next turn's history, seq and number follow them."""
        last = self.events[-1].seq if self.events else 0
        for e in events:
            if e.seq > last:
                self.events.append(e)
                last = e.seq
                self._turn = max(self._turn, getattr(e, "turn", 0))
        self._seq = max(self._seq, last)

    # -- cancellation -----------------------------------------------------------------------
    def cancel(self) -> None:
        """Cancel the running turn; it ends with TurnFinished(reason='cancelled')."""
        if self._cancel is not None:
            self._cancel.set()

    @property
    def running(self) -> bool:
        """True while a turn is in progress."""
        return self._cancel is not None

    @staticmethod
    async def _race(aw: Awaitable[T], cancelled: asyncio.Event) -> T:
        task = asyncio.ensure_future(aw)
        waiter = asyncio.ensure_future(cancelled.wait())
        try:
            done, _ = await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            task.cancel()
            waiter.cancel()
            raise
        if task in done:
            waiter.cancel()
            return task.result()
        task.cancel()
        try:
            await task
        except BaseException:  # noqa: BLE001 - the cancelled work's own error is irrelevant now
            pass
        raise TurnCancelled()

    async def _anext(self, it: AsyncIterator[T], cancelled: asyncio.Event) -> T:
        return await self._race(it.__anext__(), cancelled)

    # -- the turn ---------------------------------------------------------------------------
    async def run_turn(self, text: str) -> AsyncIterator[ev.Event]:
        """Run one user turn; yields every event as it happens (each already persisted)."""
        async for e in self._framed(text, self._steps):
            yield e

    async def run_call(self, text: str, tool: str, arguments: dict[str, Any]) -> AsyncIterator[ev.Event]:
        """A person's own call (the inspector's Apply) as a turn of its own: the same guard, policy,
        dry-run preview, approval and audit as any call the model makes; no model step runs."""

        async def one_call(ctx: TurnContext, totals: dict[str, Any], t0: float) -> AsyncIterator[Any]:
            ctx.step = 1
            async for e in self._dispatch(ToolCall(id=f"user_{ctx.turn}", name=tool, arguments=dict(arguments)), ctx):
                yield e

        async for e in self._framed(text, one_call):
            yield e

    async def _framed(
        self, text: str, body: Callable[[TurnContext, dict[str, Any], float], AsyncIterator[Any]]
    ) -> AsyncIterator[Any]:
        """One turn's frame around `body`: the user's message first, cancellation and model errors
        as events, and TurnFinished last, whatever happened."""
        if self._cancel is not None:
            raise RuntimeError("a turn is already running in this session")
        self._turn += 1
        cancelled = asyncio.Event()
        self._cancel = cancelled
        ctx = TurnContext(session=self, turn=self._turn, query=text, cancelled=cancelled)
        t0 = time.perf_counter()
        totals = {"prompt": 0, "completion": 0, "cost": 0.0}
        reason = "answered"
        try:
            yield await self._record(ctx.event(ev.UserMessage, text=text))
            async for e in body(ctx, totals, t0):
                if isinstance(e, _Stop):
                    reason = e.reason
                    break
                yield await self._record(e)
        except TurnCancelled:
            reason = "cancelled"
            yield await self._record(
                ctx.event(ev.Notice, text="Turn cancelled; everything shown so far is kept.", topic="cancel")
            )
        except ModelError as exc:
            reason = "error"
            yield await self._record(
                ctx.event(ev.ErrorEvent, code=exc.code, message=exc.message, retryable=exc.retryable, hint=exc.hint)
            )
        finally:
            self._cancel = None
        yield await self._record(
            ctx.event(
                ev.TurnFinished,
                reason=reason,
                steps=ctx.step,
                prompt_tokens=totals["prompt"],
                completion_tokens=totals["completion"],
                cost_usd=totals["cost"],
                duration_ms=(time.perf_counter() - t0) * 1000,
            )
        )

    async def _opening(self, ctx: TurnContext) -> AsyncIterator[Any]:
        """The triage playbook's reads, as step 0 of the turn: one assistant message carrying the
        calls (so every face and the history show who asked for what), then each call through
        the toolbox. Anything but a read is refused here: a playbook never writes unasked."""
        calls, refused = [], []
        for i, c in enumerate(self.config.opening):
            name = str(c.get("name", ""))
            if self.toolbox.risk_of(name) != "read":
                refused.append(name)
                continue
            calls.append(ToolCall(id=f"open_{ctx.turn}_{i}", name=name, arguments=dict(c.get("arguments") or {})))
        if refused:
            yield ctx.event(
                ev.Notice,
                text=f"Triage playbook: not run, not read-only: {', '.join(refused)}.",
                level="warning",
                topic="opening",
            )
        if not calls:
            return
        yield ctx.event(
            ev.AssistantMessage,
            text="Opening checks from the triage playbook.",
            step=0,
            tool_calls=[{"id": c.id, "name": c.name, "arguments": c.arguments} for c in calls],
        )
        for call in calls:
            async for e in self._dispatch(call, ctx):
                yield e
        async for e in self._follow_ups(ctx):
            yield e

    async def _follow_ups(
        self, ctx: TurnContext, *, rounds: int | None = None, summary: bool = True
    ) -> AsyncIterator[Any]:
        """The reads the findings ask for, in rounds, then the ranked findings as the result of
        the engine's own `findings` call, so the model starts from the strongest signal.

        After the opening the summary is always given; after a step of the model's own
        (`summary=False`) only when a follow-up read ran, so a step that found nothing new
        adds nothing to the prompt."""
        d = self.diagnoser
        if d is None:
            return
        available = set(self.toolbox.all_tool_names())
        ran = False
        for _rnd in range(self.config.follow_up_rounds if rounds is None else rounds):
            calls: list[ToolCall] = []
            why: list[str] = []
            for r in d.next_reads():
                d.mark_done(r)
                c = d.call_for(r, available)
                if c is None or self.toolbox.risk_of(c["name"]) != "read":
                    continue
                calls.append(
                    ToolCall(
                        id=f"follow_{ctx.turn}_{uuid.uuid4().hex[:6]}_{len(calls)}",
                        name=c["name"],
                        arguments=c["arguments"],
                    )
                )
                why.append(r.why)
            if not calls:
                break
            yield ctx.event(
                ev.AssistantMessage,
                text="Follow-up checks from the findings: " + "; ".join(why) + ".",
                step=0,
                tool_calls=[{"id": c.id, "name": c.name, "arguments": c.arguments} for c in calls],
            )
            ran = True
            for call in calls:
                async for e in self._dispatch(call, ctx):
                    yield e
        if not d.findings or not (summary or ran):
            return
        call_id = f"open_{ctx.turn}_{uuid.uuid4().hex[:6]}_findings"
        yield ctx.event(
            ev.AssistantMessage,
            text="The findings so far, strongest first.",
            step=0,
            tool_calls=[{"id": call_id, "name": "findings", "arguments": {}}],
        )
        yield ctx.event(ev.ToolCallStarted, call_id=call_id, tool="findings", arguments={}, step=0)
        ranked = d.ranked()
        yield ctx.event(
            ev.ToolCallFinished,
            call_id=call_id,
            tool="findings",
            status="ok",
            duration_ms=0.0,
            summary=f"{len(ranked)} findings; strongest: {ranked[0].cause} on {ranked[0].object}",
            output=d.summary(limit=5, ranked=ranked),
            step=0,
        )

    async def _dispatch(self, call: ToolCall, ctx: TurnContext) -> AsyncIterator[Any]:
        """One call through the toolbox, each event raced against cancellation."""
        gen = self.toolbox.dispatch(call, ctx)
        while True:
            try:
                yield await self._anext(gen, ctx.cancelled)
            except StopAsyncIteration:
                return

    async def _steps(self, ctx: TurnContext, totals: dict[str, Any], t0: float) -> AsyncIterator[Any]:
        """A turn: the opening hooks, then steps until the model answers or a limit is reached."""
        for hook in self.hooks.opening:
            async for e in hook(ctx, Step()):
                yield e
        asked_before: tuple[tuple[str, str], ...] = ()
        same_tool = 0  # steps in a row that called only the same tool(s)
        last_calls: list[ToolCall] = []
        looping = False  # the model asked for exactly the calls of its previous step
        while True:
            stop = self._limit_reached(ctx, totals, t0)
            if stop is not None:
                yield stop[0]
                yield _Stop(stop[1])
                return
            ctx.step += 1
            step = Step()
            found_before = len(self.diagnoser.findings) if self.diagnoser is not None else 0
            async for e in self._offer(ctx, step, looping):
                yield e
            async for e in self._ask_model(ctx, step):
                yield e
            totals["prompt"] += step.usage.prompt_tokens
            totals["completion"] += step.usage.completion_tokens
            totals["cost"] += step.usage.cost_usd
            for hooks, outside in (
                (self.hooks.review, False),
                ([self._run_calls], True),
                (self.hooks.after_calls, True),
                (self.hooks.answered if not step.calls and not step.again else [], False),
            ):
                for hook in hooks:
                    if step.held:
                        break
                    d0 = time.perf_counter()
                    async for e in hook(ctx, step):
                        yield e
                    if outside:  # tools' time, not the engine's own
                        step.outside += time.perf_counter() - d0
            yield self._step_finished(ctx, step.started, step.outside, step.usage)
            settled = self._settled(ctx, step, found_before)
            if settled is not None:
                yield settled
            if step.held or step.again:
                continue
            if not step.calls:
                return
            asked = _signature(step.calls)
            looping, asked_before = asked == asked_before, asked
            same_tool = same_tool + 1 if {c.name for c in step.calls} == {c.name for c in last_calls} else 1
            last_calls = step.calls
            if same_tool >= SAME_TOOL_STEPS and not looping and ctx.step + 1 < self.config.max_steps:
                # one tool, step after step, with other arguments each time: a small model circling
                ctx.answer_next, same_tool = True, 0
                yield ctx.event(
                    ev.Notice,
                    text=f"Steps {ctx.step - SAME_TOOL_STEPS + 1}–{ctx.step} each asked only for "
                    f"{step.calls[0].name}; step {ctx.step + 1} answers with the evidence it has.",
                    level="warning",
                    topic="repeat-loop",
                )

    def _settled(self, ctx: TurnContext, step: Step, found_before: int) -> Any:
        """A Notice when the findings have settled: a strong one stands and `settle_after` steps
        in a row read nothing new, so the next step answers with the evidence it has (reading on
        costs a model step each and tells the on-call engineer nothing). None otherwise."""
        d, limit = self.diagnoser, self.config.settle_after
        if d is None or not limit or not step.calls:
            return None
        strongest = next(iter(d.ranked()), None)
        if strongest is None or strongest.weight < STRONG_FINDING or len(d.findings) > found_before:
            ctx.unchanged_steps = 0
            return None
        ctx.unchanged_steps += 1
        if ctx.unchanged_steps < limit or ctx.step + 1 >= self.config.max_steps:
            return None
        ctx.unchanged_steps, ctx.answer_next = 0, True
        return ctx.event(
            ev.Notice,
            text=f"Steps {ctx.step - limit + 1}–{ctx.step} found nothing new beside {strongest.cause} on "
            f"{strongest.object}; step {ctx.step + 1} answers with the evidence it has.",
            topic="settled",
        )

    def _limit_reached(self, ctx: TurnContext, totals: dict[str, Any], t0: float) -> tuple[Any, str] | None:
        """The event that ends the turn at a limit (steps, budget), and the reason; None to go on."""
        if ctx.step >= self.config.max_steps:
            return ctx.event(
                ev.ErrorEvent,
                code="step-limit",
                message=f"Stopped after {self.config.max_steps} steps without a final answer.",
                hint="Ask a narrower question, or raise the step limit.",
            ), "step-limit"
        over = self._over_budget(totals, t0)
        if over:
            return ctx.event(ev.ErrorEvent, code="budget", message=over), "budget"
        if ctx.cancelled.is_set():
            raise TurnCancelled()
        return None

    async def _offer(self, ctx: TurnContext, step: Step, looping: bool) -> AsyncIterator[Any]:
        """The tools for this step and the prompt that offers them."""
        tools, changed = await self.toolbox.select(ctx)
        selected = tools
        if changed is not None:
            yield changed
        if ctx.step == self.config.max_steps and tools:
            # The last step of the turn offers no tools, so the model answers with what it has
            # instead of running into the step limit mid-investigation.
            tools = []
            yield ctx.event(
                ev.Notice,
                text=f"Step {ctx.step} is the last of this turn: the model answers with the evidence it has.",
                topic="last-step",
            )
        elif looping and tools:
            # Asking again for what was just answered (or refused) learns nothing, and a small
            # local model can do it until the step limit: the next step is its answer.
            tools = []
            yield ctx.event(
                ev.Notice,
                text=f"The model asked again for the same calls as step {ctx.step - 2}; step {ctx.step} answers with the evidence it has.",
                level="warning",
                topic="repeat-loop",
            )
        writes: list[ToolSpec] = []
        if ctx.answer_next and tools:
            ctx.answer_next, tools = False, []  # the notice was given when the repeat was dropped
        if not tools:
            writes = self.toolbox.fixes_for(self._fix_query(), selected, FIX_TOOLS_SHOWN)
        # Compaction and fact extraction are CPU work: off the event loop the faces share.
        step.messages, ctx_events = await _in_thread(self.context.build, ctx, self.config.system_prompt, tools)
        for e in ctx_events:
            yield e
        note = self._notes(ctx, tools) + fix_tools_note(writes, self._fix_target())
        step.messages = with_note(step.messages, note.strip())
        step.tools, step.fixes = tools, writes
        yield ctx.event(ev.StepStarted, step=ctx.step, tools=[t.name for t in tools])

    def _fix_target(self) -> dict[str, str]:
        """What the strongest finding says a fix acts on: the object's name and the namespace."""
        d = self.diagnoser
        strongest = next(iter(d.ranked()), None) if d is not None else None
        if strongest is None or "/" not in strongest.object:
            return {}
        kind, _, name = strongest.object.partition("/")
        if kind == "namespace":
            return {"namespace": name}
        out = {"name": name}
        if kind != "node" and d is not None and d.namespace not in ("", "default"):
            # (without one, a call that leaves it out runs in the session's namespace)
            out["namespace"] = d.namespace
        return out

    def _fix_query(self) -> str:
        """What a fix must address, as a retrieval query: the strongest findings' causes and the
        lines that show them ('' without findings)."""
        ranked = self.diagnoser.ranked()[:2] if self.diagnoser is not None else []
        return " ".join(f"{f.cause.replace('_', ' ')}: {f.evidence}" for f in ranked)

    def _notes(self, ctx: TurnContext, tools: list[ToolSpec]) -> str:
        """The engine's closing note for this step: the calls this turn already made (while tools
        are offered: asking again is what it prevents) and any request of the engine's, once."""
        parts = []
        if tools:
            done = done_this_turn(ctx.events, ctx.turn, set(self.toolbox.all_tool_names()))
            if done:
                parts.append(DONE_HEAD + "\n" + "\n".join(done))
        parts.extend(ctx.requests)
        ctx.requests.clear()
        return "\n\n".join(parts)

    async def _ask_model(self, ctx: TurnContext, step: Step) -> AsyncIterator[Any]:
        """Stream the model's reply (text shown as it comes, scrubbed), then its message and calls.

        A reply whose every call would learn nothing (a read this turn already answered, a call a
        human denied, a search whose results are still offered) is a wasted step: a model that can
        rule calls out of its output is asked once more without them, from the same prompt (only
        the generation runs again); if it still repeats, the dispatcher's refusal applies."""
        got: list[Completion] = []
        schema = self.config.answer_schema
        answered = (
            self._answered_this_turn(ctx, step.tools) if step.tools and isinstance(self.model, ExcludingModel) else []
        )
        # What the turn already answered is ruled out from the start: the grammar cannot write it.
        if answered and isinstance(self.model, ExcludingModel):
            opening = self.model.stream_excluding(step.messages, step.tools, answered, answer_schema=schema)
        elif step.fixes and not step.tools and schema is None and isinstance(self.model, FixingModel):
            made = [ToolCall(id=_call_key(n, a), name=n, arguments=a) for n, a in _calls_this_turn(ctx)]
            opening = self.model.stream_answer(step.messages, step.fixes, made)  # the fix as one call, by grammar
        else:
            opening = self.model.stream(step.messages, step.tools, answer_schema=schema)
        async for e in self._reply(ctx, step, opening, got):
            yield e
        completion = got[-1]
        wasted = [(c, why) for c in completion.tool_calls if (why := self.toolbox.repeat_of(c, ctx))]
        if (
            wasted
            and len(wasted) == len(completion.tool_calls)
            and step.tools
            and isinstance(self.model, ExcludingModel)
        ):
            said = "; ".join(f"{call_text(c.name, c.arguments)}: {why}" for c, why in wasted)
            yield ctx.event(
                ev.Notice,
                text=f"Step {ctx.step} asked again for {said}. Asked once more with that call ruled out.",
                topic="repeat-excluded",
            )
            ruled = list(
                {
                    _call_key(c.name, c.arguments): c
                    for c in [c for c, _ in wasted] + self._answered_this_turn(ctx, step.tools)
                }.values()
            )
            again = self.model.stream_excluding(step.messages, step.tools, ruled, answer_schema=schema)
            async for e in self._reply(ctx, step, again, got):
                yield e
            first, completion = completion, got[-1]
            completion = completion.model_copy(update={"usage": _added(first.usage, completion.usage)})
            still = [c for c in completion.tool_calls if self.toolbox.repeat_of(c, ctx)]
            if still and len(still) == len(completion.tool_calls):
                # Ruled out and asked for again (or another call already answered): running it
                # would only be refused. The calls are dropped and the next step is the answer.
                yield ctx.event(
                    ev.Notice,
                    text=f"Step {ctx.step} asked again for {call_text(still[0].name, still[0].arguments)} with it "
                    f"ruled out; step {ctx.step + 1} answers with the evidence it has.",
                    level="warning",
                    topic="repeat-loop",
                )
                completion = completion.model_copy(update={"tool_calls": []})
                ctx.answer_next = step.again = True
        step.usage, step.calls, step.text = completion.usage, completion.tool_calls, completion.text
        yield ctx.event(
            ev.AssistantMessage,
            text=completion.text,
            step=ctx.step,
            tool_calls=[{"id": c.id, "name": c.name, "arguments": c.arguments} for c in step.calls],
        )

    def _answered_this_turn(self, ctx: TurnContext, tools: list[ToolSpec]) -> list[ToolCall]:
        """Every call of an offered tool this turn already made that asking again would waste
        (what the retry rules out besides the repeat itself, so it cannot pick another one)."""
        offered = {t.name for t in tools}
        out: list[ToolCall] = []
        seen: set[str] = set()
        for name, args in _calls_this_turn(ctx):
            key = _call_key(name, args)
            if name not in offered or key in seen:
                continue
            seen.add(key)
            call = ToolCall(id=key, name=name, arguments=args)
            if not self.toolbox.repeat_of(call, ctx):
                continue
            out.append(call)
            # The same call as a model may write it again: without an argument the dispatcher
            # fills in with the same value (a default, the session's namespace).
            for k in args:
                short = {a: v for a, v in args.items() if a != k}
                variant = ToolCall(id=_call_key(name, short), name=name, arguments=short)
                if variant.id not in seen and self.toolbox.repeat_of(variant, ctx):
                    seen.add(variant.id)
                    out.append(variant)
        return out

    async def _reply(
        self, ctx: TurnContext, step: Step, stream: AsyncIterator[ModelChunk], got: list[Completion]
    ) -> AsyncIterator[Any]:
        """One streamed reply: its text as deltas, its completion appended to `got`."""
        m0 = time.perf_counter()
        completion: Completion | None = None
        held = _HeldBack(self.redact)
        try:
            while True:
                try:
                    chunk = await self._anext(stream, ctx.cancelled)
                except StopAsyncIteration:
                    break
                if isinstance(chunk, TextDelta):
                    shown = held.feed(chunk.text)
                    if shown:
                        yield ctx.event(ev.AssistantDelta, text=shown, step=ctx.step)
                else:
                    completion = chunk
            rest = held.flush()
            if rest:
                yield ctx.event(ev.AssistantDelta, text=rest, step=ctx.step)
        finally:
            aclose = getattr(stream, "aclose", None)
            if aclose is not None:
                try:
                    await aclose()
                except Exception:  # noqa: BLE001 - closing a finished stream must not fail the step
                    pass
        step.outside += time.perf_counter() - m0
        if completion is None:
            raise ModelError("the model ended its reply without a completion", hint="try again")
        got.append(completion)

    async def _run_calls(self, ctx: TurnContext, step: Step) -> AsyncIterator[Any]:
        """The step's calls, one after another, through the toolbox."""
        for call in step.calls:
            async for e in self._dispatch(call, ctx):
                yield e

    async def critic_review(self, ctx: TurnContext, step: Step) -> AsyncIterator[Any]:
        """Hook: the plan critic reads the step's writes before any runs (once a turn, and every
        time for a plan with a dangerous call: a delete the critic held back does not pass on the
        second try); a plan it asks to revise is held back, and the model reads the critique as
        each call's result."""
        writes = [c for c in step.calls if self.toolbox.risk_of(c.name) in ("write", "dangerous")]
        dangerous = any(self.toolbox.risk_of(c.name) == "dangerous" for c in writes)
        if not writes or self.reviewer is None or (ctx.reviewed and not dangerous):
            return
        plan_id = uuid.uuid4().hex[:8]
        yield ctx.event(
            ev.PlanProposed,
            plan_id=plan_id,
            steps=[{"tool": c.name, "arguments": c.arguments} for c in writes],
            rationale=step.text,
        )
        verdict, findings, suggested = await self.reviewer.review(writes, ctx)
        yield ctx.event(ev.CriticVerdict, plan_id=plan_id, verdict=verdict, findings=findings, suggested=suggested)
        if verdict == "ok":
            return
        ctx.reviewed, step.held = True, True
        note = "Plan not executed. The critic asks you to revise it: " + "; ".join(findings)
        for c in step.calls:
            yield ctx.event(
                ev.ToolCallFinished,
                call_id=c.id,
                tool=c.name,
                status="blocked",
                duration_ms=0.0,
                summary="held back by the plan critic",
                output=note,
                step=ctx.step,
            )

    async def follow_up_reads(self, ctx: TurnContext, step: Step) -> AsyncIterator[Any]:
        """Hook: what the model's reads turned up can ask for reads of their own (a pod it described
        is crash-looping: the terminated container's log), run as the opening's are: read-only,
        through the same dispatcher and policy, as step 0 (the engine's own reads)."""
        if not step.calls:
            return
        current, ctx.step = ctx.step, 0
        try:
            async for e in self._follow_ups(ctx, rounds=1, summary=False):
                yield e
        finally:
            ctx.step = current

    async def fix_check(self, ctx: TurnContext, step: Step) -> AsyncIterator[Any]:
        """Hook: the answer's fix is a call of a tool the session can run, or says that no available
        action can make it (engine.answers). A fix in words alone, or a call of a tool no pack has,
        gets a notice, and once a turn the model is asked to restate it; a fix written as a call of a
        write tool with its arguments is offered to the faces (FixOffered: one key runs it through
        the same approval). An answer in a turn where the model called a write is not checked: the
        fix was put as a call (run, denied or blocked)."""
        if self.config.answer_schema is not None:
            return
        if sum(ch.isalpha() for ch in step.text) < 3:
            yield ctx.event(ev.Notice, text=self._no_answer(step.text), level="warning", topic="no-answer")
            return
        wrote = _asked_for_a_write(ctx, self.toolbox.risk_of)
        check = check_answer(step.text, self.toolbox.all_tool_names())
        if not check.problem or wrote:
            offer = self._offer_fix(step.text)
            if offer is not None and not _made_this_turn(ctx, offer["tool"], offer["arguments"]):
                yield ctx.event(ev.FixOffered, **offer)
            return
        if ctx.answer_checked:
            return
        ctx.answer_checked = True
        left = ctx.step < self.config.max_steps
        then = (
            "the model is asked once to restate it as an action it can run, or to say that none can."
            if left
            else "no step of this turn is left to ask again."
        )
        yield ctx.event(ev.Notice, text=f"The answer {check.problem}; {then}", level="warning", topic="answer-check")
        if left:
            ctx.requests.append(restate_request(check))
            step.again = True

    def _no_answer(self, text: str) -> str:
        """What the user is told when the model's answer has no words: what the checks found instead."""
        said = f" ({text.strip()[:20]!r})" if text.strip() else ""
        ranked = self.diagnoser.ranked()[:3] if self.diagnoser is not None else []
        if not ranked:
            return f"The model gave no usable answer{said}, and the engine's checks found nothing; ask again or narrow the question."
        return f"The model gave no usable answer{said}. What the engine's checks found, strongest first: " + "; ".join(
            f"{f.cause} on {f.object} ({f.evidence[:120]})" for f in ranked
        )

    def _offer_fix(self, text: str) -> dict[str, Any] | None:
        """The answer's fix as a call a face can run with one key: a write or dangerous tool of this
        session, its required arguments all given; None otherwise."""
        call = proposed_call(text, self.toolbox.all_tool_names())
        if call is None:
            return None
        risk = self.toolbox.risk_of(call.tool)
        lookup = getattr(self.toolbox, "tool", None)  # the product's Toolbox; a bare one checks nothing here
        tool = lookup(call.tool) if callable(lookup) else None
        required = (tool.parameters.get("required") or []) if tool is not None else []
        if risk == "read" or any(r not in call.arguments for r in required):
            return None
        return {"tool": call.tool, "arguments": call.arguments, "written": call.written, "risk": risk}

    async def triage_opening(self, ctx: TurnContext, step: Step) -> AsyncIterator[Any]:
        """Hook: the triage playbook's reads and the follow-ups their findings ask for."""
        if self.config.opening:
            async for e in self._opening(ctx):
                yield e

    def _step_finished(self, ctx: TurnContext, s0: float, outside: float, u: Any) -> Any:
        total = time.perf_counter() - s0
        return ctx.event(
            ev.StepFinished,
            step=ctx.step,
            duration_ms=total * 1000,
            prompt_tokens=u.prompt_tokens,
            completion_tokens=u.completion_tokens,
            cached_tokens=u.cached_tokens,
            cost_usd=u.cost_usd,
            engine_ms=max(0.0, (total - outside) * 1000),
        )

    def _over_budget(self, totals: dict[str, Any], t0: float) -> str:
        cfg = self.config
        used = totals["prompt"] + totals["completion"]
        if used >= cfg.max_tokens:
            return f"Token budget for this turn spent: {used:,} of {cfg.max_tokens:,}."
        if totals["cost"] >= cfg.max_cost_usd:
            return f"Cost budget for this turn spent: ${totals['cost']:.2f} of ${cfg.max_cost_usd:.2f}."
        wall = time.perf_counter() - t0
        if wall >= cfg.max_wall_s:
            return f"Time budget for this turn spent: {wall:.0f}s of {cfg.max_wall_s:.0f}s."
        return ""


SAME_TOOL_STEPS = 3
"""Steps in a row asking only for the same tool (other arguments each time) before the next answers."""
STRONG_FINDING = 0.7
"""A finding this heavy names a cause on its own (the catalogue's documented signals weigh 0.75–0.9)."""


def _call_key(name: str, arguments: dict[str, Any]) -> str:
    """One call's identity: its tool and its arguments, whole."""
    return name + json.dumps(arguments, sort_keys=True, default=str)


def _calls_this_turn(ctx: TurnContext) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every call the model (or the engine, at step 0) asked for in this turn: (tool, arguments)."""
    for e in ctx.events:
        if isinstance(e, ev.AssistantMessage) and e.turn == ctx.turn:
            for c in e.tool_calls:
                yield str(c.get("name")), dict(c.get("arguments") or {})


def _made_this_turn(ctx: TurnContext, name: str, arguments: dict[str, Any]) -> bool:
    """The model already asked for exactly this call in this turn (run, denied or blocked alike)."""
    key = _call_key(name, arguments)
    return any(_call_key(n, a) == key for n, a in _calls_this_turn(ctx))


def _asked_for_a_write(ctx: TurnContext, risk_of: Callable[[str], str]) -> bool:
    """The model called a write or dangerous tool in this turn (run, denied or blocked alike)."""
    return any(risk_of(n) != "read" for n, _ in _calls_this_turn(ctx))


def _added(a: Usage, b: Usage) -> Usage:
    return Usage(
        prompt_tokens=a.prompt_tokens + b.prompt_tokens,
        completion_tokens=a.completion_tokens + b.completion_tokens,
        cached_tokens=a.cached_tokens + b.cached_tokens,
        cost_usd=a.cost_usd + b.cost_usd,
    )


def _signature(calls: list[ToolCall]) -> tuple[tuple[str, str], ...]:
    """The calls of one step, order aside: tool names and canonical arguments."""
    return tuple(sorted((c.name, json.dumps(c.arguments, sort_keys=True, default=str)) for c in calls))


@dataclass
class _Stop:
    reason: str


async def _in_thread(fn: Callable[..., T], *args: Any) -> T:
    """Run `fn` in a worker thread, then carry back the context variables it set (the context
    builder marks itself active for the tools of this turn, e.g. recall_detail)."""
    import contextvars

    snapshot = contextvars.copy_context()
    result = await asyncio.to_thread(snapshot.run, fn, *args)
    for var, value in snapshot.items():
        if var.get(None) is not value:
            var.set(value)
    return result
