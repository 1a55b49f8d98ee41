"""ToolSelector: the `select` half of the Toolbox seam, deciding which tool schemas to offer.

The set offered at a step is: pinned meta-tools (find_tools) + tools used or found in the last
`sticky_turns` turns + tools retrieved for this turn's rewritten query, above a confidence
threshold and within a schema-token budget. Within a turn the set only grows (a `find_tools`
call adds its results for the next step); between turns, tools that are neither retrieved nor
sticky are unloaded. Every change is a ToolSetChanged event with a reason per loaded tool.

A search asked again while its results are still offered (this turn, or an earlier one within
the sticky window; the query compared without case, punctuation or spacing) runs nothing: the
answer names what the first search loaded, and the loop counts the step as wasted (the local
model is asked once more with that call ruled out).
"""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from engine import events as ev
from engine.models.base import ToolCall, ToolSpec
from engine.retrieval.index import Doc, HybridIndex, doc_from_tool
from engine.retrieval.rewrite import Rewrite, Rewriter, exchanges_from_events, strip_filler
from engine.retrieval.search import Hit, HybridSearch, SearchConfig
from engine.retrieval.text import STOPWORDS, is_report, split_identifier, stem, terms
from engine.tools import Tool, ToolMeta, ToolOutput

if TYPE_CHECKING:
    from engine.loop import TurnContext

FIND_TOOLS = "find_tools"
"""Name of the always-offered meta-tool."""


def schema_tokens(spec: ToolSpec) -> int:
    """Approximate prompt tokens of one tool schema (JSON characters / 4, the usual rule of thumb)."""
    return max(1, len(json.dumps(spec.to_openai(), separators=(",", ":"))) // 4)


def change_verbs(tools: list[Tool]) -> dict[str, set[str]]:
    """The verbs that ask for each write or dangerous tool, read from the catalogue itself.

    A change tool's verbs are the stems of its action-name words that no read tool's name uses
    (rollout_restart → restart, since rollout_history is a read; delete_pod → delete, since
    list_pods is a read).
    """

    def name_words(t: Tool) -> set[str]:
        return {stem(w) for w in split_identifier(t.name.split(".", 1)[-1]) if w not in STOPWORDS}

    read_names = {w for t in tools if t.risk == "read" for w in name_words(t)}
    return {t.name: name_words(t) - read_names for t in tools if t.risk != "read"}


def command_words(tools: list[Tool]) -> set[str]:
    """Words that open a command to this catalogue: the first word of each action name and of
    each description (list, describe, restart, scale, mark…)."""
    out: set[str] = set()
    for t in tools:
        words = split_identifier(t.name.split(".", 1)[-1])[:1]
        words += (t.description or "").lower().split()[:1]
        out.update(w.strip(".,:;()") for w in words)
    return out - STOPWORDS


@dataclass
class Selection:
    """What `plan` decided for one request (no events; the selector and the benches use it)."""

    names: list[str]
    """Tools offered, in priority order: pinned, sticky, retrieved."""
    reasons: dict[str, str]
    query: str
    schema_tokens: int
    hits: list[Hit]
    past: dict[str, list[str]] = field(default_factory=dict)
    """Tool → the past requests that brought it (experience), for the tools offered."""


class ToolSelector:
    """Chooses the ToolSet for each step from all tools, with retrieval, stickiness and find_tools."""

    def __init__(
        self,
        tools: list[Tool],
        index: HybridIndex | None = None,
        *,
        budget_tokens: int = 4000,
        threshold: float = 0.4,
        max_tools: int = 9,
        min_tools: int = 3,
        sticky_turns: int = 2,
        cold_extra: int = 3,
        pinned: tuple[str, ...] = (FIND_TOOLS,),
        rewriter: Rewriter | None = None,
        search_config: SearchConfig | None = None,
        rewrite: bool = True,
        change_penalty: float = 0.5,
        runbooks: list[Doc] | None = None,
        runbook_checks: int = 3,
    ) -> None:
        self.tools: dict[str, Tool] = {}
        """Every tool known, by name."""
        self.index = index if index is not None else HybridIndex()
        """The hybrid index (tools are synced into it here)."""
        self.search = HybridSearch(self.index, search_config)
        """The fused retrieval pipeline."""
        self.budget_tokens = budget_tokens
        """Schema tokens allowed for retrieved tools (pinned and sticky ones always stay)."""
        self.threshold = threshold
        """A retrieved tool needs fused score ≥ threshold × the best score."""
        self.max_tools = max_tools
        """At most this many retrieved tools per turn."""
        self.min_tools = min_tools
        """At least this many retrieved tools (budget permitting) whatever the threshold says."""
        self.sticky_turns = sticky_turns
        """Tools used (or found) in the last N turns stay loaded."""
        self.cold_extra = cold_extra
        """Extra retrieved tools when nothing is known yet (no earlier turns, nothing sticky):
        the first request of an investigation is the vaguest ("checkout is slow"), and there is
        no conversation to narrow it, so the net is cast wider there and tighter later."""
        self.pinned = tuple(pinned)
        """Always offered."""
        self.rewriter = rewriter or Rewriter()
        """Standalone-query rewriting."""
        self.rewrite_enabled = rewrite
        """False: retrieve with the raw message (for ablations)."""
        self.change_penalty = change_penalty
        """Score factor for a write or dangerous tool when the request is a question or a symptom
        report (text.is_report) that does not use the tool's verb: "the reports job failed" is
        investigated with reads first, so delete/drain/undo do not take the reads' slots;
        commands ("kill the stuck pod", "tell the channel") and questions naming the verb ("why
        did it restart?") keep full scores. 1.0 turns this off."""
        self._offered: list[str] = []
        self._used: dict[str, int] = {}
        self._found: dict[str, tuple[int, str]] = {}
        self._searches: dict[str, tuple[int, list[str]]] = {}
        """Normalised find_tools query → (turn, tools it loaded)."""
        self._turn_plan: tuple[int, Selection] | None = None
        self._turn = 0
        self.runbook_checks = runbook_checks
        """How many of a matched runbook's first checks join the set (they take retrieved slots)."""
        self._runbooks: dict[str, Doc] = {}
        self.set_tools(tools)
        self.set_runbooks(runbooks or [])

    # -- catalogue --------------------------------------------------------------------------
    def set_tools(self, tools: list[Tool]) -> None:
        """Replace the catalogue (a pack was added, removed or changed): the index syncs by hash."""
        self.tools = {t.name: t for t in tools}
        docs = [doc_from_tool(t) for t in tools if t.name not in self.pinned]
        self.index.sync(docs, kinds=["tool"])
        self._tokens = {n: schema_tokens(t.spec) for n, t in self.tools.items()}
        self._verbs = change_verbs(list(self.tools.values()))
        self._command_words = command_words(list(self.tools.values()))
        self._turn_plan = None
        self._searches = {}

    def set_runbooks(self, docs: list[Doc]) -> None:
        """Replace the runbook table (playbooks): a request that matches one brings its first checks."""
        self._runbooks = {d.id: d for d in docs if d.kind == "runbook"}
        self.index.sync(list(self._runbooks.values()), kinds=["runbook"])
        self._turn_plan = None

    def runbook_for(self, query: str) -> Doc | None:
        """The runbook a symptom report or question matches, when the two rankings agree on it:
        BM25 (some of its symptom or keyword words are in the request) and dense (its meaning is
        the closest). Commands ("restart the api deployment") name their own tool and get none.
        A symptom report names no tool ("profile-svc returns 500 for every request"); the
        playbook for that symptom knows which reads come first."""
        if not self._runbooks or not query.strip() or not is_report(query, self._command_words):
            return None
        lexical = self.index.bm25(query, kind="runbook", k=1, fields=("keywords", "description"))
        if not lexical:
            return None
        dense = self.index.dense(self.index.embedder.query(strip_filler(query) or query), kind="runbook", k=1)
        if not dense or dense[0][0] != lexical[0][0]:
            return None
        return self._runbooks.get(lexical[0][0])

    def add_tool(self, tool: Tool) -> None:
        """Register one more tool (a pinned meta-tool such as find_tools, or a new action)."""
        self.set_tools([*self.tools.values(), tool])

    def reset(self) -> None:
        """Forget use, finds and the offered set (a new session)."""
        self._offered, self._used, self._found, self._turn_plan, self._turn = [], {}, {}, None, 0
        self._searches = {}

    # -- signals from the loop ----------------------------------------------------------------
    def note_used(self, name: str, turn: int | None = None) -> None:
        """Record that the model called `name` (keeps it loaded for `sticky_turns`)."""
        if name in self.tools:
            self._used[name] = self._turn if turn is None else turn

    def find(self, query: str, *, k: int = 5) -> list[tuple[str, float, str]]:
        """Search the catalogue for `query`; the results join the set from the next step on."""
        if not query.strip():
            return []
        hits = self._retrieve(query, "")
        out = []
        for h in hits[:k]:
            out.append((h.id, round(h.score, 4), h.reason))
            self._found[h.id] = (self._turn, f"find_tools: {query[:60]}")
        self._searches[_query_key(query)] = (self._turn, [n for n, _, _ in out])
        return out

    def rank(self, query: str, names: list[str]) -> list[str]:
        """`names` in the order retrieval ranks them for `query` (those it does not return last, in
        their given order); loads nothing."""
        if not query.strip() or not names:
            return list(names)
        order = {h.id: i for i, h in enumerate(self._retrieve(query, ""))}
        return sorted(names, key=lambda n: (order.get(n, len(order)), names.index(n)))

    def searched(self, query: str, turn: int | None = None) -> tuple[int, list[str]] | None:
        """(turn, tools loaded) of an earlier search for `query` whose results are still offered
        at `turn`, or None: asking it again would find nothing new."""
        turn = self._turn if turn is None else turn
        got = self._searches.get(_query_key(query))
        if got is None or not turn - got[0] < self.sticky_turns:
            return None
        return got

    def repeat_of(self, call: ToolCall, ctx: TurnContext) -> str | None:
        """Why `call` would learn nothing new: a find_tools search already answered while its
        results are still offered; None for any other call."""
        if call.name != FIND_TOOLS:
            return None
        got = self.searched(str(call.arguments.get("query") or ""), ctx.turn)
        if got is None:
            return None
        return (
            "the same search ran earlier this turn" if got[0] == ctx.turn else f"the same search ran at turn {got[0]}"
        ) + " and its tools are still offered"

    # -- selection ----------------------------------------------------------------------------
    def _retrieve(self, query: str, context: str) -> list[Hit]:
        allowed = {n for n in self.tools if n not in self.pinned}
        if not allowed:
            return []
        hits = self.search.search(
            query, context=context, k=max((self.max_tools + self.cold_extra) * 3, 30), allowed=allowed
        )
        if self.change_penalty != 1.0 and self._verbs and is_report(query, self._command_words):
            asked = {stem(t) for t in terms(query)}
            for h in hits:
                verbs = self._verbs.get(h.id)
                if verbs is not None and not verbs & asked:
                    h.score *= self.change_penalty
            hits.sort(key=lambda h: -h.score)  # stable: equal scores keep the fused order
        return hits

    def plan(
        self,
        text: str,
        history: list[Any] | None = None,
        *,
        turn: int | None = None,
        used: dict[str, int] | None = None,
    ) -> Selection:
        """The ToolSet for a request: pinned + sticky + retrieved within threshold and budget."""
        turn = self._turn if turn is None else turn
        rw = self.rewriter.rewrite(text, history or []) if self.rewrite_enabled else Rewrite(query=text, original=text)
        hits = self._retrieve(rw.query, rw.context)
        names: list[str] = []
        reasons: dict[str, str] = {}
        for n in self.pinned:
            if n in self.tools:
                names.append(n)
                reasons[n] = "pinned"
        used = self._used if used is None else used
        recent = sorted(
            ((t, n) for n, t in used.items() if turn - t < self.sticky_turns and n in self.tools),
            reverse=True,
        )
        for t, n in recent:
            if n not in reasons:
                names.append(n)
                reasons[n] = "used recently" if t < turn else "used this turn"
        for n, (t, why) in sorted(self._found.items(), key=lambda kv: -kv[1][0]):
            if turn - t < self.sticky_turns and n in self.tools and n not in reasons:
                names.append(n)
                reasons[n] = why
        spent = sum(self._tokens[n] for n in names)
        past: dict[str, list[str]] = {}
        retrieved_tokens = 0
        top = hits[0].score if hits else 0.0
        taken = 0
        cold = not history and all(reasons[n] == "pinned" for n in names)
        limit = self.max_tools + (self.cold_extra if cold else 0)
        book = self.runbook_for(rw.query) if self.runbook_checks > 0 else None
        if book is not None:
            for n in [t for t in book.params if t in self.tools and t not in reasons][: self.runbook_checks]:
                names.append(n)
                reasons[n] = f"runbook: {book.id}"
                spent += self._tokens.get(n, 0)
                retrieved_tokens += self._tokens.get(n, 0)
                taken += 1
        for h in hits:
            if taken >= limit:
                break
            if h.id in reasons:
                continue
            if taken >= self.min_tools and h.score < self.threshold * top:
                break
            cost = self._tokens.get(h.id, 0)
            if retrieved_tokens + cost > self.budget_tokens and taken >= 1:
                continue
            names.append(h.id)
            reasons[h.id] = h.reason
            if h.past and h.reason.startswith("experience"):
                past[h.id] = list(h.past)
            spent += cost
            retrieved_tokens += cost
            taken += 1
        return Selection(names=names, reasons=reasons, query=rw.query, schema_tokens=spent, hits=hits, past=past)

    async def select(self, ctx: TurnContext) -> tuple[list[ToolSpec], ev.ToolSetChanged | None]:
        """Toolbox.select: the specs to offer at this step and a ToolSetChanged when the set changed."""
        self._turn = ctx.turn
        events = list(getattr(ctx.session, "events", []))
        # Calls recorded in the session count as use, so stickiness survives a resumed session.
        for e in events:
            if getattr(e, "kind", "") == "assistant-message" and ctx.turn - e.turn < self.sticky_turns:
                for c in e.tool_calls:
                    name = c.get("name")
                    if name in self.tools and self._used.get(name, -1) < e.turn:
                        self._used[name] = e.turn
        if self._turn_plan is None or self._turn_plan[0] != ctx.turn:
            history = exchanges_from_events(events, before_turn=ctx.turn)
            # Retrieval embeds the query: off the event loop, so a face sharing it stays responsive.
            plan = await asyncio.to_thread(self.plan, ctx.query, history, turn=ctx.turn)
            self._turn_plan = (ctx.turn, plan)
        base = self._turn_plan[1]
        names = list(base.names)
        reasons = dict(base.reasons)
        if ctx.step > 1:
            # Within a turn the set only grows: keep what was offered, add what was found/used.
            for n in self._offered:
                if n not in reasons and n in self.tools:
                    names.append(n)
                    reasons[n] = "offered earlier this turn"
            for n, (t, why) in self._found.items():
                if t == ctx.turn and n not in reasons and n in self.tools:
                    names.append(n)
                    reasons[n] = why
        changed = None
        if names != self._offered:
            prev = set(self._offered)
            loaded = [n for n in names if n not in prev]
            unloaded = [n for n in self._offered if n not in set(names)]
            if loaded or unloaded:
                changed = ctx.event(
                    ev.ToolSetChanged,
                    loaded=loaded,
                    unloaded=unloaded,
                    reasons={n: reasons[n] for n in loaded},
                    query=base.query,
                    schema_tokens=sum(self._tokens[n] for n in names),
                    experience={n: base.past[n] for n in loaded if n in base.past},
                )
            self._offered = names
        return [self.tools[n].spec for n in names], changed

    @property
    def offered(self) -> list[str]:
        """Names offered at the last step."""
        return list(self._offered)


def find_tools_tool(selector: ToolSelector, *, k: int = 5) -> Tool:
    """The `find_tools(query)` meta-tool: searches the catalogue and loads the results for the next step."""

    async def handler(args: dict[str, Any]) -> ToolOutput:
        query = str(args.get("query") or "").strip()
        if not query:
            return ToolOutput(
                text="find_tools needs a non-empty 'query' describing what you want to do.", status="error"
            )
        earlier = selector.searched(query)
        if earlier is not None:
            turn, names = earlier
            when = "this turn" if turn == selector._turn else f"at turn {turn}"
            loaded = ", ".join(names) if names else "nothing matched"
            return ToolOutput(
                text=f"Already searched for {query!r} {when}; what it found is still callable: {loaded}. Call one of those, or search for something else.",
                data=[{"name": n, "reason": "found earlier"} for n in names],
            )
        found = selector.find(query, k=k)
        if not found:
            return ToolOutput(text=f"No tools match {query!r}.", data=[])
        lines = [f"Loaded for your next step ({len(found)}):"]
        for name, _score, reason in found:
            t = selector.tools[name]
            lines.append(f"- {name} [{t.risk}]: {t.description.splitlines()[0][:160]} ({reason})")
        return ToolOutput(text="\n".join(lines), data=[{"name": n, "score": s, "reason": r} for n, s, r in found])

    return Tool(
        name=FIND_TOOLS,
        description=(
            "Search all available tools by what you want to do next, in a few words of your own; "
            "the matches become callable on your next step."
        ),
        parameters={
            "type": "object",
            "properties": {"query": {"type": "string", "description": "What you want to do, in a few words."}},
            "required": ["query"],
        },
        handler=handler,
        risk="read",
        keywords=["search", "tools", "catalog"],
        meta=ToolMeta(answers_repeats=True),
    )


def _query_key(query: str) -> str:
    """A search query compared without case, punctuation or spacing."""
    return " ".join(re.findall(r"\w+", query.casefold()))
