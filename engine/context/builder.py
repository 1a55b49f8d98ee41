"""The compacting context builder: the prompt for this model's window, assembled in tiers.

Tiers, from most to least detail:
  0 verbatim   the message as it happened (tool outputs trimmed at arrival to the action's
               projection and to a per-output cap);
  1 reduced    an old tool output cut to its key lines (errors, reasons, status words);
  2 summarised the step as one extractive line in the system message (what was asked, which
               calls ran, their status and refs);
  3 dropped    only its entry in the "no longer held in full" list remains.
The fact ledger is pinned above all of them and is never rewritten. Every item that loses
detail is recorded once as a DetailDropped event and listed, with its ref, in the prompt, so
`recall_detail(ref)` can bring it back.

Work is incremental: each event is read, counted and shortened once (cached by seq); a build
walks the cached numbers, so a step costs O(groups), not O(text).
"""

from __future__ import annotations

import contextvars
import json
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from engine import events as ev
from engine.context.ledger import Ledger
from engine.context.tokens import TokenCounter
from engine.context.trim import ProjectionError, call_line, digest, first_sentences, key_lines, project_json
from engine.loop import tool_message_text
from engine.models.base import Message, Model, ToolCall, ToolSpec

if TYPE_CHECKING:
    from engine.loop import TurnContext

VERBATIM, REDUCED, SUMMARISED, DROPPED = 0, 1, 2, 3

NOTE_HEAD = "[Lantern context notes, not from the user: the facts so far and what is no longer held in full]\n\n"

ACTIVE: contextvars.ContextVar[CompactingContext | None] = contextvars.ContextVar(
    "lantern_active_context", default=None
)
"""The builder of the turn in progress; tool calls run in tasks that inherit it (recall_detail reads it)."""
_ACTION = {REDUCED: "trimmed", SUMMARISED: "summarised", DROPPED: "dropped"}
_LEVEL_WORD = {0: "trimmed at arrival", REDUCED: "reduced to key lines", SUMMARISED: "summarised", DROPPED: "dropped"}


@dataclass
class ContextConfig:
    """Knobs of the compacting builder."""

    share: float = 0.6
    """Share of the model's window the prompt may use (the rest is room for the answer)."""
    recent_groups: int = 4
    """Newest steps (assistant message with its results) kept verbatim before any older one is touched."""
    max_output_share: float = 0.25
    """A single tool output is trimmed at arrival to this share of the budget."""
    reduced_tokens: int = 120
    """Size of an old output reduced to its key lines."""
    summary_chars: int = 200
    """Characters of a message kept in its summary line."""
    summary_share: float = 0.2
    """Summary lines may take at most this share of the budget; past it the oldest are dropped (and listed)."""
    low_water: float = 0.85
    """When compaction is needed, compact to this share of the budget, so the next steps reuse the prompt prefix."""
    projections: dict[str, list[str]] = field(default_factory=dict)
    """Tool name → field paths kept at arrival (overrides the tool's meta['projection'])."""
    pin_ledger: bool = True
    """Carry the fact ledger in the prompt (off only for the bench's summary-only baseline)."""
    list_drops: bool = True
    """Carry the 'no longer held in full' list (off only for the bench's baselines)."""
    layout: str = "auto"
    """Where the ledger and drop list go: 'system' (in the system message), 'tail' (a note after the
    history, so the prefix stays cacheable), or 'auto' (tail for the embedded local model)."""


@dataclass
class Item:
    """One content-bearing event, with its text at each tier (computed once)."""

    seq: int
    role: str
    """user | assistant | tool."""
    step: int
    turn: int
    name: str = ""
    """Tool name (tool items)."""
    call_id: str = ""
    text: str = ""
    """The full text as history_messages would give it."""
    tokens: int = 0
    arrival: str = ""
    """Text after arrival trimming (== text unless trimmed)."""
    arrival_tokens: int = 0
    reduced: str = ""
    reduced_tokens: int = 0
    summary: str = ""
    """This item's part of its group's summary line."""
    calls: list[ToolCall] = field(default_factory=list)
    calls_tokens: int = 0
    arrival_why: str = ""
    """How the arrival trim shortened it ('projection', 'key lines')."""

    @property
    def ref(self) -> str:
        """The recall reference of this item."""
        return f"e{self.seq}"


@dataclass
class Group:
    """A unit that stays together: a user message, or an assistant message with its tool results."""

    key: int
    """Seq of its first event."""
    kind: str
    """user | assistant | note (a tool result without its call)."""
    turn: int
    step: int
    items: list[Item] = field(default_factory=list)
    cost: list[int] = field(default_factory=lambda: [0, 0, 0, 0])
    """Estimated prompt tokens at each tier, drop-list entries included."""
    summary_line: str = ""
    dirty: bool = True


@dataclass
class Compaction:
    """The result of one assembly: the messages and what it cost."""

    messages: list[Message]
    used: int
    """Tokens of the request, by the model's own counter (tool schemas included)."""
    budget: int
    window: int
    tiers: dict[str, int]
    dropped: list[dict[str, Any]]
    """Every item not held in full: {ref, what, from_step, tokens, action, level}."""
    new_drops: list[dict[str, Any]]
    """Items that lost detail in this assembly (DetailDropped is emitted for these)."""
    over_budget: bool = False
    ms: float = 0.0
    """Time spent assembling (the model's final count included)."""

    @property
    def text(self) -> str:
        """Everything the model will read, as one text (for fact checks)."""
        parts = []
        for m in self.messages:
            parts.append(m.content)
            for c in m.tool_calls:
                parts.append(f"{c.name} {json.dumps(c.arguments, ensure_ascii=False)}")
        return "\n".join(parts)


class CompactingContext:
    """ContextBuilder with tiers, a pinned fact ledger, explicit drops and a gauge."""

    def __init__(
        self,
        model: Model,
        config: ContextConfig | None = None,
        *,
        counter: TokenCounter | None = None,
        toolbox: Any = None,
    ) -> None:
        self.model = model
        """The model whose window and tokenizer set the budget."""
        self.config = config or ContextConfig()
        """Knobs."""
        if not 0.05 <= self.config.share <= 1.0:
            raise ValueError(f"context share must be between 0.05 and 1.0, got {self.config.share}")
        if self.config.layout not in ("auto", "system", "tail"):
            raise ValueError(f"context layout must be auto, system or tail, got {self.config.layout!r}")
        self.counter = counter or TokenCounter(model)
        """Token counting (exact or calibrated)."""
        self.ledger = Ledger()
        """Facts of the session so far."""
        self.toolbox = toolbox
        """Where tool projections are looked up (set from the session on first build)."""
        self.window = int(getattr(model, "context_window", 0) or 8192)
        """The model's window in tokens."""
        self.budget = max(256, int(self.window * self.config.share))
        """Tokens the prompt may use."""
        self.events: list[Any] = []
        """The session events seen at the last build (recall_detail reads them)."""
        self.timings_ms: list[float] = []
        """Assembly time of every build (the bench reports them)."""
        self._reset()

    def _reset(self) -> None:
        self._items: dict[int, Item] = {}
        self._groups: list[Group] = []
        self._by_call: dict[str, Group] = {}
        self._n_read = 0
        self._first_seq: int | None = None
        self._floor: dict[int, int] = {}
        self._emitted: set[int] = set()
        self._ledger_text = ""
        self._ledger_version = -1
        self._ledger_tokens = 0
        self._drop_cost: dict[tuple[int, int], int] = {}
        self._lossy_cache: dict[tuple[int, int, int], list[tuple[Item, int]]] = {}
        self._records_cache: dict[tuple[int, int, int], list[dict[str, Any]]] = {}
        self._scale = 1.0
        self._warned = False
        self.ledger = Ledger()

    # -- reading events --------------------------------------------------------------------------
    def _projection(self, tool: str) -> list[str]:
        if tool in self.config.projections:
            return list(self.config.projections[tool])
        tb = self.toolbox
        t = tb.tool(tool) if tb is not None else None
        return list(t.meta.projection) if t is not None else []

    def _cap(self) -> int:
        return max(200, int(self.budget * self.config.max_output_share))

    def _read(self, events: list[Any]) -> None:
        """Fold events not yet seen into items and groups (each event once)."""
        if events and (
            self._first_seq is not None
            and getattr(events[0], "seq", None) != self._first_seq
            or len(events) < self._n_read
        ):
            self._reset()
        if events and self._first_seq is None:
            self._first_seq = getattr(events[0], "seq", None)
        count = self.counter.text
        for e in events[self._n_read :]:
            kind = getattr(e, "kind", "")
            if kind == "user-message":
                item = Item(e.seq, "user", 0, e.turn, text=e.text)
                self._finish_item(item)
                g = Group(e.seq, "user", e.turn, 0, [item])
                self._groups.append(g)
                self.ledger.add(e.text, e.seq)
            elif kind == "assistant-message":
                calls = [ToolCall(id=c["id"], name=c["name"], arguments=c.get("arguments") or {}) for c in e.tool_calls]
                item = Item(e.seq, "assistant", e.step, e.turn, text=e.text, calls=calls)
                item.calls_tokens = sum(
                    count(c.name) + count(json.dumps(c.arguments, ensure_ascii=False, default=str)) + 3 for c in calls
                )
                self._finish_item(item)
                g = Group(e.seq, "assistant", e.turn, e.step, [item])
                self._groups.append(g)
                for c in calls:
                    self._by_call[c.id] = g
                self.ledger.add(
                    e.text + "\n" + "\n".join(json.dumps(c.arguments, ensure_ascii=False, default=str) for c in calls),
                    e.seq,
                    step=e.step,
                    args=_merged_args(calls),
                )
            elif kind == "tool-call-finished":
                item = Item(e.seq, "tool", e.step, e.turn, name=e.tool, call_id=e.call_id, text=tool_message_text(e))
                self._finish_item(item, output=e.output, status=e.status)
                found = self._by_call.get(e.call_id)
                if found is None or any(i.call_id == e.call_id for i in found.items):
                    found = Group(e.seq, "note", e.turn, e.step, [])
                    self._groups.append(found)
                found.items.append(item)
                found.dirty = True
                self.ledger.add(item.text, e.seq, step=e.step)
        self._n_read = len(events)
        for g in self._groups:
            if g.dirty:
                self._cost(g)

    def _finish_item(self, item: Item, *, output: str | None = None, status: str = "ok") -> None:
        count = self.counter.text
        item.tokens = count(item.text)
        item.arrival, item.arrival_tokens = item.text, item.tokens
        cap = self._cap()
        if item.role == "tool":
            paths = self._projection(item.name)
            if paths and output:
                try:
                    projected = project_json(output, paths)
                except ProjectionError:
                    projected = None
                if projected is not None and len(projected) < len(output):
                    head = item.text[: len(item.text) - len(output)] if item.text.endswith(output) else ""
                    item.arrival = head + projected
                    item.arrival_why = "projection"
            if count(item.arrival) > cap:
                item.arrival = key_lines(item.arrival, cap, count)
                item.arrival_why = (item.arrival_why + "+" if item.arrival_why else "") + "key lines"
            if item.arrival != item.text:
                item.arrival = (
                    f"[trimmed at arrival ({item.arrival_why}); recall_detail('{item.ref}') for all of it]\n"
                    + item.arrival
                )
            item.arrival_tokens = count(item.arrival)
            red = digest(item.arrival if item.arrival_why else item.text, self.config.reduced_tokens, count)
            item.reduced = (
                f"[{status}; reduced to key lines, {item.tokens:,} tokens in full: recall_detail('{item.ref}')]\n{red}"
            )
            item.reduced_tokens = count(item.reduced)
            item.summary = f"{item.name} → {status} [{item.ref}]"
        elif item.role == "user":
            if item.tokens > cap:
                item.arrival = (
                    key_lines(item.text, cap, count)
                    + f"\n[message trimmed at arrival; recall_detail('{item.ref}') for all of it]"
                )
                item.arrival_tokens = count(item.arrival)
                item.arrival_why = "key lines"
            item.summary = first_sentences(item.text, self.config.summary_chars)
        else:
            item.summary = first_sentences(item.text, self.config.summary_chars)

    def _cost(self, g: Group) -> None:
        """Tokens the group costs at each tier (messages + summary line + drop entries)."""
        count = self.counter.text
        pm = self.counter.per_message
        c0 = c1 = 0
        for it in g.items:
            extra = it.calls_tokens
            c0 += pm + it.arrival_tokens + extra
            c1 += (
                pm
                + (
                    it.reduced_tokens
                    if it.role == "tool" and it.reduced_tokens < it.arrival_tokens
                    else it.arrival_tokens
                )
                + extra
            )
        g.summary_line = self._summary_line(g)
        c2 = count(g.summary_line) + 1
        g.cost = [
            c0 + self._drops_cost(g, 0),
            c1 + self._drops_cost(g, 1),
            c2 + self._drops_cost(g, 2),
            self._drops_cost(g, 3),
        ]
        # a missing result costs its placeholder message
        g.dirty = False

    def _summary_line(self, g: Group) -> str:
        if g.kind == "user":
            return f"- turn {g.turn} user [{g.items[0].ref}]: {g.items[0].summary}"
        head = g.items[0]
        parts = []
        if g.kind == "assistant":
            parts.append(
                f"- step {g.step} assistant [{head.ref}]: {head.summary}"
                if head.summary
                else f"- step {g.step} assistant [{head.ref}]:"
            )
            results = {i.call_id: i for i in g.items[1:]}
            for c in head.calls:
                r = results.get(c.id)
                parts.append(
                    f"{call_line(c.name, c.arguments)} → " + (r.summary.split(" → ", 1)[1] if r else "no result")
                )
        else:
            parts.append("- " + "; ".join(i.summary for i in g.items))
        return " | ".join(parts)

    def _lossy(self, g: Group, level: int) -> list[tuple[Item, int]]:
        """(item, tokens no longer held) for each item that loses detail at `level` (cached)."""
        key = (g.key, level, len(g.items))
        hit = self._lossy_cache.get(key)
        if hit is None:
            hit = self._lossy_cache[key] = self._lossy_uncached(g, level)
        return hit

    def _lossy_uncached(self, g: Group, level: int) -> list[tuple[Item, int]]:
        out = []
        for it in g.items:
            if level == DROPPED:
                out.append((it, it.tokens))
            elif level == SUMMARISED:
                kept = it.summary if it.role != "tool" else ""
                if it.role == "tool" or kept != " ".join(it.text.split()):
                    out.append((it, max(1, it.tokens - self.counter.text(kept))))
            elif level == REDUCED and it.role == "tool" and it.reduced_tokens < it.arrival_tokens:
                out.append((it, max(1, it.tokens - it.reduced_tokens)))
            elif it.arrival != it.text:
                out.append((it, max(1, it.tokens - it.arrival_tokens)))
        return out

    def _drop_records(self, g: Group, lv: int) -> list[dict[str, Any]]:
        """The drop-list records of a group at a tier (cached: the same every step it stays there)."""
        key = (g.key, lv, len(g.items))
        hit = self._records_cache.get(key)
        if hit is not None:
            return hit
        out = []
        calls = {c.id: c for c in g.items[0].calls} if g.kind == "assistant" else {}
        for it, lost in self._lossy(g, lv):
            level = lv
            if (
                lv in (VERBATIM, REDUCED)
                and it.arrival != it.text
                and not (lv == REDUCED and it.role == "tool" and it.reduced_tokens < it.arrival_tokens)
            ):
                level = 0
            out.append(
                {
                    "ref": it.ref,
                    "seq": it.seq,
                    "what": _what(it, calls.get(it.call_id)),
                    "source": it.name if it.role == "tool" else it.role,
                    "from_step": it.step,
                    "tokens": lost,
                    "action": _ACTION.get(level, "trimmed"),
                    "level": level,
                    "entry": self._drop_entry(it, lost),
                }
            )
        self._records_cache[key] = out
        return out

    def _drops_cost(self, g: Group, level: int) -> int:
        key = (g.key, level, len(g.items))
        c = self._drop_cost.get(key)  # type: ignore[arg-type]
        if c is None:
            c = (
                sum(self.counter.text(self._drop_entry(it, lost)) + 1 for it, lost in self._lossy(g, level))
                if self.config.list_drops
                else 0
            )
            self._drop_cost[key] = c  # type: ignore[index]
        return c

    @staticmethod
    def _drop_entry(it: Item, lost: int) -> str:
        return f"{it.ref} {_k(lost)}"

    # -- planning --------------------------------------------------------------------------------
    def _plan(self, fixed: int, target: int, protect_from: int, current_user: int | None) -> tuple[list[int], int]:
        """Tier per group: oldest first, one tier at a time, until the estimate fits `target`."""
        groups = self._groups
        levels = [self._floor.get(g.key, VERBATIM) for g in groups]
        scale = self._scale

        def total() -> float:
            return fixed + scale * sum(g.cost[lv] for g, lv in zip(groups, levels))

        t = total()
        if t <= target:
            return levels, int(t)
        goal = target * self.config.low_water
        movable = [i for i in range(len(groups)) if i < protect_from and groups[i].key != current_user]
        # Summary lines are capped, so a long session keeps reduced outputs of its middle steps
        # rather than one line for every step since the start: past the cap the oldest lines go.
        cap = self.budget * self.config.summary_share
        summarised = [i for i in movable if levels[i] == SUMMARISED]
        s_tokens = sum(groups[i].cost[SUMMARISED] for i in summarised)
        for tier in (REDUCED, SUMMARISED, DROPPED):
            for i in movable:
                if t <= goal:
                    break
                if levels[i] < tier:
                    g = groups[i]
                    if g.kind == "user" and tier == REDUCED:
                        continue
                    t += scale * (g.cost[tier] - g.cost[levels[i]])
                    levels[i] = tier
                    if tier == SUMMARISED:
                        summarised.append(i)
                        s_tokens += g.cost[SUMMARISED]
                        while s_tokens > cap and len(summarised) > 1:
                            j = summarised.pop(0)
                            if levels[j] != SUMMARISED:
                                continue
                            t += scale * (groups[j].cost[DROPPED] - groups[j].cost[SUMMARISED])
                            s_tokens -= groups[j].cost[SUMMARISED]
                            levels[j] = DROPPED
        # still over: the recent steps give up detail too, oldest first; the newest step last of all
        if t > target:
            last = len(groups) - 1
            recent = [i for i in range(protect_from, last) if groups[i].key != current_user]
            for tier in (REDUCED, SUMMARISED, DROPPED):
                for i in recent:
                    if t <= target:
                        break
                    g = groups[i]
                    if levels[i] < tier and not (g.kind == "user" and tier == REDUCED):
                        t += scale * (g.cost[tier] - g.cost[levels[i]])
                        levels[i] = tier
            if last >= 0 and groups[last].key != current_user:
                for tier in (REDUCED, SUMMARISED):
                    if t > target and levels[last] < tier and not (groups[last].kind == "user" and tier == REDUCED):
                        t += scale * (groups[last].cost[tier] - groups[last].cost[levels[last]])
                        levels[last] = tier
        return levels, int(t)

    # -- rendering -------------------------------------------------------------------------------
    def _render(self, system: str, levels: list[int]) -> tuple[list[Message], dict[str, int], list[dict[str, Any]]]:
        count = self.counter.text
        if self._ledger_version != self.ledger.version:
            self._ledger_text = self.ledger.render()
            self._ledger_tokens = count(self._ledger_text)
            self._ledger_version = self.ledger.version
        summaries: list[str] = []
        drops: list[dict[str, Any]] = []
        body: list[Message] = []
        recent_tokens = 0
        pm = self.counter.per_message
        for g, lv in zip(self._groups, levels):
            drops.extend(self._drop_records(g, lv))
            if lv >= SUMMARISED:
                if lv == SUMMARISED:
                    summaries.append(g.summary_line)
                continue
            msgs = self._messages(g, lv)
            body.extend(msgs)
            recent_tokens += g.cost[lv] - self._drops_cost(g, lv)
        if body and body[0].role != "user":
            body.insert(
                0,
                Message(
                    role="user", content="(Continuing the session; earlier turns are summarised in the system message.)"
                ),
            )
        ledger_text, ledger_tokens = self._ledger_text, self._ledger_tokens
        if ledger_text and self.config.pin_ledger and self._layout() == "tail":
            # In the tail every token is read again at every step (on two cores, ~1 s per 45
            # tokens): pin only what the history no longer shows verbatim.
            ledger_text = self.ledger.render_missing(_held_text(body))
            ledger_tokens = count(ledger_text) if ledger_text else 0
        ledger_block = ""
        if ledger_text and self.config.pin_ledger:
            ledger_block = "## Fact ledger (pinned, exact values; [eN] = the event it came from)\n" + ledger_text
        summary_text = ""
        if summaries:
            summary_text = "## Earlier in this session (summarised)\n" + "\n".join(summaries)
        drop_text = ""
        if drops and self.config.list_drops:
            drop_text = _drop_block(drops)
        if self._layout() == "tail":
            # The system message and history stay a stable prefix (prompt caches, llama.cpp's KV
            # cache); what changes every step rides in one note at the end.
            parts = [system, summary_text]
            notes = "\n\n".join(p for p in (ledger_block, drop_text) if p)
            if notes:
                note = Message(role="user", content=NOTE_HEAD + notes, note=True)
                if body and body[-1].role == "user":
                    body.insert(len(body) - 1, note)
                else:
                    body.append(note)
        else:
            parts = [system, ledger_block, summary_text, drop_text]
        parts = [p for p in parts if p]
        sys_msg = Message(role="system", content="\n\n".join(parts))
        tiers = {
            "system": count(system) + pm,
            "ledger": ledger_tokens if self.config.pin_ledger else 0,
            "summaries": count(summary_text) if summary_text else 0,
            "drops": count(drop_text) if drop_text else 0,
            "recent": recent_tokens,
        }
        return [sys_msg, *body], tiers, drops

    def _layout(self) -> str:
        layout = self.config.layout
        if layout == "auto":
            name = str(getattr(self.model, "name", ""))
            return "tail" if name == "local" or name.startswith(("local:", "local/", "llama")) else "system"
        return layout

    def _messages(self, g: Group, lv: int) -> list[Message]:
        if g.kind == "user":
            return [Message(role="user", content=g.items[0].arrival)]
        out: list[Message] = []
        if g.kind == "assistant":
            head = g.items[0]
            out.append(Message(role="assistant", content=head.text, tool_calls=head.calls))
            results = {i.call_id: i for i in g.items[1:]}
            for c in head.calls:
                r = results.get(c.id)
                if r is None:
                    # providers reject a tool call without its result
                    out.append(
                        Message(
                            role="tool",
                            content="[no result recorded: the call did not finish]",
                            tool_call_id=c.id,
                            name=c.name,
                        )
                    )
                    continue
                text = r.reduced if lv == REDUCED and r.reduced_tokens < r.arrival_tokens else r.arrival
                out.append(Message(role="tool", content=text, tool_call_id=r.call_id, name=r.name))
        else:
            for r in g.items:
                out.append(
                    Message(
                        role="user",
                        content=f"[result of {r.name} ({r.ref}), whose call is no longer in the history]\n{r.arrival}",
                    )
                )
        return out

    # -- the public entry points -------------------------------------------------------------------
    def compact(self, events: list[Any], system: str, tools: list[ToolSpec] | None = None) -> Compaction:
        """Assemble the prompt for `events` within the budget; pure apart from this builder's caches."""
        t0 = time.perf_counter()
        tools = tools or []
        self.events = events
        self._read(events)
        count = self.counter.text
        tool_tokens = self.counter.tools(tools)
        current_user = next((g.key for g in reversed(self._groups) if g.kind == "user"), None)
        protect_from = self._protect_from()
        target = self.budget
        result: tuple[list[Message], dict[str, int], list[dict[str, Any]]] | None = None
        used = 0
        levels: list[int] = []
        for _attempt in range(4):
            if self._ledger_version != self.ledger.version:
                self._ledger_text = self.ledger.render()
                self._ledger_tokens = count(self._ledger_text)
                self._ledger_version = self.ledger.version
            ledger_tokens = self._ledger_tokens if self.config.pin_ledger else 0
            fixed = tool_tokens + count(system) + self.counter.per_message + ledger_tokens + 60
            levels, estimate = self._plan(fixed, target, protect_from, current_user)
            result = self._render(system, levels)
            used = self.counter.request(result[0], tools)
            if estimate > 0 and used > 0:
                # keep the estimate honest: the model's count corrects the ratio for the next plan
                self._scale = max(0.5, min(3.0, self._scale * used / max(1, estimate)))
            if used <= self.budget:
                break
            target = max(1, target - (used - self.budget) - 16)
        assert result is not None
        messages, tiers, drops = result
        for g, lv in zip(self._groups, levels):
            if lv > self._floor.get(g.key, VERBATIM):
                self._floor[g.key] = lv
        new = [d for d in drops if d["seq"] not in self._emitted]
        self._emitted.update(d["seq"] for d in new)
        tiers["tools"] = tool_tokens
        ms = (time.perf_counter() - t0) * 1000
        self.timings_ms.append(ms)
        return Compaction(
            messages, used, self.budget, self.window, tiers, drops, new, over_budget=used > self.budget, ms=ms
        )

    def _protect_from(self) -> int:
        """Index of the first group of the recent window (newest `recent_groups` steps)."""
        n = 0
        for i in range(len(self._groups) - 1, -1, -1):
            if self._groups[i].kind != "user":
                n += 1
                if n >= self.config.recent_groups:
                    return i
        return 0

    def build(self, ctx: TurnContext, system: str, tools: list[ToolSpec]) -> tuple[list[Message], list[Any]]:
        """The loop's ContextBuilder: messages for this step, plus DetailDropped and ContextGauge events."""
        if self.toolbox is None:
            self.toolbox = getattr(ctx.session, "toolbox", None)
        ACTIVE.set(self)
        c = self.compact(ctx.events, system, tools)
        out: list[Any] = []
        for d in c.new_drops:
            out.append(
                ctx.event(
                    ev.DetailDropped,
                    ref=d["ref"],
                    what=d["what"],
                    from_step=d["from_step"],
                    tokens=d["tokens"],
                    action=d["action"],
                )
            )
        if c.over_budget and not self._warned:
            self._warned = True
            out.append(
                ctx.event(
                    ev.Notice,
                    level="warning",
                    topic="context",
                    text=f"The prompt is over its budget ({c.used:,} of {c.budget:,} tokens) even fully compacted; the pinned fact ledger alone is {c.tiers.get('ledger', 0):,}.",
                )
            )
        out.append(
            ctx.event(
                ev.ContextGauge, used=c.used, budget=c.budget, window=c.window, tiers=c.tiers, dropped=len(c.dropped)
            )
        )
        return c.messages, out

    def find(self, ref: str) -> Any | None:
        """The event a ref ('e12' or '12') names, from the events of the last build."""
        r = ref.strip().lstrip("#")
        if r[:1] in ("e", "E"):
            r = r[1:]
        if not r.isdigit():
            return None
        seq = int(r)
        for e in self.events:
            if getattr(e, "seq", None) == seq:
                return e
        return None


def _what(it: Item, call: ToolCall | None) -> str:
    """What a drop is, for people: the call that produced an output, or whose message it was."""
    if it.role == "tool":
        return f"output of {call_line(call.name, call.arguments, 80) if call else it.name}"
    return f"{it.role} message (turn {it.turn})"


def _merged_args(calls: list[ToolCall]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for c in calls:
        for k, v in c.arguments.items():
            if isinstance(v, str) and k not in out:
                out[k] = v
    return out


def _k(n: int) -> str:
    return f"{n / 1000:.1f}k" if n >= 1000 else str(n)


def _drop_block(drops: list[dict[str, Any]]) -> str:
    """The short 'no longer held in full' list: refs grouped by what happened to them and by source."""
    by: dict[int, dict[str, list[str]]] = {}
    totals: dict[int, int] = {}
    for d in drops:
        source = d["source"]
        by.setdefault(d["level"], {}).setdefault(source, []).append(d["entry"])
        totals[d["level"]] = totals.get(d["level"], 0) + d["tokens"]
    lines = [
        "## No longer held in full",
        "Shortened to fit the window (ref and tokens no longer held); their facts stay in the ledger. "
        "Say so when you rely on one; recall_detail(ref) or re-running the tool brings the details back.",
    ]
    for level in (0, REDUCED, SUMMARISED, DROPPED):
        if level in by:
            groups = "; ".join(f"{src}: {', '.join(entries)}" for src, entries in by[level].items())
            lines.append(f"{_LEVEL_WORD[level]} ({_k(totals[level])} tokens): {groups}")
    return "\n".join(lines)


def _held_text(body: list[Message]) -> str:
    """Everything the prompt's history shows verbatim: message texts and the calls' arguments."""
    parts = []
    for m in body:
        parts.append(m.content or "")
        parts.extend(json.dumps(c.arguments, ensure_ascii=False, default=str) for c in m.tool_calls or [])
    return "\n".join(parts)
