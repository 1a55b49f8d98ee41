"""Approvals from the keyboard, asserted on the engine's effect: the write ran or it did not."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import pytest

from console.app import LanternApp
from console.bridge import ConsoleApprover
from console.screens.approval import ApprovalScreen, ReasonScreen
from console.testing import INCIDENT_SCRIPT, incident_tools, scripted_factory
from engine import events as ev
from engine.config import Config

SIZE = (120, 40)


def make_app(executed: list[dict[str, Any]], script: list[dict[str, Any]] | None = None, **kw: Any) -> LanternApp:
    return LanternApp(
        config=Config(model="scripted", namespace="payments"),
        session_factory=scripted_factory(script or INCIDENT_SCRIPT, incident_tools(executed)),
        tz=dt.UTC,
        blink=False,
        **kw,
    )


async def until(pilot: Any, cond: Any, timeout: float = 30.0) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not cond():
        assert loop.time() < end, "condition not reached in time"
        await pilot.pause(0.03)


def events(app: LanternApp, kind: str) -> list[Any]:
    return [e for e in app.bridge.session.events if e.kind == kind]


async def start_and_ask(pilot: Any, app: LanternApp, text: str = "why is checkout failing?") -> None:
    await until(pilot, lambda: app.bridge is not None and app.bridge.ready)
    await pilot.press(*text, "enter")


async def test_approve_with_a_runs_the_write() -> None:
    executed: list[dict[str, Any]] = []
    app = make_app(executed)
    async with app.run_test(size=SIZE) as pilot:
        await start_and_ask(pilot, app)
        await until(pilot, lambda: isinstance(app.screen, ApprovalScreen))
        assert executed == [], "nothing runs before the human answers"
        await pilot.press("a")
        await until(pilot, lambda: bool(events(app, "turn-finished")))
        assert executed == [{"tool": "rollback_deployment", "name": "api", "namespace": "payments", "revision": 13}]
        (resolved,) = events(app, "approval-resolved")
        assert resolved.approved and resolved.by == app.cfg.user
        finished = [e for e in events(app, "tool-call-finished") if e.tool == "rollback_deployment"]
        assert finished[0].status == "ok"


@pytest.mark.parametrize("key", ["d", "escape"])
async def test_deny_from_the_keyboard_keeps_the_write_from_running(key: str) -> None:
    executed: list[dict[str, Any]] = []
    app = make_app(executed)
    async with app.run_test(size=SIZE) as pilot:
        await start_and_ask(pilot, app)
        await until(pilot, lambda: isinstance(app.screen, ApprovalScreen))
        await pilot.press(key)
        await until(pilot, lambda: bool(events(app, "turn-finished")))
        assert executed == []
        (resolved,) = events(app, "approval-resolved")
        assert not resolved.approved
        finished = [e for e in events(app, "tool-call-finished") if e.tool == "rollback_deployment"]
        assert finished[0].status == "denied"


async def test_deny_with_reason_reaches_the_engine() -> None:
    executed: list[dict[str, Any]] = []
    app = make_app(executed)
    async with app.run_test(size=SIZE) as pilot:
        await start_and_ask(pilot, app)
        await until(pilot, lambda: isinstance(app.screen, ApprovalScreen))
        await pilot.press("r")
        await until(pilot, lambda: isinstance(app.screen, ReasonScreen))
        await pilot.press(*"change freeze until 06:00", "enter")
        await until(pilot, lambda: bool(events(app, "turn-finished")))
        assert executed == []
        (resolved,) = events(app, "approval-resolved")
        assert not resolved.approved and resolved.reason == "change freeze until 06:00"
        # The model reads the reason as the call's result.
        finished = [e for e in events(app, "tool-call-finished") if e.tool == "rollback_deployment"]
        assert "change freeze until 06:00" in finished[0].output


async def test_reason_screen_escape_goes_back_without_deciding() -> None:
    executed: list[dict[str, Any]] = []
    app = make_app(executed)
    async with app.run_test(size=SIZE) as pilot:
        await start_and_ask(pilot, app)
        await until(pilot, lambda: isinstance(app.screen, ApprovalScreen))
        await pilot.press("r")
        await until(pilot, lambda: isinstance(app.screen, ReasonScreen))
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, ApprovalScreen))
        assert events(app, "approval-resolved") == []
        await pilot.press("a")
        await until(pilot, lambda: bool(events(app, "turn-finished")))
        assert len(executed) == 1


SCALE_SCRIPT = [
    {
        "text": "Scaling api to absorb the load.",
        "tool_calls": [
            {"name": "scale_deployment", "arguments": {"name": "api", "namespace": "payments", "replicas": 4}}
        ],
    },
    {"text": "Scaled."},
]


async def test_confirm_countdown_proceeds_when_not_cancelled() -> None:
    executed: list[dict[str, Any]] = []
    app = make_app(executed, SCALE_SCRIPT, countdown_s=0.4)
    async with app.run_test(size=SIZE) as pilot:
        await start_and_ask(pilot, app, "scale api")
        # Not polled for the dialog: on a slow machine the 0.4 s countdown can run out between
        # two polls. The session's event order says the same: asked, then counted down, then run.
        await until(pilot, lambda: bool(events(app, "turn-finished")))
        assert executed and executed[0]["replicas"] == 4
        (resolved,) = events(app, "approval-resolved")
        assert resolved.approved and "countdown" in resolved.reason
        kinds = [e.kind for e in app.bridge.session.events]
        ran = next(
            i
            for i, e in enumerate(app.bridge.session.events)
            if e.kind == "tool-call-finished" and e.tool == "scale_deployment"
        )
        assert kinds.index("approval-requested") < kinds.index("approval-resolved") < ran


async def test_confirm_countdown_cancelled_denies() -> None:
    executed: list[dict[str, Any]] = []
    app = make_app(executed, SCALE_SCRIPT, countdown_s=5.0)
    async with app.run_test(size=SIZE) as pilot:
        await start_and_ask(pilot, app, "scale api")
        await until(pilot, lambda: isinstance(app.screen, ApprovalScreen))
        await pilot.press("escape")
        await until(pilot, lambda: bool(events(app, "turn-finished")))
        assert executed == []
        assert not events(app, "approval-resolved")[0].approved


async def test_explicit_approval_never_times_out_into_yes() -> None:
    executed: list[dict[str, Any]] = []
    app = make_app(executed, countdown_s=0.1)
    async with app.run_test(size=SIZE) as pilot:
        await start_and_ask(pilot, app)
        await until(pilot, lambda: isinstance(app.screen, ApprovalScreen))
        await pilot.pause(0.6)  # far beyond the confirm countdown: an 'approve' request must still wait
        assert isinstance(app.screen, ApprovalScreen) and executed == []
        await pilot.press("d")
        await until(pilot, lambda: bool(events(app, "turn-finished")))
        assert executed == []


def _request(n: int, expires: dt.datetime | None = None) -> ev.ApprovalRequested:
    return ev.ApprovalRequested(
        session_id="s",
        seq=n,
        at=ev.utcnow(),
        request_id=f"r{n}",
        call_id=f"c{n}",
        tool="rollback_deployment",
        arguments={"n": n},
        risk="write",
        decision="approve",
        rule="test",
        call_hash="h" * 16,
        expires_at=expires,
    )


async def test_several_pending_approvals_queue_one_at_a_time() -> None:
    app = LanternApp(config=Config(model="scripted"), start_engine=False, blink=False)
    async with app.run_test(size=SIZE) as pilot:
        approver = ConsoleApprover(app)
        answers: list[Any] = []

        async def ask_both() -> None:
            answers.extend(await asyncio.gather(approver.ask(_request(1)), approver.ask(_request(2))))

        app.run_worker(ask_both())
        await until(pilot, lambda: isinstance(app.screen, ApprovalScreen) and len(approver.pending) == 2)
        from console.widgets.header.header_bar import HeaderBar

        assert app.main.query_one(HeaderBar).pending == 2
        first = app.screen
        assert isinstance(first, ApprovalScreen) and first.queued == 1
        await pilot.press("a")
        await until(pilot, lambda: isinstance(app.screen, ApprovalScreen) and app.screen is not first)
        await pilot.press("d")
        await until(pilot, lambda: len(answers) == 2)
        assert [a.approved for a in answers] == [True, False]
        assert approver.pending == []


@pytest.mark.parametrize("expires_in", [0.3, -1.0], ids=["expires-while-shown", "expired-before-shown"])
async def test_expired_request_is_denied(expires_in: float) -> None:
    # Expired before the dialog mounts (a slow machine): denied at once, not left open.
    app = LanternApp(config=Config(model="scripted"), start_engine=False, blink=False)
    async with app.run_test(size=SIZE) as pilot:
        approver = ConsoleApprover(app)
        answers: list[Any] = []

        async def ask() -> None:
            answers.append(await approver.ask(_request(1, expires=ev.utcnow() + dt.timedelta(seconds=expires_in))))

        app.run_worker(ask())
        await until(pilot, lambda: len(answers) == 1)
        assert answers[0].approved is False and "expired" in answers[0].reason
        await until(pilot, lambda: not isinstance(app.screen, ApprovalScreen))


@pytest.mark.parametrize("size", [(80, 24), (120, 40)])
async def test_the_decision_and_its_buttons_show_without_scrolling(size: tuple[int, int]) -> None:
    executed: list[dict[str, Any]] = []
    app = make_app(executed)
    async with app.run_test(size=size) as pilot:
        await start_and_ask(pilot, app)
        await until(pilot, lambda: isinstance(app.screen, ApprovalScreen))
        await pilot.pause(0.2)
        screen = app.screen
        dialog = screen.query_one("#approval-dialog")

        def on_top(selector: str) -> bool:
            # What the user sees at the middle of the widget is the widget itself.
            region = screen.query_one(selector).region
            if not region or not screen.region.contains_region(region):
                return False
            hit, _ = screen.get_widget_at(*region.center)
            return hit is screen.query_one(selector) or screen.query_one(selector) in hit.ancestors

        action = screen.query_one("#approval-action")
        assert "rollback_deployment(name=api, namespace=payments, revision=13)" in str(action.render())
        assert (
            "org/payments" in (policy := str(screen.query_one("#approval-policy").render()))
            and "changes a production deployment" in policy
        )
        for selector in (
            "#approval-title",
            "#approval-action",
            "#approval-policy",
            "#approve",
            "#deny",
            "#reason",
            "#inspect",
        ):
            assert on_top(selector), f"{selector} is hidden at {size}"
        from console.widgets.header.header_bar import HeaderBar

        header = app.main.query_one(HeaderBar)
        line = str(header.render())
        assert "⚠ 1 approval" in line and len(line) <= size[0]
        assert ("session" not in line) or line.endswith(header.session_id), "a session id is shown whole or not at all"
        if size == (80, 24):
            # The diff is longer than the room left: it scrolls, and says so; the buttons stay.
            assert dialog.max_scroll_y > 0
            assert "more below" in str(dialog.border_subtitle)
            await pilot.press("j", "j", "j")
            await pilot.pause(0.1)
            assert dialog.scroll_y > 0
            assert on_top("#approve") and on_top("#approval-policy")
        await pilot.press("a")
        await until(pilot, lambda: bool(events(app, "turn-finished")))
        assert executed == [{"tool": "rollback_deployment", "name": "api", "namespace": "payments", "revision": 13}]
