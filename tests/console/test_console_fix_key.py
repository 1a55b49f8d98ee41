"""One key from the answer's fix to the approval dialog: an answer that writes its fix as a call
of a write tool is offered (Ctrl+F), and the key runs that call through the same dispatcher,
dry-run preview and approval as any call the model makes."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

from console.app import LanternApp
from console.screens.approval import ApprovalScreen
from console.testing import scripted_factory
from engine.config import Config
from engine.tools import Preview, Tool, ToolMeta

ANSWER = (
    "report-worker is OOMKilled: its 128Mi limit is below its working set. The smallest safe fix: "
    "kubernetes.set_resources(namespace=batch, name=report-worker, container=worker, limits={memory: 512Mi})"
)


async def _until(pilot: Any, cond: Any, timeout: float = 30.0) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not cond():
        assert loop.time() < end, "condition not reached in time"
        await pilot.pause(0.05)


def _tool(ran: list[dict[str, Any]]) -> Tool:
    async def handler(args: dict[str, Any]) -> Any:
        ran.append(args)
        return {"changed": "Deployment/batch/report-worker", "undo": "limits.memory=128Mi"}

    async def preview(args: dict[str, Any]) -> Preview:
        return Preview(
            diff="-            memory: 128Mi\n+            memory: 512Mi", objects=["Deployment/batch/report-worker"]
        )

    params = {
        "type": "object",
        "properties": {
            "namespace": {"type": "string"},
            "name": {"type": "string"},
            "container": {"type": "string"},
            "limits": {"type": "object"},
        },
        "required": ["namespace", "name"],
    }
    return Tool(
        "kubernetes.set_resources",
        "Set a container's requests and limits",
        params,
        handler,
        risk="write",
        pack="kubernetes",
        meta=ToolMeta(rollback="the previous requests and limits"),
        preview=preview,
    )


async def test_ctrl_f_runs_the_answers_fix_through_the_approval():
    ran: list[dict[str, Any]] = []
    app = LanternApp(
        config=Config(model="scripted", namespace="batch"),
        session_factory=scripted_factory([{"text": ANSWER}], [_tool(ran)]),
        tz=dt.UTC,
        blink=False,
    )
    async with app.run_test(size=(120, 40)) as pilot:
        await _until(pilot, lambda: app.bridge is not None and app.bridge.ready)
        await pilot.press("ctrl+f")
        await pilot.pause(0.1)
        assert not isinstance(app.screen, ApprovalScreen), "no fix offered yet: the key does nothing"
        await pilot.press(*"report-worker keeps restarting", "enter")
        await _until(pilot, lambda: app.offered_fix is not None and not app.bridge.running)
        assert app.offered_fix.arguments["limits"] == {"memory": "512Mi"}
        await pilot.press("ctrl+f")
        await _until(pilot, lambda: isinstance(app.screen, ApprovalScreen))
        assert ran == [], "nothing runs before the approval"
        shown = lambda: "".join(str(w.content) for w in app.screen.query("#approval-diff"))  # noqa: E731
        await _until(pilot, lambda: "+            memory: 512Mi" in shown())
        await pilot.press("a")
        await _until(pilot, lambda: bool(ran))
        assert ran[0] == {
            "namespace": "batch",
            "name": "report-worker",
            "container": "worker",
            "limits": {"memory": "512Mi"},
        }
        assert app.offered_fix is None, "the offer is used once"
