"""Compaction through the real loop: facts survive tight budgets, every drop is announced and recallable."""

from __future__ import annotations

import json

from engine import events as ev
from engine.config import Config
from engine.context import CompactingContext, ContextConfig, build_context, recall_tool
from engine.dispatch import Dispatcher
from engine.loop import Session
from engine.policy.rules import Policy
from engine.store import Store
from engine.testing import ScriptedModel
from engine.toolbox import Toolbox
from engine.tools import Tool, ToolMeta, python_tool

MOUNTS = 60
SERVICES = ["checkout", "payments", "cart", "search", "shipping", "email", "quotes", "ads"]


def describe_pod(name: str) -> str:
    """Describe a pod (long, kubectl-like output with one distinctive fact per service)."""
    idx = SERVICES.index(name) if name in SERVICES else 0
    pod = f"{name}-7d9f8c4b{idx}-x{idx}k2p"
    filler = "\n".join(f"    Mount {i}:  /var/lib/{name}/volume-{i} from data-{i} (rw)" for i in range(MOUNTS))
    return (
        f"Name:             {pod}\nNamespace:        shop\nNode:             worker-0{idx}/10.0.0.{idx}\n"
        f"Containers:\n  server:\n    Image:  ghcr.io/acme/{name}:v1.{idx}.0\n    Last State:  Terminated\n"
        f"      Reason:       OOMKilled\n      Exit Code:    13{idx}\n{filler}\n"
        f"2025-10-08T14:1{idx}:00Z ERROR {name} java.lang.IllegalStateException: pool {idx} exhausted after {100 + idx}ms\n"
    )


def script(n: int) -> list[dict]:
    steps = [
        {"text": f"Looking at {s}.", "tool_calls": [{"name": "describe_pod", "arguments": {"name": s}}]}
        for s in SERVICES[:n]
    ]
    return steps + [{"text": "Done: the pods are OOMKilled."}]


async def run(session: Session, text: str) -> list:
    return [e async for e in session.run_turn(text)]


def check_pairing(messages) -> None:
    """Every tool message answers a call of the assistant message before it, and every call is answered."""
    pending: list[str] = []
    for m in messages:
        if m.role == "assistant":
            assert not pending, f"calls without results: {pending}"
            pending = [c.id for c in m.tool_calls]
        elif m.role == "tool":
            assert m.tool_call_id in pending, f"orphan tool message {m.tool_call_id}"
            pending.remove(m.tool_call_id)
        else:
            assert not pending, f"calls without results before a {m.role} message: {pending}"
    assert not pending


async def test_tight_budget_keeps_ledger_facts_announces_drops_and_pairs_calls():
    model = ScriptedModel(script(8), context_window=4000)
    builder = CompactingContext(model, ContextConfig(share=0.6, recent_groups=2))
    s = Session(model, Toolbox([python_tool(describe_pod)]), context=builder)
    out = await run(s, "why do the shop pods restart?")
    assert out[-1].reason == "answered"

    gauges = [e for e in out if e.kind == "context-gauge"]
    steps = [e for e in out if e.kind == "step-started"]
    assert len(gauges) == len(steps) == 9
    for g in gauges:
        assert g.budget == 2400 and g.window == 4000 and g.used <= g.budget
        assert set(g.tiers) >= {"system", "ledger", "summaries", "recent", "tools"}
    assert gauges[-1].dropped > 0

    # the last prompt: early facts still there, verbatim, although their outputs are gone
    msgs, _ = model.requests[-1]
    prompt = "\n".join(m.content for m in msgs)
    for idx, name in enumerate(SERVICES[:8]):
        assert f"{name}-7d9f8c4b{idx}-x{idx}k2p" in prompt
        assert f"java.lang.IllegalStateException: pool {idx} exhausted after {100 + idx}ms" in prompt
        assert f"Exit Code:    13{idx}" in prompt
    assert "OOMKilled" in prompt
    check_pairing(msgs)
    for m_, _tools in model.requests:
        check_pairing(m_)

    # every item that lost detail: one DetailDropped, and its ref in the prompt's list
    dropped = [e for e in out if e.kind == "detail-dropped"]
    refs = [d.ref for d in dropped]
    assert len(refs) == len(set(refs)) and refs
    listed = msgs[0].content.split("## No longer held in full", 1)[1]
    for d in dropped:
        assert d.ref in listed.replace(",", " ").replace(";", " ").split() or f"{d.ref} " in listed
        assert d.tokens > 0
    # and nothing left out of the prompt without being listed
    finished = [e for e in s.events if e.kind == "tool-call-finished"]
    gone = [e for e in finished if e.output not in prompt]
    assert gone and {f"e{e.seq}" for e in gone} <= set(refs)


async def test_older_steps_are_reduced_then_summarised_and_the_newest_stay_verbatim():
    global MOUNTS
    MOUNTS, saved = 25, MOUNTS
    try:
        model = ScriptedModel(script(8), context_window=4000)
        builder = CompactingContext(model, ContextConfig(share=0.6, recent_groups=2))
        s = Session(model, Toolbox([python_tool(describe_pod)]), context=builder)
        out = await run(s, "why do the shop pods restart?")
    finally:
        MOUNTS = saved
    dropped = [e for e in out if e.kind == "detail-dropped"]
    assert len(dropped) >= 5 and all(e.tokens > 0 for e in dropped)
    msgs, _ = model.requests[-1]
    prompt = "\n".join(m.content for m in msgs)
    finished = [e for e in s.events if e.kind == "tool-call-finished"]
    # the two newest outputs are verbatim, the oldest is not
    assert all(e.output in prompt for e in finished[-2:])
    assert finished[0].output not in prompt
    assert "## Earlier in this session (summarised)" in prompt and "- step 1 assistant" in prompt
    assert "describe_pod(name=checkout) → ok [e" in prompt
    gauges = [e for e in out if e.kind == "context-gauge"]
    assert all(g.used <= g.budget for g in gauges)
    assert gauges[-1].tiers["summaries"] > 0 and gauges[-1].dropped == len(dropped)
    for idx, name in enumerate(SERVICES):
        assert f"{name}-7d9f8c4b{idx}-x{idx}k2p" in prompt


async def test_recall_detail_brings_back_a_dropped_output(tmp_path):
    model = ScriptedModel(script(6), context_window=4000)
    builder = CompactingContext(model, ContextConfig(share=0.6, recent_groups=2))
    async with Store(tmp_path / "s.db") as store:
        tb = Toolbox([python_tool(describe_pod)])
        # no builder passed: the tool finds the turn's builder itself
        tb.add(recall_tool(lambda: store))
        s = Session(model, tb, context=builder, sink=store)
        await store.create_session(s.id)
        out = await run(s, "why do the shop pods restart?")
        first = [d for d in out if d.kind == "detail-dropped"][0]
        original = next(e for e in s.events if f"e{e.seq}" == first.ref)
        model.enqueue({"tool_calls": [{"name": "recall_detail", "arguments": {"ref": first.ref}}]}, {"text": "ok"})
        out2 = await run(s, "show me that output again")
        rec = [e for e in out2 if e.kind == "tool-call-finished" and e.tool == "recall_detail"][0]
        assert rec.status in ("ok", "partial")
        assert f"recalled {first.ref}" in rec.output
        # the output comes back (re-trimmed to fit: key lines, never the whole 60 mounts at once)
        assert "OOMKilled" in rec.output and "IllegalStateException" in rec.output
        assert original.output.splitlines()[0] in rec.output

        # with the full output stored under output_ref, the store copy wins
        await store.put_blob("blob-1", s.id, "FULL SCRUBBED OUTPUT checkout-7d9f8c4b0-x0k2p")
        fake = ev.ToolCallFinished(
            session_id=s.id,
            seq=9999,
            at=ev.utcnow(),
            call_id="zz",
            tool="describe_pod",
            status="ok",
            duration_ms=1,
            output="short",
            output_ref="blob-1",
        )
        builder.events = [*builder.events, fake]
        tool = recall_tool(lambda: store, builder)
        res = await tool.handler({"ref": "e9999"})
        assert "FULL SCRUBBED OUTPUT" in res.text
        bad = await tool.handler({"ref": "e123456"})
        assert bad.status == "error" and "e123456" in bad.text


async def test_projection_trims_json_output_at_arrival():
    payload = {
        "items": [
            {
                "metadata": {"name": f"pod-{i}", "labels": {"x": "y" * 50}},
                "status": {"phase": "Running", "hostIP": "10.0.0.1"},
            }
            for i in range(20)
        ]
    }

    async def list_pods(args):
        return json.dumps(payload)

    tool = Tool(
        "list_pods",
        "list pods",
        {"type": "object", "properties": {}},
        list_pods,
        meta=ToolMeta(projection=("items[].metadata.name", "items[].status.phase")),
    )
    model = ScriptedModel(
        [{"tool_calls": [{"name": "list_pods", "arguments": {}}]}, {"text": "ok"}], context_window=32000
    )
    builder = build_context(model, Config(context_share=0.6))
    s = Session(model, Toolbox([tool]), context=builder)
    out = await run(s, "list pods")
    msgs, _ = model.requests[-1]
    tool_msg = [m for m in msgs if m.role == "tool"][0]
    body = tool_msg.content.split("\n", 1)[1]
    assert json.loads(body) == {
        "items": [{"metadata": {"name": f"pod-{i}"}, "status": {"phase": "Running"}} for i in range(20)]
    }
    trimmed = [e for e in out if e.kind == "detail-dropped"]
    assert len(trimmed) == 1 and trimmed[0].action == "trimmed"
    assert trimmed[0].ref in msgs[0].content


async def test_gauge_every_step_and_no_compaction_when_it_fits():
    model = ScriptedModel(script(3), context_window=200_000)
    s = Session(model, Toolbox([python_tool(describe_pod)]), context=build_context(model, Config()))
    out = await run(s, "check")
    kinds = [e.kind for e in out]
    assert kinds.count("context-gauge") == kinds.count("step-started") == 4
    assert "detail-dropped" not in kinds
    # each gauge comes right before its step starts
    for i, k in enumerate(kinds):
        if k == "step-started":
            assert kinds[i - 1] == "context-gauge"
    msgs, _ = model.requests[-1]
    outputs = [e.output for e in s.events if e.kind == "tool-call-finished"]
    prompt = "\n".join(m.content for m in msgs)
    assert all(o in prompt for o in outputs)
    assert "No longer held in full" not in prompt


async def test_calls_without_results_get_a_placeholder_and_bad_share_is_rejected():
    model = ScriptedModel([], context_window=8000)
    builder = CompactingContext(model)
    s = Session(model, Toolbox(), context=builder)
    s.events = [
        s.stamp(ev.UserMessage, text="go"),
        s.stamp(
            ev.AssistantMessage,
            text="",
            step=1,
            tool_calls=[{"id": "a", "name": "t", "arguments": {}}, {"id": "b", "name": "t", "arguments": {}}],
        ),
        s.stamp(ev.ToolCallFinished, call_id="a", tool="t", status="ok", duration_ms=1, output="fine"),
    ]
    c = builder.compact(s.events, "sys")
    check_pairing(c.messages[1:])
    assert any("did not finish" in m.content for m in c.messages)
    try:
        CompactingContext(model, ContextConfig(share=1.5))
    except ValueError as exc:
        assert "share" in str(exc)
    else:
        raise AssertionError("a share above 1 must be refused")


async def test_tail_layout_keeps_the_prefix_stable_and_notes_last():
    model = ScriptedModel(script(4), context_window=200_000)
    builder = CompactingContext(model, ContextConfig(layout="tail"))
    s = Session(model, Toolbox([python_tool(describe_pod)]), context=builder)
    await run(s, "why do the shop pods restart?")
    reqs = [m for m, _ in model.requests]
    assert reqs[0][-1].role == "user" and reqs[0][-1].content == "why do the shop pods restart?"
    for prev, cur in zip(reqs[1:], reqs[2:]):
        # everything before the trailing note (when there is one) is unchanged from one step to the next
        kept = prev[:-1] if prev[-1].note else prev
        assert cur[: len(kept)] == kept
        assert "## Fact ledger" not in cur[0].content
        history = cur[:-1] if cur[-1].note else cur
        check_pairing(history[1:])
        # the tail is read again at every step: it pins no fact the history still shows verbatim
        held = "\n".join(m.content for m in history)
        note = cur[-1].content if cur[-1].note else ""
        pinned = note.split("## Fact ledger", 1)[1] if "## Fact ledger" in note else ""
        assert "checkout-7d9f8c4b0-x0k2p" in held and "checkout-7d9f8c4b0-x0k2p" not in pinned


async def test_over_budget_is_said_once_not_hidden():
    def many_pods(n: int) -> str:
        """List pods (hundreds of distinct names: a ledger bigger than a tiny window)."""
        return "\n".join(
            f"shop-{i}-7d9f8c4b{i % 10}-k{i % 10}m2n   0/1   CrashLoopBackOff   {i}" for i in range(int(n))
        )

    steps = [
        {"tool_calls": [{"name": "many_pods", "arguments": {"n": "300"}}]},
        {"tool_calls": [{"name": "many_pods", "arguments": {"n": "299"}}]},
        {"text": "done"},
    ]
    model = ScriptedModel(steps, context_window=2000)
    whole = Dispatcher(
        Policy.permissive(), None, output_cap=100_000
    )  # the model reads every line: the context must cope
    s = Session(model, Toolbox([python_tool(many_pods)], dispatcher=whole), context=CompactingContext(model))
    out = await run(s, "list")
    notices = [e for e in out if e.kind == "notice" and e.topic == "context"]
    gauges = [e for e in out if e.kind == "context-gauge"]
    assert len(notices) == 1 and "over its budget" in notices[0].text
    assert gauges[-1].used > gauges[-1].budget and gauges[-1].tiers["ledger"] > gauges[-1].budget // 2
    # the facts are still all there: over budget is said, not solved by losing them
    msgs, _ = model.requests[-1]
    prompt = "\n".join(m.content for m in msgs)
    assert all(f"shop-{i}-7d9f8c4b{i % 10}-k{i % 10}m2n" in prompt for i in range(300))
