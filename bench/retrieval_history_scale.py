"""`lantern bench retrieval-history-scale`: build time and query latency with N past requests.

The history starts as the real training requests (ToolLens train, their vectors from the shared
bench cache, embedded once). Embedding 100,000 texts on two cores takes hours, so the rows beyond
the real ones are recombined from them: the first half of one real request's words followed by
the second half of another's, with the first one's tools, and its real vector plus Gaussian noise
(σ = 0.015 a dimension, cosine ≈ 0.96 to the original), normalised. The search over them is the
real one at that row count: BM25 over every row's words, the sign-bit pre-selection and the
exact re-scoring. Rows are added in chunks (the incremental path a team's history grows by),
then one real session lesson is added and embedded; then the memory is reopened from disk.
Query latency is the full pipeline (query embedding included, the query cache emptied before
each query) on the test requests' texts, with and without the history, in the same run.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import statistics
import sys
import time
from pathlib import Path

import numpy as np


def configure(p: argparse.ArgumentParser) -> None:
    """Arguments of the history-scale benchmark."""
    from bench.retrieval import DEFAULT_DATA

    p.add_argument("--rows", type=int, default=100_000, help="past requests in the memory")
    p.add_argument("--chunk", type=int, default=10_000, help="rows added per incremental step")
    p.add_argument("--queries", type=int, default=300, help="timed queries (test request texts; no labels are read)")
    p.add_argument("--corpus", type=Path, default=DEFAULT_DATA / "corpus.jsonl")
    p.add_argument("--history-queries", type=Path, default=DEFAULT_DATA / "queries-train.jsonl")
    p.add_argument("--history-qrels", type=Path, default=DEFAULT_DATA / "qrels-train.tsv")
    p.add_argument("--test-queries", type=Path, default=DEFAULT_DATA / "queries-test.jsonl")
    p.add_argument("--threads", type=int, default=None, help="embedder threads (default: every core)")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--json", action="store_true", help="print JSON")


def synthetic(
    texts: list[str], tools: list[tuple[str, ...]], vecs: np.ndarray, n: int, seed: int
) -> tuple[list, np.ndarray]:
    """n recombined rows (see the module docstring) from the real ones."""
    from engine.retrieval.experience import Experience

    rng = random.Random(seed)
    nrng = np.random.default_rng(seed)
    rows, picks, seen = [], [], set(texts)
    while len(rows) < n:
        i, j = rng.randrange(len(texts)), rng.randrange(len(texts))
        a, b = texts[i].split(), texts[j].split()
        text = " ".join(a[: (len(a) + 1) // 2] + b[len(b) // 2 :])
        if text in seen:
            continue
        seen.add(text)
        rows.append(Experience(text, tools[i], "import:synthetic"))
        picks.append(i)
    out = vecs[picks] + nrng.normal(0.0, 0.015, size=(n, vecs.shape[1])).astype(np.float32)
    out /= np.linalg.norm(out, axis=1, keepdims=True)
    return rows, out


def _pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * p))] if xs else 0.0


def _build(args: argparse.Namespace, path: Path, embedder: object) -> tuple[object, dict]:
    from bench.retrieval_history import History, memory_for
    from engine.retrieval.beir import load_qrels, load_queries
    from engine.retrieval.experience import Experience, ExperienceMemory

    queries, qrels = load_queries(args.history_queries), load_qrels(args.history_qrels)
    real = [
        Experience(queries[q].strip(), tuple(sorted(t)), "import:history")
        for q, t in qrels.items()
        if queries.get(q, "").strip()
    ]
    cache = memory_for(History(experiences=real), path, embedder)  # the shared vector cache, filled once
    vecs = cache.vectors([e.text for e in real])
    extra, extra_vecs = synthetic(
        [e.text for e in real], [e.tools for e in real], vecs, max(0, args.rows - len(real)), args.seed
    )
    rows, allv = [*real, *extra][: args.rows], np.vstack([vecs, extra_vecs])[: args.rows]
    where = path / f"experience-scale-{args.rows}"
    shutil.rmtree(where, ignore_errors=True)
    mem = ExperienceMemory(where, embedder=embedder, cache=path.parent / "experience-vectors")
    steps = []
    for s in range(0, len(rows), args.chunk):
        t0 = time.perf_counter()
        mem.add(rows[s : s + args.chunk], vectors=allv[s : s + args.chunk])
        steps.append(round(time.perf_counter() - t0, 2))
    t0 = time.perf_counter()
    mem.add(
        [
            Experience(
                "checkout-api is slow since the 10:02 deploy, roll it back",
                ("github.list_deployments", "kubernetes.rollout_undo"),
                "session:bench",
            )
        ]
    )
    one = time.perf_counter() - t0
    t0 = time.perf_counter()
    mem = ExperienceMemory(where, embedder=embedder, cache=path.parent / "experience-vectors")
    reopen = time.perf_counter() - t0
    info = {
        "rows": len(mem),
        "real_rows": len(real),
        "synthetic_rows": len(extra),
        "chunk_s": steps,
        "build_s": round(sum(steps), 2),
        "one_lesson_s": round(one, 3),
        "reopen_s": round(reopen, 2),
    }
    return mem, info


def run(args: argparse.Namespace) -> int:
    """Build the memory, time queries with and without it, print the numbers."""
    from bench.beir import load_corpus
    from bench.retrieval import _index_path, load_average
    from engine.retrieval.beir import DataError, load_queries
    from engine.retrieval.embed import Embedder
    from engine.retrieval.experience import recall
    from engine.retrieval.index import HybridIndex
    from engine.retrieval.search import HybridSearch

    try:
        docs = load_corpus(args.corpus)
        texts = list(load_queries(args.test_queries).values())[: args.queries]
        path = _index_path(argparse.Namespace(index=None, corpus=args.corpus))
        embedder = Embedder(threads=args.threads)
        index = HybridIndex(path, embedder=embedder)
        index.sync(docs)
        mem, info = _build(args, path, embedder)
    except DataError as exc:
        print(f"lantern bench retrieval-history-scale: {exc}", file=sys.stderr)
        return 2
    search = HybridSearch(index)
    lat: dict[str, list[float]] = {"zero-shot": [], "with history": [], "experience ranking alone": []}
    for q in texts:
        for label, memory in (("zero-shot", None), ("with history", mem)):
            index.attach_experience(memory)
            embedder._qcache.clear()
            t0 = time.perf_counter()
            search.search(q, k=10)
            lat[label].append((time.perf_counter() - t0) * 1000)
        qv = embedder.query(q)  # cached: the ranking's own cost
        t0 = time.perf_counter()
        recall(mem, q, qv, search.config.recall)
        lat["experience ranking alone"].append((time.perf_counter() - t0) * 1000)
    out = {**info, "queries": len(texts), "load_average": load_average()}
    out["latency_ms"] = {
        k: {"p50": round(statistics.median(v), 2), "p99": round(_pct(v, 0.99), 2)} for k, v in lat.items()
    }
    if args.json:
        print(json.dumps(out, indent=1))
        return 0
    print(
        f"{info['rows']} past requests ({info['real_rows']} real, {info['synthetic_rows']} recombined) · built in {info['build_s']}s "
        f"in chunks of {args.chunk} ({', '.join(map(str, info['chunk_s']))} s) · one session lesson {info['one_lesson_s']}s · reopen {info['reopen_s']}s"
    )
    print(
        f"{len(texts)} queries · load average {out['load_average']} (full pipeline latency includes embedding the query)"
    )
    for k, v in out["latency_ms"].items():
        print(f"  {k:<26} p50 {v['p50']:7.2f} ms   p99 {v['p99']:7.2f} ms")
    return 0
