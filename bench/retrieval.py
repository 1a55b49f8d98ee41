"""`lantern bench retrieval`: tool-retrieval quality on BEIR-format files, four retrievers, one run.

Prints R@5, R@10, NDCG@5, NDCG@10, COMP@5, COMP@10 for BM25 alone, dense (e5) alone, plain
RRF of the two, and Lantern's full pipeline, plus each one's p50/p99 query latency (query
embedding included: the query cache is emptied before every timed query). The index is built
under the cache directory keyed by the corpus, so a second run embeds nothing.

With a history (`--history-queries/--history-qrels`, see retrieval_history.py) the full pipeline runs
twice, zero-shot and with the history as its experience memory, and every row is also reported
on the test queries whose tool set the history has seen and on those it has never seen.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import statistics
import sys
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import shared_data

DEFAULT_DATA = shared_data("toollens")
"""../shared/data/toollens relative to the repository root."""


def configure(p: argparse.ArgumentParser) -> None:
    """Arguments of `lantern bench retrieval`."""
    p.add_argument("--corpus", type=Path, default=DEFAULT_DATA / "corpus.jsonl", help="BEIR corpus.jsonl")
    p.add_argument("--queries", type=Path, default=DEFAULT_DATA / "queries-test.jsonl", help="BEIR queries.jsonl")
    p.add_argument("--qrels", type=Path, default=DEFAULT_DATA / "qrels-test.tsv", help="BEIR qrels .tsv")
    p.add_argument("--limit", type=int, default=0, help="use only the first N queries (0: all)")
    p.add_argument("--index", type=Path, default=None, help="index directory (default: cache dir, keyed by corpus)")
    p.add_argument(
        "--threads", type=int, default=None, help="embedder threads (default: every core, as the console uses)"
    )
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    from bench import retrieval_history

    retrieval_history.configure(p)


def recall(ranked: list[str], rel: set[str], k: int) -> float:
    """Share of the relevant documents found in the top k."""
    return len(set(ranked[:k]) & rel) / len(rel) if rel else 0.0


def ndcg(ranked: list[str], rel: set[str], k: int) -> float:
    """Binary-relevance NDCG@k."""
    dcg = sum(1.0 / math.log2(i + 2) for i, d in enumerate(ranked[:k]) if d in rel)
    ideal = sum(1.0 / math.log2(i + 2) for i in range(min(len(rel), k)))
    return dcg / ideal if ideal else 0.0


def complete(ranked: list[str], rel: set[str], k: int) -> float:
    """1 when every relevant document is in the top k (COMP@k), else 0."""
    return 1.0 if rel and rel <= set(ranked[:k]) else 0.0


def half(qid: str) -> str:
    """ "dev" or "held": a fixed split of the queries by a hash of their id, so defaults can be
    chosen on one half and reported on the other."""
    return "dev" if zlib.crc32(qid.encode()) % 2 == 0 else "held"


def load_average() -> str:
    """The 1/5/15-minute load average, as `uptime` prints it (latency is only comparable with it)."""
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def _metrics(per_query: list[tuple[list[str], set[str]]]) -> dict[str, float]:
    sums: dict[str, float] = {}
    for ranked, rel in per_query:
        for k in (5, 10):
            for name, fn in (("R", recall), ("NDCG", ndcg), ("COMP", complete)):
                key = f"{name}@{k}"
                sums[key] = sums.get(key, 0.0) + fn(ranked, rel, k)
    return {k: 100.0 * v / max(len(per_query), 1) for k, v in sums.items()}


def evaluate(
    retrieve: Callable[[str], list[str]],
    queries: dict[str, str],
    qrels: dict[str, set[str]],
    *,
    clear: Callable[[], None] | None = None,
    group: Callable[[str], str] | None = None,
) -> dict[str, float]:
    """Run `retrieve` on every judged query; metrics in percent (all, per half, and per `group`
    of the query id when given), latency in ms."""
    lat: list[float] = []
    rows: dict[str, list[tuple[list[str], set[str]]]] = {"dev": [], "held": []}
    groups: dict[str, list[tuple[list[str], set[str]]]] = {}
    for qid, rel in qrels.items():
        text = queries.get(qid)
        if text is None:
            continue
        if clear is not None:
            clear()
        t0 = time.perf_counter()
        ranked = retrieve(text)
        lat.append((time.perf_counter() - t0) * 1000)
        rows[half(qid)].append((ranked, rel))
        if group is not None:
            groups.setdefault(group(qid), []).append((ranked, rel))
    out = _metrics(rows["dev"] + rows["held"])
    for h, rs in [*rows.items(), *groups.items()]:
        out.update({f"{h} {k}": v for k, v in _metrics(rs).items()})
        out[f"{h} queries"] = len(rs)
    lat.sort()
    out["p50_ms"] = statistics.median(lat) if lat else 0.0
    out["p99_ms"] = lat[min(len(lat) - 1, int(len(lat) * 0.99))] if lat else 0.0
    out["queries"] = len(lat)
    return out


def _index_path(args: argparse.Namespace) -> Path:
    if args.index is not None:
        return Path(args.index)
    from engine.config import cache_dir

    digest = hashlib.sha256(Path(args.corpus).read_bytes()).hexdigest()[:16]
    return cache_dir() / "bench" / f"retrieval-{digest}"


def _load(args: argparse.Namespace) -> tuple[list, dict[str, str], dict[str, set[str]], Any]:
    """Corpus, queries, qrels and history (None without one); raises DataError."""
    from bench import retrieval_history
    from bench.beir import load_corpus
    from engine.retrieval.beir import load_qrels, load_queries

    docs = load_corpus(args.corpus)
    queries = load_queries(args.queries)
    qrels = load_qrels(args.qrels)
    if args.limit:
        qrels = dict(list(qrels.items())[: args.limit])
    history = retrieval_history.load(args, qrels) if args.history_queries is not None else None
    return docs, queries, qrels, history


def run(args: argparse.Namespace) -> int:
    """Build (or reuse) the index, run the four retrievers (five with a history), print the table."""
    from bench import retrieval_history
    from engine.retrieval.beir import DataError
    from engine.retrieval.embed import Embedder
    from engine.retrieval.index import HybridIndex
    from engine.retrieval.search import HybridSearch

    problem = retrieval_history.check(args)
    if problem:
        print(f"lantern bench retrieval: {problem}", file=sys.stderr)
        return 2
    try:
        docs, queries, qrels, history = _load(args)
    except DataError as exc:
        print(f"lantern bench retrieval: {exc}", file=sys.stderr)
        return 2
    path = _index_path(args)
    embedder = Embedder(threads=args.threads)
    t0 = time.perf_counter()
    index = HybridIndex(path, embedder=embedder)
    rep = index.sync(docs)
    build_s = time.perf_counter() - t0
    memory, history_s = None, 0.0
    if history is not None:
        t0 = time.perf_counter()
        memory = retrieval_history.memory_for(history, path, embedder)
        history_s = time.perf_counter() - t0
    index.attach_experience(None)
    search = HybridSearch(index)
    group = (lambda q: "seen" if q in history.seen else "never seen") if history is not None else None

    def clear() -> None:
        embedder._qcache.clear()

    def full(q: str) -> list[str]:
        return [h.id for h in search.search(q, k=10)]

    results = {
        "bm25": evaluate(lambda q: search.bm25(q, k=10), queries, qrels, group=group),
        "dense": evaluate(lambda q: search.dense(q, k=10), queries, qrels, clear=clear, group=group),
        "rrf": evaluate(lambda q: search.plain_rrf(q, k=10), queries, qrels, clear=clear, group=group),
        "full": evaluate(full, queries, qrels, clear=clear, group=group),
    }
    if memory is not None:
        index.attach_experience(memory)
        results["history"] = evaluate(full, queries, qrels, clear=clear, group=group)
    summary = _summary(args, docs, path, build_s, rep, results, history, memory, history_s)
    if args.json:
        print(json.dumps(summary, indent=1))
        return 0
    _print(args, summary, results, history is not None)
    return 0


LABELS = {"bm25": "BM25", "dense": "dense e5", "rrf": "RRF", "full": "Lantern", "history": "+history"}
"""Row labels: "Lantern" is the zero-shot pipeline, "+history" the same with the experience memory."""


def _summary(
    args: argparse.Namespace,
    docs: list,
    path: Path,
    build_s: float,
    rep: Any,
    results: dict,
    history: Any,
    memory: Any,
    history_s: float,
) -> dict:
    ratio = results["full"]["R@10"] / results["rrf"]["R@10"] if results["rrf"]["R@10"] else float("nan")
    out = {
        "corpus": str(args.corpus),
        "documents": len(docs),
        "queries": results["full"]["queries"],
        "index": {"path": str(path), "build_s": round(build_s, 2), "embedded": rep.embedded},
        "results": {k: {m: round(v, 2) for m, v in r.items()} for k, r in results.items()},
        "full_over_rrf_R@10": round(ratio, 3),
        "load_average": load_average(),
    }
    if history is not None:
        out["history"] = {
            "requests": len(memory),
            "build_s": round(history_s, 2),
            "test_scenes": history.scenes,
            "dropped_scenes": history.dropped_scenes,
            "dropped_requests": history.dropped_requests,
            "unseen_scenes": args.unseen_scenes,
            "seed": args.seed,
        }
    return out


def _print(args: argparse.Namespace, summary: dict, results: dict, with_history: bool) -> None:
    ix = summary["index"]
    print(
        f"corpus {args.corpus} · {summary['documents']} documents · {summary['queries']} queries · index {ix['build_s']:.1f}s ({ix['embedded']} embedded)"
    )
    if with_history:
        h = summary["history"]
        print(
            f"history {h['requests']} requests (built in {h['build_s']:.1f}s) · unseen scenes {h['unseen_scenes']} seed {h['seed']}: "
            f"{h['dropped_scenes']} of {h['test_scenes']} test tool sets dropped ({h['dropped_requests']} requests)"
        )
    cols = ["R@5", "R@10", "NDCG@5", "NDCG@10", "COMP@5", "COMP@10", "p50_ms", "p99_ms"]
    print(f"{'retriever':<10}" + "".join(f"{c:>9}" for c in cols))
    for name, r in results.items():
        print(f"{LABELS[name]:<10}" + "".join(f"{r[c]:>9.1f}" for c in cols))
    print(
        f"full pipeline R@10 / plain RRF R@10 = {summary['full_over_rrf_R@10']:.3f} · load average {summary['load_average']} (dense, RRF and Lantern latency include embedding the query)"
    )
    parts = ("seen", "never seen") if with_history else ("dev", "held")
    title = (
        "by whether the history holds the query's tool set:"
        if with_history
        else "by half of the queries (defaults were chosen on the dev half only):"
    )
    print(title)
    hcols = ["R@5", "R@10", "NDCG@10", "COMP@10"]
    print(f"{'retriever':<10}{'part':<12}{'n':>6}" + "".join(f"{c:>9}" for c in hcols))
    for name, r in results.items():
        for h in parts:
            if f"{h} R@10" in r:
                print(
                    f"{LABELS[name]:<10}{h:<12}{int(r[f'{h} queries']):>6}"
                    + "".join(f"{r[f'{h} {c}']:>9.1f}" for c in hcols)
                )
