"""Properties over random histories and budgets: pairing, no silent drops, facts kept, one drop event per item."""

from __future__ import annotations

import datetime as dt

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine import events as ev
from engine.context import CompactingContext, ContextConfig
from engine.testing import ScriptedModel
from tests.context.test_compaction import check_pairing

AT = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)

step_st = st.tuples(
    st.integers(0, 3),  # tool calls in this step
    st.lists(st.integers(0, 300), min_size=3, max_size=3),  # filler lines per output
    st.booleans(),  # a user message before the step
    st.booleans(),  # last call left without a result
)


def history(steps: list) -> tuple[list, list[str]]:
    events: list = []
    pods: list[str] = []
    seq = 0

    def add(cls, **kw):
        nonlocal seq
        seq += 1
        events.append(cls(session_id="p", seq=seq, at=AT, **kw))

    add(ev.UserMessage, text="why is the shop down?", turn=1)
    turn = 1
    for i, (ncalls, fillers, user_first, unfinished) in enumerate(steps):
        if user_first:
            turn += 1
            add(ev.UserMessage, text=f"and now look at step {i}", turn=turn)
        calls = [
            {"id": f"c{i}_{j}", "name": "kubectl", "arguments": {"args": f"describe pod {i}-{j}"}}
            for j in range(ncalls)
        ]
        add(ev.AssistantMessage, text=f"Step {i}: checking.", step=i + 1, tool_calls=calls, turn=turn)
        for j, c in enumerate(calls):
            if unfinished and j == ncalls - 1:
                continue
            pod = f"svc{i}x{j}-6d8f9b7c{j}-k{i % 10}m{j}n"
            pods.append(pod)
            body = f"Name: {pod}\nReason: OOMKilled\n" + "\n".join(
                f"  line {k} of noise for {i}" for k in range(fillers[j])
            )
            add(
                ev.ToolCallFinished,
                call_id=c["id"],
                tool="kubectl",
                status="ok",
                duration_ms=1,
                output=body,
                step=i + 1,
                turn=turn,
            )
    return events, pods


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(step_st, min_size=1, max_size=25),
    st.integers(2500, 40000),
    st.sampled_from([0.3, 0.6]),
    st.integers(1, 5),
    st.sampled_from(["system", "tail"]),
)
def test_random_histories_keep_pairs_facts_and_announce_every_drop(steps, window, share, recent, layout):
    events, pods = history(steps)
    builder = CompactingContext(
        ScriptedModel(context_window=window), ContextConfig(share=share, recent_groups=recent, layout=layout)
    )
    emitted: list[str] = []
    # grow the session step by step, as the loop does
    cut_points = [i + 1 for i, e in enumerate(events) if e.kind in ("user-message", "assistant-message")] + [
        len(events)
    ]
    c = None
    for end in cut_points:
        c = builder.compact(events[:end], "You are Lantern.")
        emitted.extend(d["ref"] for d in c.new_drops)
        check_pairing(c.messages[1:])
        assert c.used <= c.budget or c.over_budget
    assert c is not None
    assert len(emitted) == len(set(emitted)), "a DetailDropped per item, once"
    text = c.text
    for pod in pods:
        assert pod in text, f"ledger fact {pod} lost"
    holder = next((m.content for m in c.messages if "## No longer held in full" in m.content), "")
    listed = holder.split("## No longer held in full", 1)[-1] if c.dropped else ""
    assert bool(holder) == bool(c.dropped)
    current = {d["ref"] for d in c.dropped}
    assert current <= set(emitted)
    for e in events:
        body = getattr(e, "output", None) if e.kind == "tool-call-finished" else getattr(e, "text", None)
        if body and body not in text:
            assert f"e{e.seq}" in current, f"e{e.seq} left the prompt without a notice"
            assert f"e{e.seq} " in listed or f"e{e.seq}," in listed or listed.rstrip().endswith(f"e{e.seq}")
