"""Block Kit as the Slack face builds it: every limit Slack documents is checked, and the builders
cut what is too long with a note saying where the whole of it is, never silently."""

from __future__ import annotations

import datetime as dt

from engine import events as ev
from engine.handoff import Change, Finding, Handoff
from server.pages import Page
from server.slack import blocks as bk
from server.slack import render

AT = dt.datetime(2026, 12, 5, 4, 0, tzinfo=dt.UTC)


def _request(**kw) -> ev.ApprovalRequested:
    base = dict(
        session_id="s1", seq=9, at=AT, turn=1, request_id="r1", call_id="c1", tool="rollback_deployment",
        arguments={"name": "api", "namespace": "payments", "revision": 13}, risk="write", decision="approve",
        rule="org/rollback", reason="changes a production deployment", call_hash="h" * 64,
        rollback="kubectl -n payments rollout undo deployment/api --to-revision=14",
        expires_at=AT + dt.timedelta(minutes=5),
    )  # fmt: skip
    return ev.ApprovalRequested(**(base | kw))


def test_the_validator_names_each_broken_limit():
    too_many = [bk.divider()] * 51
    assert bk.problems(too_many) == ["blocks: 51 blocks (at most 50)"]
    long_section = {"type": "section", "text": {"type": "mrkdwn", "text": "x" * 3001}}
    assert bk.problems([long_section]) == ["blocks[0].text.text: 3,001 characters (1 to 3,000)"]
    header = {"type": "header", "text": {"type": "mrkdwn", "text": "h"}}
    assert bk.problems([header]) == ["blocks[0].text.type: 'mrkdwn' (one of plain_text)"]
    header = {"type": "header", "text": {"type": "plain_text", "text": "h" * 151}}
    assert "151 characters (1 to 150)" in bk.problems([header])[0]
    ctx = {"type": "context", "elements": [{"type": "mrkdwn", "text": "c"}] * 11}
    assert bk.problems([ctx]) == ["blocks[0].elements: 11 elements (1 to 10)"]
    btn = {"type": "button", "text": {"type": "plain_text", "text": "b" * 76}, "action_id": "a" * 256, "value": "v" * 2001, "style": "green"}  # fmt: skip
    found = bk.problems([{"type": "actions", "elements": [btn]}])
    assert any("text.text: 76 characters (1 to 75)" in p for p in found)
    assert any("action_id: 256 characters (1 to 255)" in p for p in found)
    assert any("value: 2,001 characters (1 to 2,000)" in p for p in found)
    assert any("style: 'green'" in p for p in found)
    ok_btn = bk.button("Go", "go", "1")
    assert bk.problems([bk.actions(*[ok_btn] * 26)])[0] == "blocks[0].elements: 26 elements (1 to 25)"
    assert any("used twice in the block" in p for p in bk.problems([bk.actions(ok_btn, ok_btn)]))
    dup = [bk.section("a", block_id="x"), bk.section("b", block_id="x")]
    assert bk.problems(dup) == ["blocks[1].block_id: 'x' is used twice in the message"]
    fields = bk.section("t")
    fields["fields"] = [bk.md("f")] * 11
    assert bk.problems([fields]) == ["blocks[0].fields: 1 to 10 fields"]
    assert bk.problems({"text": "t" * 4001, "blocks": []}) == ["text: 4,001 characters (at most 4,000)"]
    assert bk.problems([{"type": "video"}]) == ["blocks[0].type: 'video' is not a block this face sends"]
    assert bk.problems([{"type": "section", "text": {"type": "mrkdwn", "text": ""}}]) == [
        "blocks[0].text.text: empty (1 to 3,000)"
    ]


def test_the_builders_cut_with_a_note_and_fit():
    assert bk.problems([bk.section("x" * 10_000), bk.header("h" * 500), bk.context(*["c"] * 30)]) == []
    assert bk.section("x" * 10_000)["text"]["text"].endswith("…")
    assert len(bk.context(*[f"c{i}" for i in range(30)])["elements"]) == 10
    blocks = bk.fit([bk.section(str(i)) for i in range(80)], "in the record")
    assert (
        len(blocks) == 50
        and "31 more blocks left out; the whole of it is in the record" in blocks[-1]["elements"][0]["text"]
    )
    assert bk.esc("a <b> & c") == "a &lt;b&gt; &amp; c"


def test_a_long_diff_is_cut_with_a_note_saying_where_the_whole_one_is():
    diff = "\n".join(f"+line {i} " + "y" * 60 for i in range(2_000))
    msg = render.approval_message(_request(preview=diff, objects=["Deployment/payments/api"]))
    assert bk.problems(msg) == []
    shown = next(b["text"]["text"] for b in msg["blocks"] if "Dry run" in b.get("text", {}).get("text", ""))
    assert len(shown) <= 3000 and "+line 0 " in shown
    assert "more lines of 2,000; the full one is in the session record: `lantern handoff s1`" in shown
    buttons = next(b for b in msg["blocks"] if b["type"] == "actions")["elements"]
    assert [b["action_id"] for b in buttons] == [render.APPROVE, render.DENY]
    assert buttons[0]["value"] == '{"s":"s1","r":"r1","h":"' + "h" * 64 + '"}'


def test_an_answered_request_shows_who_and_no_buttons():
    resolved = ev.ApprovalResolved(session_id="s1", seq=10, at=AT, turn=1, request_id="r1", call_id="c1", approved=False, by="bob", reason="not now")  # fmt: skip
    msg = render.approval_message(_request(), resolved)
    assert bk.problems(msg) == []
    assert not any(b["type"] == "actions" for b in msg["blocks"])
    assert "❌ Denied by *bob*: not now" in msg["blocks"][-1]["text"]["text"]


def test_a_big_turn_folds_its_steps_and_keeps_its_findings():
    view = render.TurnView("s1", 1, asked_by="alice")
    seq = 0
    for step in range(1, 40):
        for k in range(30):
            seq += 1
            call = f"c{step}-{k}"
            view.see(ev.ToolCallStarted(session_id="s1", seq=seq, at=AT, turn=1, call_id=call, tool="get_logs", arguments={"pod": "p" * 300}, step=step))  # fmt: skip
            view.see(ev.ToolCallFinished(session_id="s1", seq=seq, at=AT, turn=1, call_id=call, tool="get_logs", status="ok", duration_ms=1, findings=[f"oom_killed on service/api{k} (weight 0.90): line {k}"], step=step))  # fmt: skip
    msg = view.message()
    assert bk.problems(msg) == []
    steps = [b for b in msg["blocks"] if b["type"] == "context" and "step" in b["elements"][0]["text"]]
    assert (
        len(steps) == render.STEPS_SHOWN + 1 and "31 earlier steps folded: 930 calls" in steps[0]["elements"][0]["text"]
    )
    findings = next(
        b["text"]["text"] for b in msg["blocks"] if b["type"] == "section" and "Findings" in b["text"]["text"]
    )
    assert ">line 0" in findings and "_and 20 more_" in findings


def test_a_long_answer_is_split_into_sections():
    text = "## Root cause\n\n" + "\n\n".join(f"**para {i}** " + "z" * 900 for i in range(200))
    msg = render.answer_message(text, "s1", 1)
    assert bk.problems(msg) == []
    assert msg["blocks"][0]["text"]["text"].startswith("*Root cause*")
    assert "more blocks left out; the whole of it is in the session record" in msg["blocks"][-1]["elements"][0]["text"]


def test_pages_and_handoffs_fit():
    page = Page(source="generic", group_key="g" * 5000, status="firing", title="T" * 400, labels={"severity": "page"})
    assert bk.problems(render.page_message(page, "s1")) == []
    h = Handoff(
        session_id="s1", asked="a" * 5000, answer="b" * 20_000,
        findings=[Finding(cause="oom", object="svc/x", weight=0.9, evidence="e" * 500, tool="t", at=AT)] * 30,
        changes=[Change(tool="rollback", arguments={"x": 1}, risk="write", at=AT, status="ran", decided_by="bob", diff="+d\n" * 5000)] * 20,
        unknown=["u" * 400] * 30,
    )  # fmt: skip
    msg = render.handoff_message(h)
    assert bk.problems(msg) == []
    assert "lantern handoff s1" in str(msg["blocks"])


def test_mrkdwn_keeps_code_and_converts_markdown():
    out = render.mrkdwn("# Title\n**bold** and [docs](https://x.org)\n- item\n```\n**not bold** <tag>\n```")
    assert out.splitlines()[:3] == ["*Title*", "*bold* and <https://x.org|docs>", "• item"]
    assert "**not bold** &lt;tag&gt;" in out
