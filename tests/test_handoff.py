"""`lantern handoff`: a session's record as the next shift reads it, built from real events.

The session runs the real loop, dispatcher, policy and audit on a store: a read whose output the
Kubernetes checks read (a finding), an approved scale with its dry-run diff and the undo it
recorded, a denied delete, and a detail the context dropped.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

import pytest

from console.commands import handoff as command
from engine import events as ev
from engine import handoff
from engine.dispatch import Dispatcher
from engine.loop import ApprovalAnswer, Session
from engine.policy.audit import AuditLog
from engine.policy.rules import Policy
from engine.store import Store
from engine.testing import ScriptedModel
from engine.toolbox import Toolbox
from engine.tools import Preview, Tool, ToolMeta, ToolOutput
from skills.loader import BUILTIN_DIR, load_pack_file
from skills.registry import checks_for

DESCRIBED = """Name:         web-7d9f8b6c5-x2k4p
Namespace:    shop
Node:         worker-1
Status:       Running
Containers:
  web:
    State:          Running
    Last State:     Terminated
      Reason:       OOMKilled
      Exit Code:    137
Events:
  Type     Reason   Age  From     Message
  Warning  BackOff  10s  kubelet  Back-off restarting failed container web
"""
DIFF = "--- live/Deployment/shop/web\n+++ dry-run/Deployment/shop/web\n@@ -1,1 +1,1 @@\n-  replicas: 2\n+  replicas: 5"


def _tools() -> list[Tool]:
    obj = {
        "type": "object",
        "properties": {"name": {"type": "string"}, "namespace": {"type": "string"}},
        "required": ["name"],
    }
    scale_params = {
        "type": "object",
        "properties": {"name": {"type": "string"}, "replicas": {"type": "integer"}},
        "required": ["name", "replicas"],
    }

    async def describe(args: dict[str, Any]) -> ToolOutput:
        return ToolOutput(text=DESCRIBED)

    async def scale(args: dict[str, Any]) -> ToolOutput:
        return ToolOutput(
            text=f"scaled {args['name']} from 2 to {args['replicas']}",
            data={"undo": f"scale_deployment name={args['name']} replicas=2"},
        )

    async def preview(args: dict[str, Any]) -> Preview:
        return Preview(diff=DIFF, objects=["Deployment/shop/web"])

    async def delete(args: dict[str, Any]) -> ToolOutput:
        raise AssertionError("a denied call never runs")

    return [
        Tool("kubernetes.describe_pod", "Describe a pod", obj, describe, risk="read", pack="kubernetes"),
        Tool(
            "kubernetes.scale_deployment",
            "Scale a deployment",
            scale_params,
            scale,
            risk="write",
            pack="kubernetes",
            meta=ToolMeta(rollback="scale back"),
            preview=preview,
        ),
        Tool("kubernetes.delete_pod", "Delete a pod", obj, delete, risk="dangerous", pack="kubernetes"),
    ]


class Alice:
    """Approves the scale, denies the delete."""

    async def ask(self, request: ev.ApprovalRequested) -> ApprovalAnswer:
        ok = request.tool.endswith("scale_deployment")
        return ApprovalAnswer.to(request, ok, "alice", "" if ok else "the pod is evidence; keep it")


def _call(tool: str, /, **arguments: Any) -> dict[str, Any]:
    return {"text": "", "tool_calls": [{"name": tool, "arguments": arguments}]}


@pytest.fixture
async def recorded(tmp_path) -> tuple[str, str]:
    """(store path, session id) of a finished session."""
    path = tmp_path / "lantern.db"
    async with Store(path) as store:
        audit = await AuditLog.open(store.db)
        box = Toolbox(_tools(), dispatcher=Dispatcher(Policy(), audit, user="alice"))
        pack, _ = load_pack_file(BUILTIN_DIR / "kubernetes.yaml")
        assert pack is not None
        model = ScriptedModel(
            [
                _call("kubernetes.describe_pod", name="web-7d9f8b6c5-x2k4p", namespace="shop"),
                _call("kubernetes.scale_deployment", name="web", replicas=5),
                _call("kubernetes.delete_pod", name="web-7d9f8b6c5-x2k4p", namespace="shop"),
                {
                    "text": "web is OOMKilled at its memory limit; scaled it to 5 to spread the load while the limit is raised."
                },
            ]
        )
        session = Session(model, box, sink=store, approver=Alice(), checks=checks_for([pack]))
        await store.create_session(session.id, model="scripted")
        await session.emit(ev.SessionStarted, model="scripted", context="prod", namespace="shop")
        [e async for e in session.run_turn("web in shop keeps restarting, alert WebRestarts firing")]
        await session.emit(
            ev.DetailDropped,
            ref="out_1",
            what="kubernetes.describe_pod output (14 lines)",
            from_step=1,
            tokens=220,
            action="trimmed",
        )
        return str(path), session.id


async def test_the_handoff_tells_the_incident_from_its_record(recorded):
    path, sid = recorded
    async with Store(path) as store:
        h = await handoff.load(store, sid)
    assert h.asked.startswith("web in shop keeps restarting") and h.answer.startswith("web is OOMKilled")
    f = h.findings[0]
    assert (f.cause, f.object, f.tool) == (
        "oom_killed",
        "service/web",
        "kubernetes.describe_pod",
    ) and "OOMKilled" in f.evidence
    scale, delete = h.changes
    assert (scale.status, scale.decided_by, scale.diff, scale.rollback) == ("ran", "alice", DIFF, "scale back")
    assert scale.undo == "scale_deployment name=web replicas=2", "the undo the write recorded in the audit"
    assert (delete.status, delete.decided_by) == ("denied", "alice") and "the pod is evidence" in delete.answer
    whats = [(e.who, e.what) for e in h.timeline]
    assert (
        whats.index(("user", "asked"))
        < whats.index(("agent", "read"))
        < whats.index(("policy", "approval-asked"))
        < whats.index(("approver", "approved"))
    )
    assert ("approver", "denied") in whats and whats[-1] == ("agent", "answered")
    assert next(e for e in h.timeline if e.what == "asked").by == "alice", (
        "who asked: the session's user, from the audit"
    )
    assert any("delete_pod" in u and "denied by alice" in u for u in h.unknown)
    assert [d.ref for d in h.dropped] == ["out_1"]


async def test_lantern_handoff_prints_markdown_and_json(recorded, capsys):
    path, sid = recorded
    assert await command.run(argparse.Namespace(session=sid[:6], format="md", out=None, db=path)) == 0
    md = capsys.readouterr().out
    for part in (
        "# Handoff: web in shop keeps restarting",
        "## Findings",
        "**oom_killed** on `service/web`",
        "## Changes",
        '`kubernetes.scale_deployment(name="web", replicas=5)`: ran, approved by alice',
        "```diff\n" + DIFF + "\n```",
        "undo recorded: scale_deployment name=web replicas=2",
        "`: denied by alice",
        "## Timeline",
        "**alice** approved",
        "## Still unknown",
        "## What the context dropped",
        "`out_1` (trimmed, step 1, 220 tokens)",
    ):
        assert part in md, part
    assert await command.run(argparse.Namespace(session=sid, format="json", out=None, db=path)) == 0
    data = json.loads(capsys.readouterr().out)
    assert (
        data["session_id"] == sid
        and data["changes"][0]["diff"] == DIFF
        and data["findings"][0]["cause"] == "oom_killed"
    )


@pytest.mark.parametrize("session", [None, "nosuchid"])
async def test_a_missing_or_unknown_session_is_one_line_and_exit_2(recorded, capsys, session):
    path, _ = recorded
    assert await command.run(argparse.Namespace(session=session, format="md", out=None, db=path)) == 2
    err = capsys.readouterr().err
    assert err.startswith("lantern handoff: ") and err.count("\n") == 1
