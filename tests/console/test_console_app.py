"""The console's behaviour a user would notice: keys, commands, themes, failures, --continue."""

from __future__ import annotations

import asyncio
import datetime as dt
import subprocess
import sys
from types import SimpleNamespace
from typing import Any

from console.app import LanternApp
from console.screens.approval import ApprovalScreen
from console.screens.help import HelpScreen
from console.testing import INCIDENT_SCRIPT, GaugeContext, incident_tools, scripted_factory
from console.widgets.conversation.conversation import AnswerBlock, Conversation, NoticeLine
from console.widgets.conversation.prompt import PromptInput
from console.widgets.header.header_bar import HeaderBar
from console.widgets.investigation.steps import StepBlock, StepList
from console.widgets.timeline.timeline import Timeline
from engine.config import Config
from engine.models.errors import Unavailable
from engine.tools import python_tool

SIZE = (120, 40)


def shown(widget: Any) -> str:
    """The text a Static shows, as a user would read it."""
    import io

    from rich.console import Console

    content = getattr(widget, "content", None)
    if content is None:
        content = widget.render()
    if isinstance(content, str):
        return content
    console = Console(width=120, file=io.StringIO(), record=True)
    console.print(content)
    return console.export_text()


async def until(pilot: Any, cond: Any, timeout: float = 30.0) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not cond():
        assert loop.time() < end, "condition not reached in time"
        await pilot.pause(0.03)


def app_for(script: list[dict[str, Any]], tools: list[Any] | None = None, **kw: Any) -> LanternApp:
    cfg = kw.pop("config", None) or Config(model="scripted", namespace="payments")
    return LanternApp(
        kw.pop("args", None),
        config=cfg,
        session_factory=scripted_factory(script, tools or incident_tools(), **kw.pop("factory_kw", {})),
        tz=dt.UTC,
        blink=False,
        **kw,
    )


def kinds(app: LanternApp, kind: str) -> list[Any]:
    return [e for e in app.bridge.session.events if e.kind == kind]


async def ready(pilot: Any, app: LanternApp) -> None:
    await until(pilot, lambda: app.bridge is not None and app.bridge.ready)


ANSWER = [{"text": "The api pods are **OOMKilled** since revision 14."}]


async def test_streamed_answer_is_rendered_as_markdown_and_history_recalls_the_question() -> None:
    app = app_for(ANSWER * 2)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, app)
        await pilot.press(*"why is api down", "enter")
        await until(pilot, lambda: bool(kinds(app, "turn-finished")))
        await pilot.pause(0.1)
        blocks = list(app.main.query(AnswerBlock))
        assert blocks and "OOMKilled" in blocks[-1].source
        prompt = app.main.query_one(PromptInput)
        assert prompt.value == ""
        await pilot.press("up")
        assert prompt.value == "why is api down"


async def test_investigation_blocks_and_timeline_follow_the_tool_calls() -> None:
    app = app_for(INCIDENT_SCRIPT[:2] + INCIDENT_SCRIPT[3:])
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, app)
        await pilot.press(*"why", "enter")
        await until(pilot, lambda: bool(kinds(app, "turn-finished")))
        await pilot.pause(0.1)
        blocks = list(app.main.query(StepBlock))
        assert [b.step for b in blocks] == [1, 2]
        assert "crash-looping" in blocks[0].hypothesis
        assert [c.tool for c in blocks[0].calls.values()] == ["get_pods"]
        timeline = app.main.query_one(Timeline)
        assert [r.tool for r in timeline.rows_by_id.values()] == ["get_pods", "rollout_history"]
        assert all(r.status == "ok" for r in timeline.rows_by_id.values())
        # Expand from the keyboard: esc leaves the input, s focuses the steps, k/enter expands.
        assert "── get_pods ──" not in shown(blocks[0])
        await pilot.press("escape", "s", "k", "enter")
        await pilot.pause(0.1)
        assert blocks[0].expanded
        assert "── get_pods ──" in shown(blocks[0]) and "worker-5c6d7e8f9-abcde" in shown(blocks[0])


async def test_timeline_filter_with_slash() -> None:
    app = app_for(INCIDENT_SCRIPT[:2] + INCIDENT_SCRIPT[3:])
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, app)
        await pilot.press(*"why", "enter")
        await until(pilot, lambda: bool(kinds(app, "turn-finished")))
        await pilot.press("escape", "t", "slash", *"rollout")
        await pilot.pause(0.1)
        timeline = app.main.query_one(Timeline)
        assert timeline.row_count == 1
        await pilot.press("escape")
        assert timeline.row_count == 2


async def test_timeline_draws_a_longer_tool_name_whole_at_once() -> None:
    # A row drawn before the table goes idle must not keep a cell cropped to the old width.
    import datetime as dt

    from console.widgets.timeline.timeline import Row

    app = app_for([{"text": "Done."}], [])
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, app)
        timeline = app.main.query_one(Timeline)
        at = dt.datetime(2026, 12, 2, 3, 7, tzinfo=dt.UTC)
        timeline.upsert(Row("c1", at, "get_pods", status="ok"))
        await pilot.pause(0.1)
        timeline.upsert(Row("c2", at, "rollout_history"))
        assert "rollout_history" in timeline.render_line(2).text
        timeline.upsert(Row("c2", at, "rollout_history", status="ok", duration_ms=42))
        await pilot.pause(0.1)
        assert "rollout_history" in timeline.render_line(2).text and "get_pods" in timeline.render_line(1).text


async def test_ctrl_c_cancels_the_running_turn_and_twice_quits() -> None:
    gate = asyncio.Event()

    async def tail_logs(name: str) -> str:
        """Tail logs."""
        await gate.wait()
        return ""

    script = [{"text": "Reading logs.", "tool_calls": [{"name": "tail_logs", "arguments": {"name": "api"}}]}]
    app = app_for(script, [python_tool(tail_logs)])
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, app)
        await pilot.press(*"logs", "enter")
        await until(pilot, lambda: bool(kinds(app, "tool-call-started")))
        assert app.main.query_one(HeaderBar).model_state == "running"
        await pilot.press("ctrl+c")
        await until(pilot, lambda: bool(kinds(app, "turn-finished")))
        assert kinds(app, "turn-finished")[0].reason == "cancelled"
        await until(pilot, lambda: app.main.query_one(HeaderBar).model_state == "ready")
        await pilot.press("ctrl+c")
        await pilot.pause(0.1)
    assert app.return_code == 0


async def test_engine_messages_that_arrive_after_exit_are_dropped_not_raised() -> None:
    # The engine posts from its own task: a turn that finishes while the app exits has its last
    # events land after the screen stack is empty. They are in the session store already.
    from console.bridge import (
        AnswerStreamed,
        ApprovalsChanged,
        EngineEvent,
        EngineFailed,
        EngineStarting,
        TurnStateChanged,
    )

    app = app_for([{"text": "Done."}], [])
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, app)
        await pilot.press(*"hi", "enter")
        await until(pilot, lambda: bool(kinds(app, "turn-finished")))
        last = app.bridge.session.events[-1]
    assert not any(True for _ in app.screen_stack)
    await app.on_engine_event(EngineEvent(last))
    app.on_answer_streamed(AnswerStreamed(1, 1, "late"))
    app.on_turn_state_changed(TurnStateChanged(False))
    app.on_approvals_changed(ApprovalsChanged(0))
    app.on_engine_starting(EngineStarting("scripted"))
    app.on_engine_failed(EngineFailed("late failure"))


async def test_colon_commands_theme_ns_and_unknown() -> None:
    app = app_for(ANSWER)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, app)
        await pilot.press("colon", *"theme light", "enter")
        await pilot.pause(0.1)
        assert app.theme == "lantern-light"
        await pilot.press("colon", *"ns checkout", "enter")
        await pilot.pause(0.1)
        assert app.main.query_one(HeaderBar).namespace == "checkout"
        await pilot.press("colon", *"bogus", "enter")
        await pilot.pause(0.1)
        assert app.theme == "lantern-light"  # nothing else changed
        await pilot.press(*"/theme high-contrast", "enter")
        await pilot.pause(0.1)
        assert app.theme == "lantern-contrast"


async def test_pods_command_is_a_turn_through_the_engine() -> None:
    app = app_for([{"text": "3 pods."}])
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, app)
        await pilot.press("colon", *"pods api", "enter")
        await until(pilot, lambda: bool(kinds(app, "turn-finished")))
        (user,) = kinds(app, "user-message")
        assert "namespace payments" in user.text and "api" in user.text


async def test_help_is_generated_from_the_registry_with_the_user_keymap() -> None:
    cfg = Config(model="scripted", keymap={"app.inspector": "f5"})
    app = app_for(ANSWER, config=cfg)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, app)
        await pilot.press("question_mark")
        await until(pilot, lambda: isinstance(app.screen, HelpScreen))
        text = " ".join(shown(s) for s in app.screen.query(".help-table"))
        assert ":sessions" in text and "recall_detail" in text
        await pilot.press("escape")
        await pilot.press("escape", "f5")
        await pilot.pause(0.1)
        assert app.main.has_class("-inspecting")


async def test_model_that_cannot_load_is_shown_and_nothing_typed_is_lost() -> None:
    async def broken(cfg: Any, **kw: Any) -> Any:
        raise Unavailable("the embedded local model is not available: no GGUF file", hint="run `lantern model install`")

    app = LanternApp(config=Config(model="local"), session_factory=broken, blink=False)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.main.query_one(HeaderBar).model_state == "failed")
        notes = " ".join(shown(n) for n in app.main.query(NoticeLine))
        assert "no GGUF file" in notes and "lantern model install" in notes
        await pilot.press(*"still there?", "enter")
        await pilot.pause(0.1)
        assert app.main.query_one(PromptInput).value == "still there?"


async def test_continue_reopens_blocks_timeline_and_pending_approval() -> None:
    executed: list[Any] = []
    first = app_for(INCIDENT_SCRIPT, incident_tools(executed), factory_kw={"session_id": "incident1"})
    async with first.run_test(size=SIZE) as pilot:
        await ready(pilot, first)
        await pilot.press(*"why", "enter")
        await until(pilot, lambda: isinstance(first.screen, ApprovalScreen))
    # The process ended with the approval unanswered: nothing ran.
    assert executed == []
    args = SimpleNamespace(model="scripted", context=None, namespace=None, cont=True, session=None, theme=None)
    again = app_for([], incident_tools(executed), args=args, factory_kw={"session_id": "other"})
    async with again.run_test(size=SIZE) as pilot:
        await ready(pilot, again)
        await pilot.pause(0.2)
        assert again.bridge.session.id == "incident1"
        assert [b.step for b in again.main.query(StepBlock)] == [1, 2, 3]
        assert len(again.main.query_one(Timeline).rows_by_id) == 3
        assert again.main.query_one(HeaderBar).pending == 1
        notes = " ".join(shown(n) for n in again.main.query(NoticeLine))
        assert "pending when the session closed" in notes and "rollback_deployment" in notes
        blocks = again.main.query_one(StepList).blocks
        assert blocks[-1].calls[next(iter(blocks[-1].calls))].status == "awaiting"
        # :retry is a user turn: the engine proposes again and the policy asks again.
        again.bridge.session.model.enqueue(INCIDENT_SCRIPT[2], INCIDENT_SCRIPT[3])
        await pilot.press("colon", *"retry", "enter")
        await until(pilot, lambda: isinstance(again.screen, ApprovalScreen))
        assert "rollback_deployment" in kinds(again, "user-message")[-1].text
        await pilot.press("a")
        await until(pilot, lambda: len(kinds(again, "turn-finished")) == 1)
    assert executed == [{"tool": "rollback_deployment", "name": "api", "namespace": "payments", "revision": 13}]


async def test_recall_from_the_gauge_sends_a_turn_naming_the_ref() -> None:
    drops = [{"ref": "out:logs:api", "what": "api logs", "from_step": 1, "tokens": 5120, "action": "dropped"}]
    app = app_for([{"text": "ok"}, {"text": "Recalled."}], factory_kw={"context": GaugeContext(drops=drops)})
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, app)
        await pilot.press(*"hi", "enter")
        await until(pilot, lambda: bool(kinds(app, "turn-finished")))
        await pilot.press("escape", "g", "r")
        await until(pilot, lambda: len(kinds(app, "turn-finished")) == 2)
        assert "recall_detail(ref='out:logs:api')" in kinds(app, "user-message")[1].text


async def test_inspector_explain_goes_through_the_engine() -> None:
    app = app_for([{"text": "It is a Deployment."}])
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, app)
        await pilot.press("escape", "y")
        await pilot.pause(0.05)
        from textual import events

        app.post_message(events.Paste("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n"))
        await pilot.pause(0.05)
        await pilot.press("ctrl+e")
        await until(pilot, lambda: bool(kinds(app, "turn-finished")))
        (user,) = kinds(app, "user-message")
        assert user.text.startswith("Explain this Kubernetes manifest") and "kind: ConfigMap" in user.text


def test_console_import_does_not_load_the_heavy_engine_parts() -> None:
    code = (
        "import sys, console.app, console.launch\n"
        "heavy = [m for m in ('litellm', 'llama_cpp', 'kubernetes', 'lancedb', 'wiring') if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


async def test_conversation_keeps_user_text_verbatim() -> None:
    app = app_for([{"text": "ok"}])
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, app)
        await pilot.press(*"[bold]not markup[/]", "enter")
        await until(pilot, lambda: bool(kinds(app, "turn-finished")))
        conv = app.main.query_one(Conversation)
        assert any("[bold]not markup[/]" in shown(w) for w in conv.children)


async def test_conversation_scrolls_with_j_and_k() -> None:
    long = "\n\n".join(f"Paragraph {i} of a long answer about the api pods." for i in range(60))
    app = app_for([{"text": long}])
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, app)
        await pilot.press(*"long please", "enter")
        await until(pilot, lambda: bool(kinds(app, "turn-finished")))
        await pilot.pause(0.3)
        conv = app.main.query_one(Conversation)
        await pilot.press("escape", "c")
        bottom = conv.scroll_y
        assert bottom > 0
        await pilot.press("k", "k", "k")
        await pilot.pause(0.2)
        assert conv.scroll_y < bottom
        await pilot.press("G")
        await pilot.pause(0.2)
        assert conv.scroll_y == conv.max_scroll_y


async def test_conversation_follows_a_streaming_answer_until_the_reader_scrolls_up() -> None:
    long = "\n\n".join(f"Paragraph {i} of a long answer about the api pods." for i in range(80))
    app = app_for([{"text": long, "token_delay": 0.01}])
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, app)
        conv = app.main.query_one(Conversation)
        assert conv.scroll_y == 0, "a short conversation starts at the top"
        await pilot.press(*"long please", "enter")
        await until(pilot, lambda: conv.max_scroll_y > 10)
        assert not kinds(app, "turn-finished"), "the answer is still streaming"
        assert conv.scroll_y == conv.max_scroll_y, "the newest streamed text is in view"
        await pilot.press("escape", "c", "k", "k", "k")
        await pilot.pause(0.1)
        held = conv.scroll_y
        assert held < conv.max_scroll_y
        await until(pilot, lambda: bool(kinds(app, "turn-finished")))
        await pilot.pause(0.3)
        assert conv.scroll_y == held < conv.max_scroll_y, "the reader's place holds while more text arrives"
        await pilot.press("G")
        await pilot.pause(0.2)
        assert conv.scroll_y == conv.max_scroll_y


async def test_typing_while_an_answer_streams_keeps_both_moving() -> None:
    from console.widgets.conversation.conversation import StreamingAnswer

    long = "\n\n".join(f"Paragraph {i} of a long answer about the api pods." for i in range(300))
    app = app_for([{"text": long, "token_delay": 0.01}])
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, app)
        await pilot.press(*"long please", "enter")
        conv = app.main.query_one(Conversation)

        def streamed() -> int:
            return sum(len(shown(w).strip()) for w in conv.query(StreamingAnswer))

        await until(pilot, lambda: streamed() > 0)
        before = streamed()
        from textual import events

        # Typed at 20 keys a second for 1.5 s: longer than the stream may wait on typing.
        typed = "next: is the db pool exhausted too"
        for ch in typed:
            app.post_message(events.Key(ch, ch))
            await asyncio.sleep(0.05)
        await pilot.pause(0.1)
        assert not kinds(app, "turn-finished"), "the answer is still streaming"
        assert streamed() > before, "the answer kept appearing while the user typed"
        assert app.main.query_one(PromptInput).value == typed
        await pilot.press("ctrl+c")
        await until(pilot, lambda: bool(kinds(app, "turn-finished")))
