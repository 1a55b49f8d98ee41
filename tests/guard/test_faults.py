"""Fault injection through real handlers: 429, 5xx, timeouts, 206, changed response shapes, budgets."""

from __future__ import annotations

import asyncio
from typing import Any

from engine.guard.breakers import Breakers, Budgets
from engine.tools import Tool, ToolMeta, ToolOutput

from .harness import make_session, of, run, step


class HTTPError(Exception):
    """What an HTTP executor raises: carries the status code."""

    def __init__(self, status_code: int, text: str = "") -> None:
        super().__init__(text or f"HTTP {status_code}")
        self.status_code = status_code


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def flaky_tool(
    behaviour: dict[str, Any],
    calls: list[dict[str, Any]],
    name: str = "metrics.query",
    meta: dict[str, Any] | None = None,
) -> Tool:
    async def handler(args: dict[str, Any]) -> Any:
        calls.append(args)
        mode = behaviour["mode"]
        if mode == "429":
            raise HTTPError(429, "Too Many Requests")
        if mode == "503":
            return ToolOutput(text="upstream unavailable", data={"status_code": 503}, status="error")
        if mode == "500":
            raise HTTPError(500, "Internal Server Error: db password=Hunter2Hunter2 leaked in trace")
        if mode == "timeout":
            await asyncio.sleep(5)
        if mode == "206":
            return ToolOutput(text="500 series", data={"status_code": 206, "items": list(range(500)), "total": 2140})
        if mode == "k8s-continue":
            return {
                "kind": "PodList",
                "metadata": {"continue": "abc", "remainingItemCount": 1640},
                "items": [{"n": i} for i in range(500)],
            }
        if mode == "changed":
            return {"result_v2": {"rows": []}}
        if mode == "crash-parse":
            data: dict[str, Any] = {}
            return data["items"]  # what a projection over a changed response does
        return {"items": [1, 2, 3]}

    return Tool(
        name,
        "Query metrics",
        {"type": "object", "properties": {"q": {"type": "string"}, "limit": {"type": "integer"}}, "required": ["q"]},
        handler,
        risk="read",
        pack="metrics",
        meta=ToolMeta(projection=("items",), **(meta or {})),
    )


async def test_breaker_opens_refuses_then_half_opens_and_closes(store):
    calls: list[dict[str, Any]] = []
    behaviour = {"mode": "503"}
    clock = Clock()
    breakers = Breakers(threshold=3, cooldown_s=30, identical_limit=3, clock=clock)
    script = [step(("metrics.query", {"q": f"up{i}"})) for i in range(4)] + [
        {"text": "The metrics backend is down; I could not read metrics."}
    ]
    session, _, audit = await make_session(store, [flaky_tool(behaviour, calls)], script, breakers=breakers)
    events = await run(session)
    fins = of(events, "tool-call-finished")
    assert len(calls) == 3  # the 4th call was refused without running
    assert [f.status for f in fins] == ["error"] * 3 + ["refused"]  # the fourth never ran: the breaker was open
    assert "backend error 503" in fins[0].output
    assert any("opened after 3 consecutive failures" in n for n in fins[2].notes)
    assert "circuit breaker for tool metrics.query is open" in fins[3].output
    assert of(events, "turn-finished")[0].reason == "answered"
    assert [r.kind for r in await audit.rows()] == ["execution", "execution", "execution", "refusal"]
    assert breakers.state("tool:metrics.query") == "open"

    # after the cool-down one trial call goes through; it succeeds and the circuit closes
    clock.t += 31
    behaviour["mode"] = "ok"
    session.model.enqueue(
        step(("metrics.query", {"q": "up-again"})), step(("metrics.query", {"q": "up-more"})), {"text": "recovered"}
    )
    events = await run(session, "again")
    fins = of(events, "tool-call-finished")
    assert [f.status for f in fins] == ["ok", "ok"]
    assert any("closed again" in n for n in fins[0].notes)
    assert breakers.state("tool:metrics.query") == "closed" and len(calls) == 5


async def test_half_open_trial_failure_reopens(store):
    calls: list[dict[str, Any]] = []
    clock = Clock()
    breakers = Breakers(threshold=2, cooldown_s=10, clock=clock)
    behaviour = {"mode": "429"}
    script = [step(("metrics.query", {"q": "a"})), step(("metrics.query", {"q": "b"})), {"text": "rate limited"}]
    session, _, _ = await make_session(store, [flaky_tool(behaviour, calls)], script, breakers=breakers)
    events = await run(session)
    assert "rate limited by the backend (429)" in of(events, "tool-call-finished")[0].output
    assert breakers.state("backend:metrics") == "open"
    clock.t += 11
    session.model.enqueue(
        step(("metrics.query", {"q": "c"})), step(("metrics.query", {"q": "d"})), {"text": "still down"}
    )
    events = await run(session, "retry")
    fins = of(events, "tool-call-finished")
    assert len(calls) == 3  # one trial, then refused again
    assert any("re-opened" in n for n in fins[0].notes)
    assert "is open" in fins[1].output


async def test_fourth_identical_failing_call_is_refused(store):
    calls: list[dict[str, Any]] = []
    breakers = Breakers(threshold=100, identical_limit=3)
    script = [step(("metrics.query", {"q": "same"})) for _ in range(5)] + [{"text": "giving up"}]
    session, _, audit = await make_session(store, [flaky_tool({"mode": "500"}, calls)], script, breakers=breakers)
    events = await run(session)
    fins = of(events, "tool-call-finished")
    assert len(calls) == 3
    assert "already failed 3 times" in fins[3].output and "already failed 3 times" in fins[4].output
    # the credential in the backend's error text never reaches the model, the events or the audit
    assert "Hunter2Hunter2" not in fins[0].output and "[REDACTED:password]" in fins[0].output
    assert all("Hunter2" not in r.detail for r in await audit.rows())
    # a different call to the same tool still runs
    session.model.enqueue(step(("metrics.query", {"q": "other"})), {"text": "ok"})
    await run(session, "other")
    assert len(calls) == 4


async def test_timeout_is_an_error_result_not_a_crash(store):
    calls: list[dict[str, Any]] = []
    script = [step(("metrics.query", {"q": "slow"})), {"text": "The query timed out."}]
    session, _, _ = await make_session(store, [flaky_tool({"mode": "timeout"}, calls)], script, timeout_s=0.2)
    events = await run(session)
    fin = of(events, "tool-call-finished")[0]
    assert fin.status == "error" and "timed out" in fin.output
    assert of(events, "turn-finished")[0].reason == "answered"
    assert of(events, "assistant-message")[-1].text == "The query timed out."


async def test_206_and_continue_tokens_are_flagged_partial(store):
    calls: list[dict[str, Any]] = []
    behaviour = {"mode": "206"}
    session, _, _ = await make_session(
        store, [flaky_tool(behaviour, calls)], [step(("metrics.query", {"q": "x"})), {"text": "partial"}]
    )
    events = await run(session)
    fin = of(events, "tool-call-finished")[0]
    assert fin.status == "partial" and fin.partial == "partial: 500 of ≥ 2,140 items"
    # and the model reads the flag
    tool_msgs = [m for m in session.model.requests[-1][0] if m.role == "tool"]
    assert "partial: 500 of ≥ 2,140 items" in tool_msgs[-1].content

    behaviour["mode"] = "k8s-continue"
    session.model.enqueue(step(("metrics.query", {"q": "pods"})), {"text": "partial"})
    events = await run(session, "pods")
    assert of(events, "tool-call-finished")[0].partial == "partial: 500 of ≥ 2,140 items"


async def test_changed_response_schema_is_noted_and_parse_crash_is_a_result(store):
    calls: list[dict[str, Any]] = []
    behaviour = {"mode": "changed"}
    session, _, _ = await make_session(
        store, [flaky_tool(behaviour, calls)], [step(("metrics.query", {"q": "x"})), {"text": "shape changed"}]
    )
    events = await run(session)
    fin = of(events, "tool-call-finished")[0]
    assert fin.status == "ok" and any("lacks expected fields items" in n for n in fin.notes)
    behaviour["mode"] = "crash-parse"
    session.model.enqueue(step(("metrics.query", {"q": "y"})), {"text": "broken"})
    events = await run(session, "again")
    fin = of(events, "tool-call-finished")[0]
    assert fin.status == "error" and "expected shape" in fin.output and "KeyError" in fin.output


async def test_limit_reached_is_partial(store):
    calls: list[dict[str, Any]] = []
    session, _, _ = await make_session(
        store, [flaky_tool({"mode": "ok"}, calls)], [step(("metrics.query", {"q": "x", "limit": 3})), {"text": "ok"}]
    )
    events = await run(session)
    assert of(events, "tool-call-finished")[0].partial == "partial: 3 items, more exist (limit 3 reached)"


async def test_turn_budget_refuses_further_calls_and_reports(store):
    calls: list[dict[str, Any]] = []
    budgets = Budgets(turn_limits={"calls": 2, "tokens": 1e9, "cost_usd": 10, "wall_s": 1e6})
    script = [step(("metrics.query", {"q": f"q{i}"})) for i in range(3)] + [{"text": "budget spent"}]
    session, _, audit = await make_session(store, [flaky_tool({"mode": "ok"}, calls)], script, budgets=budgets)
    events = await run(session)
    assert len(calls) == 2
    fins = of(events, "tool-call-finished")
    assert "turn budget for tool calls is spent" in fins[2].output
    upd = of(events, "budget-update")
    assert {u.scope for u in upd} == {"turn", "session"}
    turn = [u for u in upd if u.scope == "turn"]
    assert max(u.calls for u in turn) == 2 and turn[-1].limits["calls"] == 2
    assert [r.kind for r in await audit.rows()][-1] == "refusal"


async def test_full_output_is_kept_scrubbed_and_trimmed_for_the_model(store):
    async def big(args: dict[str, Any]) -> str:
        return "\n".join(f"line {i} token=ghp_{'a1B2' * 9}" for i in range(400))

    tool = Tool("logs.tail", "Tail logs", {"type": "object", "properties": {}}, big, risk="read", pack="logs")
    session, _, _ = await make_session(store, [tool], [step(("logs.tail", {})), {"text": "ok"}])
    events = await run(session)
    fin = of(events, "tool-call-finished")[0]
    assert len(fin.output) < 4200 and "trimmed" in fin.output and fin.output_ref
    full = await store.get_blob(fin.output_ref)
    assert full.count("[REDACTED:github-token]") == 400 and "ghp_" not in full
    assert fin.redactions == 400


def test_half_open_trial_is_given_back_when_the_call_does_not_run():
    clock = Clock()
    b = Breakers(threshold=1, cooldown_s=5, clock=clock)
    from engine.guard.breakers import classify

    b.record("t", "be", "h1", classify(HTTPError(503)))
    assert b.check("t", "be", "h2") is not None  # open
    clock.t += 6
    assert b.check("t", "be", "h2") is None  # the trial
    assert "trial call is already in progress" in (b.check("t", "be", "h3") or "")
    b.release("t", "be")  # e.g. the policy blocked it
    assert b.check("t", "be", "h3") is None
    b.record("t", "be", "h3", None)
    assert b.state("tool:t") == "closed" and b.state("backend:be") == "closed"
