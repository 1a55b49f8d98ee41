"""`lantern bench retrieval`: tool-retrieval quality on BEIR-format files, four retrievers, one run.

Prints R@5, R@10, NDCG@5, NDCG@10, COMP@5, COMP@10 for BM25 alone, dense (e5) alone, plain
RRF of the two, and Lantern's full pipeline, plus each one's p50/p99 query latency (query
embedding included: the query cache is emptied before every timed query). The index is built
under the cache directory keyed by the corpus, so a second run embeds nothing.
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

def shared_data(name: str) -> Path:
    """`../shared/data/NAME` relative to the repository root ($LANTERN_BENCH_DATA overrides the
    data directory); from a worktree nested deeper, the nearest ancestor holding it."""
    import os

    env = os.environ.get("LANTERN_BENCH_DATA")
    if env:
        return Path(env) / name
    root = Path(__file__).resolve().parents[2]
    for up in root.parents:
        cand = up / "shared" / "data" / name
        if cand.exists():
            return cand
    return root.parent / "shared" / "data" / name


DEFAULT_DATA = shared_data("toollens")
"""../shared/data/toollens relative to the repository root."""


def configure(p: argparse.ArgumentParser) -> None:
    """Arguments of `lantern bench retrieval`."""
    p.add_argument("--corpus", type=Path, default=DEFAULT_DATA / "corpus.jsonl", help="BEIR corpus.jsonl")
    p.add_argument("--queries", type=Path, default=DEFAULT_DATA / "queries-test.jsonl", help="BEIR queries.jsonl")
    p.add_argument("--qrels", type=Path, default=DEFAULT_DATA / "qrels-test.tsv", help="BEIR qrels .tsv")
    p.add_argument("--limit", type=int, default=0, help="use only the first N queries (0: all)")
    p.add_argument("--index", type=Path, default=None, help="index directory (default: cache dir, keyed by corpus)")
    p.add_argument("--threads", type=int, default=None, help="embedder threads (default: every core, as the console uses)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")


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
    """"dev" or "held": a fixed split of the queries by a hash of their id, so defaults can be
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


def evaluate(retrieve: Callable[[str], list[str]], queries: dict[str, str], qrels: dict[str, set[str]], *, clear: Callable[[], None] | None = None) -> dict[str, float]:
    """Run `retrieve` on every judged query; metrics in percent (all, and per half), latency in ms."""
    lat: list[float] = []
    rows: dict[str, list[tuple[list[str], set[str]]]] = {"dev": [], "held": []}
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
    out = _metrics(rows["dev"] + rows["held"])
    for h, rs in rows.items():
        out.update({f"{h} {k}": v for k, v in _metrics(rs).items()})
    lat.sort()
    out["p50_ms"] = statistics.median(lat) if lat else 0.0
    out["p99_ms"] = lat[min(len(lat) - 1, int(len(lat) * 0.99))] if lat else 0.0
    out["queries"] = len(lat)
    return out


def run(args: argparse.Namespace) -> int:
    """Build (or reuse) the index, run the four retrievers, print the table."""
    from engine.retrieval.beir import DataError, load_corpus, load_qrels, load_queries
    from engine.retrieval.embed import Embedder
    from engine.retrieval.index import HybridIndex
    from engine.retrieval.search import HybridSearch

    try:
        docs = load_corpus(args.corpus)
        queries = load_queries(args.queries)
        qrels = load_qrels(args.qrels)
    except DataError as exc:
        print(f"lantern bench retrieval: {exc}", file=sys.stderr)
        return 2
    if args.limit:
        qrels = dict(list(qrels.items())[: args.limit])
    path = args.index
    if path is None:
        from engine.config import cache_dir

        digest = hashlib.sha256(Path(args.corpus).read_bytes()).hexdigest()[:16]
        path = cache_dir() / "bench" / f"retrieval-{digest}"
    embedder = Embedder(threads=args.threads)
    t0 = time.perf_counter()
    index = HybridIndex(path, embedder=embedder)
    rep = index.sync(docs)
    build_s = time.perf_counter() - t0
    search = HybridSearch(index)

    def clear() -> None:
        embedder._qcache.clear()

    results = {
        "bm25": evaluate(lambda q: search.bm25(q, k=10), queries, qrels),
        "dense": evaluate(lambda q: search.dense(q, k=10), queries, qrels, clear=clear),
        "rrf": evaluate(lambda q: search.plain_rrf(q, k=10), queries, qrels, clear=clear),
        "full": evaluate(lambda q: [h.id for h in search.search(q, k=10)], queries, qrels, clear=clear),
    }
    load = load_average()
    ratio = results["full"]["R@10"] / results["rrf"]["R@10"] if results["rrf"]["R@10"] else float("nan")
    summary = {
        "corpus": str(args.corpus),
        "documents": len(docs),
        "queries": results["full"]["queries"],
        "index": {"path": str(path), "build_s": round(build_s, 2), "embedded": rep.embedded},
        "results": {k: {m: round(v, 2) for m, v in r.items()} for k, r in results.items()},
        "full_over_rrf_R@10": round(ratio, 3),
        "load_average": load,
    }
    if args.json:
        print(json.dumps(summary, indent=1))
        return 0
    print(f"corpus {args.corpus} · {len(docs)} documents · {summary['queries']} queries · index {build_s:.1f}s ({rep.embedded} embedded)")
    cols = ["R@5", "R@10", "NDCG@5", "NDCG@10", "COMP@5", "COMP@10", "p50_ms", "p99_ms"]
    print(f"{'retriever':<10}" + "".join(f"{c:>9}" for c in cols))
    labels = {"bm25": "BM25", "dense": "dense e5", "rrf": "RRF", "full": "Lantern"}
    for name, r in results.items():
        print(f"{labels[name]:<10}" + "".join(f"{r[c]:>9.1f}" for c in cols))
    print(f"full pipeline R@10 / plain RRF R@10 = {ratio:.3f} · load average {load} (dense, RRF and Lantern latency include embedding the query)")
    print("by half of the queries (defaults were chosen on the dev half only):")
    hcols = ["R@5", "R@10", "NDCG@10", "COMP@10"]
    print(f"{'retriever':<10}{'half':<6}" + "".join(f"{c:>9}" for c in hcols))
    for name, r in results.items():
        for h in ("dev", "held"):
            print(f"{labels[name]:<10}{h:<6}" + "".join(f"{r[f'{h} {c}']:>9.1f}" for c in hcols))
    return 0
