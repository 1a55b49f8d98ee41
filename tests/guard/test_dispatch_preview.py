"""The dry-run preview in every approval: the dispatcher runs a tool's preview before asking, puts
its diff in the ApprovalRequested event, and fails the call (never asking) when the dry run is rejected."""

from __future__ import annotations

from typing import Any

from engine.tools import Preview, PreviewFailed, Tool, ToolMeta, ToolOutput
from tests.guard.harness import NAME, Recorder, ScriptedApprover, make_session, of, run, step

DIFF = "--- live/Deployment/shop/web\n+++ dry-run/Deployment/shop/web\n@@ -1,1 +1,1 @@\n-  replicas: 2\n+  replicas: 5"


def scale_tool(rec: Recorder, preview: Any) -> Tool:
    """A write whose handler records executions and returns the way back, with the given preview."""

    async def scale(args: dict[str, Any]) -> Any:
        rec.calls.append(("kubernetes.scale_deployment", args))
        return ToolOutput(
            text=f"scaled {args['name']}",
            data={"previous": {"replicas": 2}, "undo": f"scale_deployment {args['name']} replicas=2"},
        )

    params = {
        "type": "object",
        "properties": {"name": NAME, "replicas": {"type": "integer"}},
        "required": ["name", "replicas"],
    }
    return Tool(
        "kubernetes.scale_deployment",
        "Scale a deployment",
        params,
        scale,
        risk="write",
        pack="kubernetes",
        meta=ToolMeta(rollback="scale back"),
        preview=preview,
    )


async def test_the_approval_carries_the_dry_run_diff_and_the_audit_the_way_back(store):
    rec = Recorder()
    seen: list[dict[str, Any]] = []

    async def preview(args: dict[str, Any]) -> Preview:
        seen.append(args)
        return Preview(diff=DIFF, objects=["Deployment/shop/web"])

    approver = ScriptedApprover(True)
    session, _, audit = await make_session(
        store,
        [scale_tool(rec, preview)],
        [step(("kubernetes.scale_deployment", {"name": "web", "replicas": 5})), {"text": "done"}],
        approver=approver,
    )
    events = await run(session)
    (req,) = of(events, "approval-requested")
    assert req.preview == DIFF and req.objects == ["Deployment/shop/web"] and req.rollback == "scale back"
    assert seen == [{"name": "web", "replicas": 5}] and rec.count("kubernetes.scale_deployment") == 1
    execution = [r for r in await audit.rows() if r.kind == "execution"][-1]
    assert "undo: scale_deployment web replicas=2" in execution.detail


async def test_a_rejected_dry_run_is_never_offered_and_the_call_fails_with_the_servers_error(store):
    rec = Recorder()

    async def preview(args: dict[str, Any]) -> Preview:
        raise PreviewFailed('Invalid (HTTP 422): Deployment.apps "web" is invalid: spec.replicas: Invalid value: -1')

    approver = ScriptedApprover(True)
    session, _, audit = await make_session(
        store,
        [scale_tool(rec, preview)],
        [step(("kubernetes.scale_deployment", {"name": "web", "replicas": 5})), {"text": "done"}],
        approver=approver,
    )
    events = await run(session)
    assert not of(events, "approval-requested") and approver.requests == [] and rec.calls == []
    (fin,) = [e for e in of(events, "tool-call-finished") if e.tool == "kubernetes.scale_deployment"]
    assert fin.status == "error" and "dry run was rejected" in fin.output and "HTTP 422" in fin.output
    assert any(r.rule == "guard:dry-run" and "HTTP 422" in r.detail for r in await audit.rows())


async def test_a_change_whose_dry_run_changes_nothing_is_never_offered(store):
    # A small model "fixes" by setting what is already set: the backend's dry run says so, and the
    # person is not asked to approve a change that changes nothing; the model reads why.
    rec = Recorder()

    async def preview(args: dict[str, Any]) -> Preview:
        return Preview(
            objects=["Deployment/shop/web"], note="no change: the live object already matches", unchanged=True
        )

    approver = ScriptedApprover(True)
    session, _, audit = await make_session(
        store,
        [scale_tool(rec, preview)],
        [step(("kubernetes.scale_deployment", {"name": "web", "replicas": 2})), {"text": "done"}],
        approver=approver,
    )
    events = await run(session)
    assert not of(events, "approval-requested") and approver.requests == [] and rec.calls == []
    (fin,) = [e for e in of(events, "tool-call-finished") if e.tool == "kubernetes.scale_deployment"]
    assert fin.status == "error" and fin.error_kind == "client" and "would change nothing" in fin.output
    assert any(r.rule == "guard:no-change" for r in await audit.rows())


async def test_an_empty_diff_without_the_backends_word_is_still_asked(store):
    # A backend with no dry run (REST) shows the request, not a diff: that is not "no change".
    rec = Recorder()

    async def preview(args: dict[str, Any]) -> Preview:
        return Preview(objects=["POST /scale"], note="no dry run for this backend")

    approver = ScriptedApprover(True)
    session, _, _ = await make_session(
        store,
        [scale_tool(rec, preview)],
        [step(("kubernetes.scale_deployment", {"name": "web", "replicas": 5})), {"text": "done"}],
        approver=approver,
    )
    events = await run(session)
    assert len(of(events, "approval-requested")) == 1 and rec.count("kubernetes.scale_deployment") == 1


def test_the_plain_prompt_shows_the_diff_or_says_there_is_no_dry_run():
    import datetime as dt

    from console.plain import preview_lines
    from engine import events as ev

    base = dict(
        session_id="s",
        seq=1,
        at=dt.datetime.now(dt.UTC),
        request_id="r",
        call_id="c",
        tool="kubernetes.scale_deployment",
        arguments={},
        risk="write",
        decision="approve",
        rule="default",
        call_hash="h",
    )
    lines = preview_lines(ev.ApprovalRequested(**base, preview=DIFF))
    assert ("\n+  replicas: 5", "green") in lines and ("\n-  replicas: 2", "red") in lines
    assert "no dry run" in preview_lines(ev.ApprovalRequested(**base))[0][0]


async def test_lantern_audit_undo_lists_the_way_back_a_write_recorded(store, tmp_path, capsys):
    from engine.policy.audit_cli import _undo

    rec = Recorder()

    async def preview(args: dict[str, Any]) -> Preview:
        return Preview(diff=DIFF, objects=["Deployment/shop/web"])

    session, _, audit = await make_session(
        store,
        [scale_tool(rec, preview)],
        [step(("kubernetes.scale_deployment", {"name": "web", "replicas": 5})), {"text": "done"}],
        approver=ScriptedApprover(True),
    )
    await run(session)
    import argparse

    assert await _undo(audit, argparse.Namespace(session=None, n=5)) == 0
    out = capsys.readouterr().out
    assert "kubernetes.scale_deployment" in out and "undo: scale_deployment web replicas=2" in out


async def test_a_persons_own_call_goes_through_the_same_preview_approval_and_audit(store):
    rec = Recorder()

    async def preview(args: dict[str, Any]) -> Preview:
        return Preview(diff=DIFF, objects=["Deployment/shop/web"])

    approver = ScriptedApprover(True)
    session, _, audit = await make_session(store, [scale_tool(rec, preview)], [], approver=approver)
    events = [
        e
        async for e in session.run_call(
            "apply from the inspector", "kubernetes.scale_deployment", {"name": "web", "replicas": 5}
        )
    ]
    kinds = [e.kind for e in events]
    assert kinds[0] == "user-message" and kinds[-1] == "turn-finished" and "approval-requested" in kinds
    assert approver.requests[0].preview == DIFF and rec.count("kubernetes.scale_deployment") == 1
    assert [r.kind for r in await audit.rows() if r.tool == "kubernetes.scale_deployment"] == [
        "approval",
        "intent",
        "execution",
    ]
