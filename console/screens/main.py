"""The main screen: header, conversation + input on the left, investigation / timeline / gauge
(or the inspector) on the right, a filter line and the footer. It renders engine events.
"""

from __future__ import annotations

from typing import Any

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import ContentSwitcher, Footer, Input

from console.widgets.conversation.conversation import Conversation
from console.widgets.conversation.prompt import PromptInput
from console.widgets.gauge.gauge import Dropped, DroppedList, GaugeView
from console.widgets.header.header_bar import HeaderBar
from console.widgets.investigation.steps import CallView, StepList
from console.widgets.timeline.timeline import Row, Timeline
from engine import events as ev


class FilterBar(Input):
    """The `/` filter line for the focused list."""


class MainScreen(Screen[None]):
    """Everything the on-call engineer looks at."""

    def __init__(self, *, tz: Any = None, inspector_models: Any = None) -> None:
        super().__init__()
        self.tz = tz
        """Time zone for timestamps (None: local)."""
        self.inspector_models = inspector_models
        """Injected kubernetes model module for the inspector (tests)."""
        self.filter_target: Any = None
        """The list the filter line applies to."""
        self.left_width = 50
        """Conversation pane width in percent ([ and ] change it)."""

    def compose(self) -> ComposeResult:
        yield HeaderBar(id="header")
        with Horizontal(id="body"):
            with Vertical(id="left"):
                yield Conversation(id="conversation")
                yield PromptInput(id="prompt")
            with ContentSwitcher(id="right", initial="investigate"):
                with Vertical(id="investigate"):
                    yield StepList(id="steps")
                    yield Timeline(id="timeline", tz=self.tz)
                    yield GaugeView(id="gauge")
        yield FilterBar(placeholder="filter… (enter keeps it, esc clears)", id="filter")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(FilterBar).display = False
        self.query_one(Conversation).border_title = "Conversation"
        self.query_one(PromptInput).focus()

    # -- layout ---------------------------------------------------------------------------------
    def on_resize(self, event: Any) -> None:
        # Narrow terminals stack the panes instead of squeezing them side by side.
        self.set_class(event.size.width < 100, "-narrow")

    def resize_panes(self, delta: int) -> None:
        """Move the split between conversation and side panes."""
        self.left_width = max(25, min(80, self.left_width + delta))
        self.query_one("#left").styles.width = f"{self.left_width}%"

    async def toggle_inspector(self) -> bool:
        """Switch the right pane between investigation and the inspector; True when it is open."""
        sw = self.query_one(ContentSwitcher)
        if not sw.query("#inspector"):
            # Built on first use: the editor and its grammar are not needed for the first frame.
            from console.widgets.inspector.inspector import Inspector

            await sw.mount(
                Inspector(
                    id="inspector", models=self.inspector_models, cluster=getattr(self.app, "inspector_cluster", None)
                )
            )
            if not getattr(self.app, "blink", True):
                self.query_one("#manifest").cursor_blink = False  # type: ignore[attr-defined]
        sw.current = "inspector" if sw.current == "investigate" else "investigate"
        if sw.current == "inspector":
            self.add_class("-inspecting")
            self.query_one("#manifest").focus()
            return True
        self.remove_class("-inspecting")
        self.query_one(PromptInput).focus()
        return False

    # -- filter ---------------------------------------------------------------------------------
    def open_filter(self) -> bool:
        """Filter the focused list; False when the focus is not on one."""
        focused = self.focused
        target = focused if isinstance(focused, (Timeline, DroppedList)) else None
        if target is None:
            return False
        self.filter_target = target
        bar = self.query_one(FilterBar)
        bar.value = getattr(target, "filter_text", "")
        bar.display = True
        bar.focus()
        return True

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "filter" and self.filter_target is not None:
            self.filter_target.apply_filter(event.value)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "filter":
            event.stop()
            self.close_filter(keep=True)

    def close_filter(self, *, keep: bool) -> bool:
        """Hide the filter line (clearing the filter unless `keep`); False when it was not open."""
        bar = self.query_one(FilterBar)
        if not bar.display:
            return False
        target = self.filter_target
        if not keep and target is not None:
            target.apply_filter("")
        bar.display = False
        if target is not None:
            target.focus()
        self.filter_target = None
        return True

    # -- rendering events -----------------------------------------------------------------------
    async def show_event(self, e: Any, *, replay: bool = False) -> None:
        """Render one engine event (live or from the store)."""
        conv = self.query_one(Conversation)
        steps = self.query_one(StepList)
        timeline = self.query_one(Timeline)
        gauge = self.query_one(GaugeView)
        match e:
            case ev.UserMessage():
                conv.add_user(e.text)
                self._offer(None)
            case ev.FixOffered():
                conv.notice(f"Fix ready to run: {e.written}  (Ctrl+F runs it; approval first)", "info")
                self._offer(e)
            case ev.ToolSetChanged() if e.loaded:
                self._tools_loaded(conv, e)
            case ev.AssistantMessage():
                await self._assistant_message(conv, steps, e)
            case ev.ToolCallStarted():
                steps.call(
                    e.turn,
                    e.step,
                    CallView(call_id=e.call_id, tool=e.tool, arguments=e.arguments, risk=e.risk, status="running"),
                )
                timeline.upsert(Row(call_id=e.call_id, at=e.at, tool=e.tool, status="running"))
            case ev.ApprovalRequested():
                self._approval_requested(steps, timeline, e)
            case ev.ApprovalResolved():
                self._approval_resolved(steps, timeline, e)
            case ev.ToolCallFinished():
                self._call_finished(steps, timeline, e)
            case ev.ContextGauge():
                gauge.update_gauge(e.used, e.budget, e.window, e.tiers, e.dropped)
            case ev.DetailDropped():
                gauge.add_dropped(
                    Dropped(ref=e.ref, what=e.what, tokens=e.tokens, action=e.action, from_step=e.from_step)
                )
            case ev.Notice():
                conv.notice(e.text, e.level)
            case ev.ErrorEvent():
                conv.notice(f"✗ {e.message}" + (f"\n  hint: {e.hint}" if e.hint else ""), "error")
            case ev.CriticVerdict():
                conv.notice(
                    f"plan critic: {e.verdict}" + (" — " + "; ".join(e.findings) if e.findings else ""),
                    "warning" if e.verdict != "ok" else "info",
                )
            case ev.TurnFinished():
                tokens = e.prompt_tokens + e.completion_tokens
                conv.turn_finished(
                    f"— {e.reason} · {e.steps} step{'s' if e.steps != 1 else ''} · {tokens:,} tokens", e.reason
                )

    def _offer(self, offer: Any) -> None:
        """Tell the app which fix one key runs now (None: none)."""
        keep = getattr(self.app, "offer_fix", None)
        if keep is not None:
            keep(offer)

    def _tools_loaded(self, conv: Conversation, e: ev.ToolSetChanged) -> None:
        """Name the tools a step brought in (pinned ones go without saying) and what experience chose them."""
        shown = [(n, e.reasons.get(n, "")) for n in e.loaded if e.reasons.get(n) != "pinned"]
        if shown:
            conv.tools_loaded(shown)
        past = list(dict.fromkeys(r for n in e.loaded for r in getattr(e, "experience", {}).get(n, [])))
        if past:
            conv.notice("from experience: " + "; ".join(f"“{r[:70]}”" for r in past[:3]), "info")

    async def _assistant_message(self, conv: Conversation, steps: StepList, e: ev.AssistantMessage) -> None:
        """The model's text settles in the conversation; the calls it asks for appear in the
        investigation before they start (a replayed call may already be there)."""
        await conv.finish(e.turn, e.step, e.text, hypothesis=bool(e.tool_calls))
        if not e.tool_calls:
            return
        if e.text.strip():  # the model's intent, when it gave one; an empty line says nothing
            steps.set_hypothesis(e.turn, e.step, e.text.strip())
        for c in e.tool_calls:
            if steps.block_of_call(c["id"]) is None:
                view = CallView(call_id=c["id"], tool=c["name"], arguments=c.get("arguments") or {}, status="running")
                steps.call(e.turn, e.step, view)

    def _approval_requested(self, steps: StepList, timeline: Timeline, e: ev.ApprovalRequested) -> None:
        if steps.block_of_call(e.call_id) is None:
            steps.call(e.turn, 0, CallView(call_id=e.call_id, tool=e.tool, arguments=e.arguments, risk=e.risk))
        steps.update_call(e.call_id, status="awaiting", risk=e.risk, approval=f"awaiting approval · rule {e.rule}")
        timeline.upsert(Row(call_id=e.call_id, at=e.at, tool=e.tool, status="awaiting"))

    def _approval_resolved(self, steps: StepList, timeline: Timeline, e: ev.ApprovalResolved) -> None:
        verdict = "approved" if e.approved else "denied"
        line = f"{verdict} by {e.by}" + (f": {e.reason}" if e.reason else "")
        steps.update_call(e.call_id, approval=line, status="running" if e.approved else "denied")
        row = timeline.get(e.call_id)
        if row is not None:
            row.status = "running" if e.approved else "denied"
            timeline.upsert(row)

    def _call_finished(self, steps: StepList, timeline: Timeline, e: ev.ToolCallFinished) -> None:
        """A call's outcome in the investigation and the timeline (a call never seen starting gets a row)."""
        if steps.block_of_call(e.call_id) is None:
            steps.call(e.turn, e.step, CallView(call_id=e.call_id, tool=e.tool, arguments={}))
        steps.update_call(
            e.call_id,
            status=e.status,
            summary=e.summary,
            output=e.output,
            output_ref=e.output_ref,
            partial=e.partial,
            duration_ms=e.duration_ms,
            findings=list(e.findings),
        )
        row = timeline.get(e.call_id) or Row(call_id=e.call_id, at=e.at, tool=e.tool)
        row.status, row.duration_ms, row.tokens = e.status, e.duration_ms, e.tokens
        timeline.upsert(row)

    def stream(self, turn: int, step: int, text: str) -> None:
        """Streamed answer text for a step (drawn at a steady rate)."""
        self.query_one(Conversation).stream(turn, step, text)

    def reset(self) -> None:
        """Clear every pane (a different session opens)."""
        conv = self.query_one(Conversation)
        conv.remove_children()
        conv._answers.clear()
        conv._streaming.clear()
        conv._settled.clear()
        conv._final.clear()
        conv._latest.clear()
        self.query_one(StepList).clear_blocks()
        self.query_one(Timeline).reset()
        self.query_one(GaugeView).reset()
