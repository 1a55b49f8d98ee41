"""HybridIndex on disk: BM25 + vectors, content-hash sync, warm starts that embed nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.retrieval.embed import Embedder
from engine.retrieval.index import Doc, HybridIndex, doc_from_tool
from engine.tools import python_tool

DOCS = [
    Doc(
        "kubernetes.rollout_restart",
        "tool",
        "kubernetes.rollout_restart",
        "Restart a deployment by rolling out new pods",
        "kubernetes",
        ("restart", "bounce"),
        ("namespace", "deployment"),
    ),
    Doc(
        "kubernetes.pod_logs",
        "tool",
        "kubernetes.pod_logs",
        "Read container logs of a pod, optionally of the previous crashed container",
        "kubernetes",
        ("logs",),
        ("namespace", "pod", "previous"),
    ),
    Doc(
        "github.compare_commits",
        "tool",
        "github.compare_commits",
        "Compare two commits or tags: the diff between two deploys",
        "github",
        ("diff", "deploy"),
        ("repo", "base", "head"),
    ),
    Doc(
        "runbook.crashloop",
        "runbook",
        "CrashLoopBackOff triage",
        "Check logs of the previous container, then recent deploys",
        "",
        (),
        ("kubernetes.pod_logs",),
    ),
]


def test_search_both_ways_and_kinds_are_separate(tmp_path: Path) -> None:
    ix = HybridIndex(tmp_path)
    rep = ix.sync(DOCS)
    assert sorted(rep.added) == sorted(d.id for d in DOCS) and rep.embedded == 4
    assert ix.bm25("getPodLogs")[0][0] == "kubernetes.pod_logs"  # CamelCase query meets snake_case name
    assert ix.bm25("rollout-restart")[0][0] == "kubernetes.rollout_restart"
    assert ix.dense(ix.embedder.query("what changed between the two releases"))[0][0] == "github.compare_commits"
    assert [i for i, _ in ix.bm25("crashloop triage logs", kind="runbook")] == ["runbook.crashloop"]
    assert "runbook.crashloop" not in [i for i, _ in ix.bm25("logs previous container")]


def test_warm_start_embeds_nothing_and_changes_embed_only_the_changed(tmp_path: Path) -> None:
    HybridIndex(tmp_path).sync(DOCS)
    emb = Embedder()
    ix = HybridIndex(tmp_path, embedder=emb)
    assert len(ix) == 4
    rep = ix.sync(DOCS)
    assert (rep.unchanged, rep.embedded, emb.passages_embedded) == (4, 0, 0)

    changed = Doc(
        "kubernetes.pod_logs",
        "tool",
        "kubernetes.pod_logs",
        "Tail the logs of a pod",
        "kubernetes",
        ("logs",),
        ("pod",),
    )
    rep = ix.sync([DOCS[0], changed, DOCS[3]])
    assert rep.updated == ["kubernetes.pod_logs"] and rep.removed == ["github.compare_commits"]
    assert rep.embedded == 1 and emb.passages_embedded == 1
    assert ix.bm25("tail")[0][0] == "kubernetes.pod_logs"
    assert "github.compare_commits" not in ix and not ix.bm25("diff commits")

    # A document that comes back is served from the embeddings cache, not re-embedded.
    rep = HybridIndex(tmp_path, embedder=emb).sync(DOCS)
    assert sorted(rep.updated + rep.added) == ["github.compare_commits", "kubernetes.pod_logs"]
    assert rep.embedded == 0 and emb.passages_embedded == 1


def test_scoped_sync_touches_one_pack(tmp_path: Path) -> None:
    ix = HybridIndex(tmp_path)
    ix.sync(DOCS)
    rep = ix.sync([DOCS[0]], kinds=["tool"], scope=["kubernetes"])
    assert rep.removed == ["kubernetes.pod_logs"]
    assert "github.compare_commits" in ix and "runbook.crashloop" in ix


def test_doc_from_tool_and_bad_input(tmp_path: Path) -> None:
    def scale(namespace: str, deployment: str, replicas: int) -> str:
        """Scale a deployment to N replicas."""
        return "ok"

    t = python_tool(scale, name="kubernetes.scale")
    t.pack, t.keywords = "kubernetes", ["replicas"]
    d = doc_from_tool(t)
    assert (d.id, d.pack, d.params, d.keywords) == (
        "kubernetes.scale",
        "kubernetes",
        ("namespace", "deployment", "replicas"),
        ("replicas",),
    )
    with pytest.raises(ValueError, match="kind must be"):
        Doc("x", "prompt", "x")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="share the id"):
        HybridIndex(tmp_path).sync([DOCS[0], Doc(DOCS[0].id, "tool", "other")])


def test_hit_reasons_follow_a_changed_document(tmp_path: Path) -> None:
    from engine.retrieval.search import HybridSearch

    ix = HybridIndex(tmp_path)
    ix.sync(DOCS)
    search = HybridSearch(ix)
    hit = next(h for h in search.search("should we bounce the deployment?") if h.id == "kubernetes.rollout_restart")
    assert hit.reason.startswith("matched:") and "bounce" in hit.reason
    # The same search object after the tool's text changed: the reason names the new words only.
    changed = Doc(
        "kubernetes.rollout_restart",
        "tool",
        "kubernetes.rollout_restart",
        "Recycle every replica of a workload",
        "kubernetes",
        ("recycle",),
        ("namespace",),
    )
    ix.sync([changed, *DOCS[1:]])
    hit = next(
        h for h in search.search("should we bounce and recycle the workload?") if h.id == "kubernetes.rollout_restart"
    )
    assert "bounce" not in hit.reason and "recycle" in hit.reason
    assert hit.sources  # where it ranked, by ranking name


def test_feedback_ranking_is_the_moved_query_over_the_first_pass_pool(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import numpy as np

    from bench.retrieval_scale import synthetic_docs
    from engine.retrieval import index as index_mod

    ix = HybridIndex(tmp_path)
    ix.sync(synthetic_docs(60))
    q = ix.embedder.query("restart the redis node")
    mat, ids = ix._mat["tool"], ix._ids["tool"]
    scores = mat @ q
    top5 = np.argsort(-scores)[:5]
    moved = 0.4 * q + 0.6 * mat[top5].mean(axis=0)
    exact = [ids[j] for j in np.argsort(-(mat @ moved))]

    first, fb = ix.dense_feedback(q, k=10, docs=5, alpha=0.6)
    assert [i for i, _ in first] == [i for i, _ in ix.dense(q, k=10)]
    assert [i for i, _ in fb] == exact[:10]  # the index is smaller than the pool: every row

    # With a pool smaller than the index, only the first pass's best rows are re-scored.
    monkeypatch.setattr(index_mod, "FEEDBACK_POOL", 20)
    pool = {ids[j] for j in np.argsort(-scores)[:20]}
    _, fb = ix.dense_feedback(q, k=10, docs=5, alpha=0.6)
    assert [i for i, _ in fb] == [i for i in exact if i in pool][:10]

    # A filter keeps the pool at FEEDBACK_POOL allowed rows, and only allowed ids come back.
    allowed = set(ids[::3])
    first, fb = ix.dense_feedback(q, k=10, allowed=allowed, docs=5, alpha=0.6)
    assert len(fb) == 10 and {i for i, _ in fb} <= allowed and {i for i, _ in first} <= allowed
    assert [i for i, _ in first] == [ids[j] for j in np.argsort(-scores) if ids[j] in allowed][:10]
