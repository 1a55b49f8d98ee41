"""Experience memory: past requests teach retrieval which tools answer them, and bad ones never do."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from bench.multiturn import catalog_tools
from engine import events as ev
from engine.dispatch import Dispatcher
from engine.loop import Session
from engine.policy.rules import Policy
from engine.retrieval import experience as xp
from engine.retrieval.embed import DIM
from engine.retrieval.experience import Experience, ExperienceMemory, recall
from engine.retrieval.index import HybridIndex
from engine.retrieval.lessons import lessons_from_session
from engine.retrieval.selector import ToolSelector
from engine.store import Store
from engine.testing import ScriptedModel
from engine.toolbox import Toolbox
from engine.tools import Tool, ToolOutput
from wiring import score_and_learn

PAST = [
    Experience(
        "show the logs of the crashed payments pod", ("kubernetes.get_pod_logs", "kubernetes.describe_pod"), "session:a"
    ),
    Experience("roll orders-api back to the previous revision", ("kubernetes.rollout_undo",), "session:b"),
    Experience("why did the certificate of api.example.com expire", ("tls.check_endpoint_certificate",), "import:x"),
]


def test_memory_persists_grows_incrementally_and_forgets(tmp_path: Path) -> None:
    mem = ExperienceMemory(tmp_path / "x")
    assert mem.add(PAST) == 3 and mem.embedder.queries_embedded == 3
    assert mem.add(PAST[:2]) == 0  # already held: nothing added, nothing embedded
    again = ExperienceMemory(tmp_path / "x", embedder=mem.embedder)
    assert [r[1] for r in again.rows()] == [e.text for e in PAST]
    assert again.forget(source="session:b") == 1 and len(ExperienceMemory(tmp_path / "x")) == 2
    # A forgotten request that comes back is served from the vector cache, not re-embedded.
    assert again.add([PAST[1]]) == 1 and again.embedder.queries_embedded == 3
    assert again.bm25("orders-api revision")[0][0] == 2
    with pytest.raises(xp.ExperienceError):
        again.forget(ids=[""])  # a prefix matching several rows is refused


def test_near_requests_vote_for_their_tools_and_far_ones_say_nothing(tmp_path: Path) -> None:
    mem = ExperienceMemory(tmp_path / "x")
    mem.add(PAST)
    q = "logs of the crashed checkout pod"
    got = recall(mem, q, mem.embedder.query(q))
    assert [t for t, _ in got.ranking] == ["kubernetes.get_pod_logs", "kubernetes.describe_pod"]
    assert got.because["kubernetes.get_pod_logs"] == [PAST[0].text] and got.strength > 0
    far = "post the weekly cost report to finance"
    assert recall(mem, far, mem.embedder.query(far)).ranking == []


def test_a_large_memory_preselects_by_sign_bits_and_finds_the_nearest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(xp, "EXACT_ROWS", 100)
    monkeypatch.setattr(xp, "HAMMING_POOL", 50)
    rng = np.random.default_rng(3)
    vecs = rng.normal(size=(1000, DIM)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    mem = ExperienceMemory(tmp_path / "x")
    rows = [Experience(f"request {i}", (f"tool{i % 7}",), "import:synthetic") for i in range(1000)]
    assert mem.add(rows[:600], vectors=vecs[:600]) == 600
    assert mem.add(rows, vectors=vecs) == 400  # the rest, appended
    q = vecs[777] + 0.05 * rng.normal(size=DIM).astype(np.float32)
    assert mem.dense(q / np.linalg.norm(q), k=3)[0][0] == 777
    assert mem.companions("tool0") == []  # a tool always used alone has no companions


def _events(calls: list[tuple[str, str]], *, query: str = "checkout is slow") -> list:
    base = {"session_id": "s1", "at": ev.utcnow(), "turn": 1}
    out: list = [
        ev.UserMessage(seq=1, text=query, **base),
        ev.ToolSetChanged(seq=2, query=query, loaded=[t for t, _ in calls], **base),
    ]
    for n, (tool, status) in enumerate(calls):
        out.append(ev.ToolCallFinished(seq=3 + n, call_id=f"c{n}", tool=tool, status=status, duration_ms=1.0, **base))
    return out


def test_only_successful_useful_unrefused_calls_of_a_good_session_teach() -> None:
    calls = [
        ("github.list_deployments", "ok"),
        ("kubernetes.rollout_undo", "denied"),
        ("dns.resolve", "error"),
        ("prometheus.list_alerts", "ok"),
    ]
    score = {"score": 0.9, "calls_adding_nothing": ["prometheus.list_alerts"]}
    (lesson,) = lessons_from_session(_events(calls), score, session_id="s1")
    assert (
        lesson.tools == ("github.list_deployments",)
        and lesson.text == "checkout is slow"
        and lesson.source == "session:s1"
    )
    # A tool denied once in the turn does not teach even if another call of it ran.
    again = [
        ("kubernetes.rollout_undo", "ok"),
        ("kubernetes.rollout_undo", "denied"),
        ("github.list_deployments", "ok"),
    ]
    assert lessons_from_session(_events(again), {"score": 0.9}, session_id="s1")[0].tools == (
        "github.list_deployments",
    )
    assert lessons_from_session(_events(calls), score, marked_bad=True) == []
    assert lessons_from_session(_events(calls), {**score, "score": 0.5}) == []


# -- a session that ended well teaches the next one ----------------------------------------------
REQUEST = "the checkout page is slow for customers"
AGAIN = "checkout is slow for customers again"
TAUGHT = ("github.list_deployments", "kubernetes.rollout_history")


def _tools() -> list[Tool]:
    tools = catalog_tools()
    outputs = {
        "github.list_deployments": "checkout-api deployed rev-4711 at 10:02 by ci-bot",
        "kubernetes.rollout_history": "checkout-api revision rev-4711 image shop/checkout:v2.3.1",
    }

    def handler(name: str):
        async def run(args: dict) -> ToolOutput:
            return ToolOutput(text=outputs.get(name, f"{name} ran"))

        return run

    for t in tools:
        t.handler = handler(t.name)
    return tools


@pytest.fixture(scope="module")
def warm_index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("index")
    ToolSelector(_tools(), HybridIndex(d))
    return d


SCRIPT = [
    {"tool_calls": [{"name": "github.list_deployments", "arguments": {"repo": "shop/checkout"}}]},
    {"tool_calls": [{"name": "kubernetes.rollout_history", "arguments": {"name": "checkout-api"}}]},
    {"tool_calls": [{"name": "kubernetes.rollout_undo", "arguments": {"name": "checkout-api"}}]},
    {"text": "Root cause: deploy rev-4711 of checkout-api slowed checkout; rolling back was denied."},
]


async def _first_session(warm_index: Path, tmp_path: Path, *, mark: str | None = None) -> tuple[ToolSelector, Store]:
    shutil.copytree(warm_index, tmp_path / "ix")
    tools = _tools()
    sel = ToolSelector(tools, HybridIndex(tmp_path / "ix"), max_tools=6)
    # a person denies every change (the approver of a session without one)
    box = Toolbox(tools, selector=sel, dispatcher=Dispatcher(Policy.permissive(writes="approve"), None))
    store = await Store(tmp_path / "lantern.db").open()
    try:
        session = Session(ScriptedModel(SCRIPT), box, sink=store)
        await store.create_session(session.id)
        events = [e async for e in session.run_turn(REQUEST)]
        assert any(e.kind == "tool-call-finished" and e.status == "denied" for e in events)
        if mark:
            await store.put_mark(session.id, mark)
        score = await score_and_learn(store, session.id, box)
        assert score["score"] >= 0.7 and score["failed_calls"] == 1
    finally:
        await store.close()
    return sel, store


async def test_a_session_that_ended_well_teaches_the_next_one(warm_index: Path, tmp_path: Path) -> None:
    shutil.copytree(warm_index, tmp_path / "cold")
    cold = ToolSelector(_tools(), HybridIndex(tmp_path / "cold"), max_tools=6)
    before = [h.id for h in cold.plan(AGAIN).hits]
    assert cold.index.experience_if_any() is None  # no history: nothing changes

    sel, _ = await _first_session(warm_index, tmp_path)
    rows = sel.index.experience.rows()
    assert [(r[1], r[2]) for r in rows] == [(REQUEST, TAUGHT)]  # the denied rollback taught nothing
    sel.reset()
    plan = sel.plan(AGAIN)
    after = [h.id for h in plan.hits]

    def rank(ids: list[str], tool: str) -> int:
        return ids.index(tool) if tool in ids else len(ids)

    assert any(t not in cold.plan(AGAIN).names for t in TAUGHT)  # zero-shot missed one of them
    for tool in TAUGHT:
        assert rank(after, tool) < rank(before, tool) and tool in plan.names
        assert plan.reasons[tool] == "experience: 1 similar past request"
        assert plan.past[tool] == [REQUEST]
    assert rank(after, "kubernetes.rollout_undo") >= rank(before, "kubernetes.rollout_undo")


async def test_the_toolset_change_shows_which_past_requests(warm_index: Path, tmp_path: Path) -> None:
    sel, _ = await _first_session(warm_index, tmp_path)
    sel.reset()
    session = Session(ScriptedModel([{"text": "Looking."}]), Toolbox(list(sel.tools.values()), selector=sel))
    changed = next(e for e in [e async for e in session.run_turn(AGAIN)] if isinstance(e, ev.ToolSetChanged))
    assert changed.experience == {t: [REQUEST] for t in TAUGHT}
    assert changed.reasons["github.list_deployments"] == "experience: 1 similar past request"


async def test_a_session_marked_bad_teaches_nothing(warm_index: Path, tmp_path: Path) -> None:
    sel, _ = await _first_session(warm_index, tmp_path, mark="bad")
    assert sel.index.experience_if_any() is None or len(sel.index.experience) == 0


def test_co_usage_names_the_tools_a_tool_usually_comes_with(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    vecs = rng.normal(size=(8, DIM)).astype(np.float32)
    rows = [
        Experience(f"payments slow {i}", ("prometheus.range_query", "github.list_deployments"), "import:x")
        for i in range(6)
    ]
    rows += [
        Experience("payments slow alone", ("prometheus.range_query",), "import:x"),
        Experience("dns", ("dns.resolve",), "import:x"),
    ]
    mem = ExperienceMemory(tmp_path / "x")
    mem.add(rows, vectors=vecs)
    assert mem.companions("prometheus.range_query") == [("github.list_deployments", 6 / 7)]
    assert mem.companions("dns.resolve") == []  # too few uses to say
    mem.forget(source="import:x")
    assert mem.companions("prometheus.range_query") == []


def test_the_plain_face_says_which_past_requests_brought_a_tool() -> None:
    from rich.console import Console

    from console.plain import BlockRenderer

    console = Console(record=True, width=200)
    BlockRenderer(console)(
        ev.ToolSetChanged(
            session_id="s",
            seq=1,
            at=ev.utcnow(),
            loaded=["github.list_deployments"],
            reasons={"github.list_deployments": "experience: 1 similar past request"},
            experience={"github.list_deployments": [REQUEST]},
        )
    )
    text = console.export_text()
    assert "github.list_deployments (experience: 1 similar past request)" in text
    assert f"from experience: “{REQUEST}”" in text
