"""The inspector's Apply: the pasted manifest goes to kubernetes.apply_manifest through the same
approval as any agent call, and the modal shows the dry-run diff before anything runs."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

from console.app import LanternApp
from console.screens.approval import ApprovalScreen
from console.testing import scripted_factory
from console.widgets.inspector.inspector import Inspector
from engine.config import Config
from engine.tools import Preview, Tool, ToolMeta

MANIFEST = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: extra, namespace: payments}\ndata: {A: '1'}\n"
DIFF = "--- live/ConfigMap/payments/extra\n+++ dry-run/ConfigMap/payments/extra\n@@ -0,0 +1,6 @@\n+apiVersion: v1\n+data:\n+  A: '1'"


async def _until(pilot: Any, cond: Any, timeout: float = 30.0) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not cond():
        assert loop.time() < end, "condition not reached in time"
        await pilot.pause(0.05)


async def test_apply_asks_with_the_dry_run_diff_then_applies():
    applied: list[dict[str, Any]] = []

    async def handler(args: dict[str, Any]) -> Any:
        applied.append(args)
        return {"applied": ["ConfigMap/payments/extra"], "undo": "delete ConfigMap/payments/extra"}

    async def preview(args: dict[str, Any]) -> Preview:
        return Preview(diff=DIFF, objects=["ConfigMap/payments/extra"])

    params = {
        "type": "object",
        "properties": {"manifest": {"type": "string"}, "namespace": {"type": "string"}},
        "required": ["manifest"],
    }
    tool = Tool(
        "kubernetes.apply_manifest",
        "Server-side apply a manifest",
        params,
        handler,
        risk="dangerous",
        pack="kubernetes",
        meta=ToolMeta(rollback="delete what it created"),
        preview=preview,
    )
    app = LanternApp(
        config=Config(model="scripted", namespace="payments"),
        session_factory=scripted_factory([], [tool]),
        tz=dt.UTC,
        blink=False,
    )
    async with app.run_test(size=(120, 40)) as pilot:
        await _until(pilot, lambda: app.bridge is not None and app.bridge.ready)
        await app.main.toggle_inspector()
        inspector = app.main.query_one(Inspector)
        inspector.load_text(MANIFEST)
        inspector.post_message(Inspector.ActionRequested("apply"))
        await _until(pilot, lambda: isinstance(app.screen, ApprovalScreen))
        assert applied == [], "nothing runs before the approval"
        shown = lambda: "".join(str(w.content) for w in app.screen.query("#approval-diff"))  # noqa: E731
        await _until(pilot, lambda: "+  A: '1'" in shown())
        await pilot.press("a")
        await _until(pilot, lambda: bool(applied))
        assert applied[0]["manifest"] == MANIFEST.strip() and applied[0]["namespace"] == "payments"
