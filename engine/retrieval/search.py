"""The retrieval pipeline: several rankings of one request, fused with weighted RRF.

Rankings, each over the whole index:
- dense: e5 similarity of the (rewritten) query, politeness and hedges stripped (as the
  rewriter does; fewer tokens to embed, same ranking);
- bm25: the query's words against name/description/pack/keywords/params;
- per-clause dense and BM25: a request that states several needs ("scale it up and tell the
  channel") is split into its clauses, and each is ranked alone, so the second need is not
  drowned by the first (query decomposition);
- feedback: the query vector moved towards the centroid of its best first-pass documents
  (Rocchio pseudo-relevance feedback), which finds tools phrased unlike the query;
- command: BM25 of each command's verb phrase against names and keywords ("roll it back");
- context: BM25 of keywords from the recent conversation (weak, so the topic carries over);
- experience: the tools of the nearest past requests (engine/retrieval/experience.py), weighted
  by how near the nearest one is (nothing below the similarity gate);
- co-usage: tools that the first fused choices usually come with in the history.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from engine.retrieval.experience import Recall, RecallConfig, recall
from engine.retrieval.fusion import rrf
from engine.retrieval.index import HybridIndex, _bm25_text
from engine.retrieval.rewrite import strip_filler
from engine.retrieval.text import clauses, command_phrases, terms, typed_mentions

AddRanking = Callable[[str, list[tuple[str, float]], float], None]
"""Adds one named, weighted ranking to the fusion."""


@dataclass
class SearchConfig:
    """Weights and depths of the fused rankings (defaults tuned against missed tools)."""

    depth: int = 100
    """How deep each ranking goes before fusion."""
    rrf_k: int = 60
    dense: float = 1.0
    bm25: float = 1.0
    clause_dense: float = 0.0
    """Per-clause dense rankings: off, since each costs one more query embedding and measured no
    better than clause BM25 alone (ToolLens dev half 41.4 vs 41.3 R@10; multi-turn equal)."""
    clause_bm25: float = 0.5
    feedback: float = 0.7
    """Weight of the Rocchio feedback ranking (0 turns it off)."""
    feedback_docs: int = 5
    feedback_alpha: float = 0.6
    """Share of the feedback centroid in the moved query vector."""
    context: float = 0.3
    """Weight of BM25 over recent-conversation keywords."""
    arguments: float = 0.5
    """Weight of BM25 of the request's value types against parameter names and descriptions."""
    exact_argument: float = 3.0
    """Weight of each exact value type's own ranking (a `#channel`, an email, a SHA)."""
    command: float = 1.5
    """Weight of BM25 of each command's verb phrase ("roll … back", "tell") against tool names
    and keywords: in "yeah that's it. roll orders-api back to 56" the verb decides the tool, and
    the rest of the words would pull the reads that found the problem."""
    experience: float = 4.0
    """Weight of the experience ranking at full strength (scaled by the nearest past request's
    similarity, 0 below the gate). High, because a near past request with its exact tools is
    the strongest evidence there is; chosen on a split of the history, never on the test."""
    co_usage: float = 0.5
    """Weight of the co-usage ranking: companions of the first `co_seeds` fused choices."""
    co_seeds: int = 3
    recall: RecallConfig = field(default_factory=RecallConfig)
    """How near past requests vote (gate, margin, temperature)."""


@dataclass
class Hit:
    """One retrieved document with its fused score and a short human reason."""

    id: str
    score: float
    reason: str = ""
    sources: dict[str, int] = field(default_factory=dict)
    """Ranking name → rank (from 1) where this document appeared."""
    past: list[str] = field(default_factory=list)
    """The past requests whose tools included this one (experience), nearest first."""


class HybridSearch:
    """Runs the rankings over a HybridIndex and fuses them."""

    def __init__(self, index: HybridIndex, config: SearchConfig | None = None) -> None:
        self.index = index
        """The index searched."""
        self.config = config or SearchConfig()
        """Fusion weights."""
        self._word_cache: dict[tuple[str, str], tuple[frozenset[str], frozenset[str]]] = {}

    # -- single rankings (also the benchmark's baselines) -----------------------------------
    def bm25(self, query: str, *, kind: str = "tool", k: int = 10) -> list[str]:
        """BM25 alone."""
        return [i for i, _ in self.index.bm25(query, kind=kind, k=k)]

    def dense(self, query: str, *, kind: str = "tool", k: int = 10) -> list[str]:
        """Dense (e5) alone."""
        return [i for i, _ in self.index.dense(self.index.embedder.query(query), kind=kind, k=k)]

    def plain_rrf(self, query: str, *, kind: str = "tool", k: int = 10) -> list[str]:
        """Unweighted RRF of BM25 and dense at depth 100, k=60: the usual hybrid baseline."""
        d = self.config.depth
        fused = rrf([self.bm25(query, kind=kind, k=d), self.dense(query, kind=kind, k=d)])
        return [i for i, _ in fused[:k]]

    # -- the full pipeline ------------------------------------------------------------------
    def rankings(
        self,
        query: str,
        *,
        context: str = "",
        kind: str = "tool",
        allowed: set[str] | None = None,
        memory: Recall | None = None,
    ) -> tuple[list[list[str]], list[float], list[str]]:
        """Every ranking of the pipeline with its weight and name; what experience recalled goes
        into `memory` when given."""
        c = self.config
        d = c.depth
        ix = self.index
        emb = ix.embedder
        names: list[str] = []
        ranks: list[list[str]] = []
        weights: list[float] = []

        def add(name: str, ranking: list[tuple[str, float]], w: float) -> None:
            if w > 0 and ranking:
                names.append(name)
                ranks.append([i for i, _ in ranking])
                weights.append(w)

        qv = emb.query(strip_filler(query) or query)
        if c.feedback > 0:
            dense, feedback = ix.dense_feedback(
                qv, kind=kind, k=d, allowed=allowed, docs=c.feedback_docs, alpha=c.feedback_alpha
            )
        else:
            dense, feedback = ix.dense(qv, kind=kind, k=d, allowed=allowed), []
        add("dense", dense, c.dense)
        add("bm25", ix.bm25(query, kind=kind, k=d, allowed=allowed), c.bm25)
        parts = clauses(query)
        if len(parts) > 1:
            share = 1.0 / len(parts) ** 0.5
            for p in parts:
                if c.clause_dense > 0:  # each costs a query embedding
                    add(
                        "clause-dense",
                        ix.dense(emb.query(strip_filler(p) or p), kind=kind, k=d, allowed=allowed),
                        c.clause_dense * share,
                    )
                add("clause-bm25", ix.bm25(p, kind=kind, k=d, allowed=allowed), c.clause_bm25 * share)
        add("feedback", feedback, c.feedback)
        typed = typed_mentions(query)
        loose = " ".join(w for _, w, exact in typed if not exact)
        if loose and c.arguments > 0:
            add("arguments", ix.bm25(loose, kind=kind, k=d, allowed=allowed, fields=("params", "details")), c.arguments)
        for value, words, exact in typed:
            if exact and c.exact_argument > 0:
                fits = ix.bm25(words, kind=kind, k=d, allowed=allowed, fields=("params", "details"))
                # The vote is spread over the tools the value fits: a #channel fits two or three.
                add(f"takes {value[:40]}", fits, c.exact_argument / max(len(fits), 1) ** 0.5)
        phrases = command_phrases(query) if c.command > 0 else []
        for ph in phrases:
            add(
                f"asked to {ph}",
                ix.bm25(ph, kind=kind, k=d, allowed=allowed, fields=("name", "keywords"), stopwords=False),
                c.command / len(phrases) ** 0.5,
            )
        if context and c.context > 0:
            add("context", ix.bm25(context, kind=kind, k=d, allowed=allowed), c.context)
        if kind == "tool":
            self._experience(query, qv, allowed, add, (ranks, weights), memory)
        return ranks, weights, names

    def _experience(
        self,
        query: str,
        qv: np.ndarray,
        allowed: set[str] | None,
        add: AddRanking,
        fused: tuple[list[list[str]], list[float]],
        memory: Recall | None,
    ) -> None:
        """The experience and co-usage rankings (nothing when the index has no history)."""
        c = self.config
        mem = self.index.experience_if_any()
        if mem is None or not len(mem) or (c.experience <= 0 and c.co_usage <= 0):
            return
        rec = recall(mem, query, qv, c.recall, allowed)
        if memory is not None:
            memory.ranking, memory.because, memory.strength = rec.ranking, rec.because, rec.strength
        if rec.ranking and c.experience > 0:
            add("experience", rec.ranking, c.experience * rec.strength)
        if c.co_usage <= 0:
            return
        seeds = [i for i, _ in rrf(*fused, k=c.rrf_k)[: c.co_seeds]]
        lift: dict[str, float] = {}
        for s in seeds:
            for b, share in mem.companions(s):
                if b not in seeds and (allowed is None or b in allowed):
                    lift[b] = max(lift.get(b, 0.0), share)
        add("co-usage", sorted(lift.items(), key=lambda kv: -kv[1]), c.co_usage)

    def search(
        self, query: str, *, context: str = "", kind: str = "tool", k: int = 10, allowed: set[str] | None = None
    ) -> list[Hit]:
        """The fused ranking, best first, with a reason per hit."""
        memory = Recall()
        ranks, weights, names = self.rankings(query, context=context, kind=kind, allowed=allowed, memory=memory)
        fused = rrf(ranks, weights, k=self.config.rrf_k)[:k]
        qterms = sorted(set(terms(query)))
        cterms = sorted(set(terms(context))) if context else []
        # Rank of each id in each ranking, looked up once (lists are up to `depth` long).
        positions: list[tuple[str, dict[str, int]]] = []
        for n, r in zip(names, ranks):
            positions.append((n, {i: j for j, i in reversed(list(enumerate(r, start=1)))}))
        hits = []
        for i, score in fused:
            sources: dict[str, int] = {}
            for n, pos in positions:
                if n not in sources and i in pos:
                    sources[n] = pos[i]
            past = memory.because.get(i, []) if "experience" in sources else []
            reason = _experience_reason(len(past)) if past else self._reason(i, qterms, cterms, sources)
            if not past and "co-usage" in sources and sources["co-usage"] <= 3 and reason == "similar meaning":
                reason = "often used together with the tools above"
            hits.append(Hit(i, score, reason, sources, past[:5]))
        return hits

    def _words(self, doc_id: str) -> tuple[frozenset[str], frozenset[str]] | None:
        """(words, 5-letter prefixes) of a stored document's indexed text, cached by content hash."""
        doc = self.index.get(doc_id)
        if doc is None:
            return None
        key = (doc_id, self.index.content_hash(doc_id) or "")
        hit = self._word_cache.get(key)
        if hit is None:
            words = frozenset(" ".join(_bm25_text(doc).values()).split())
            hit = (words, frozenset(w[:5] for w in words if len(w) >= 5))
            if len(self._word_cache) > 50_000:
                self._word_cache.clear()
            self._word_cache[key] = hit
        return hit

    def _reason(self, doc_id: str, qterms: list[str], cterms: list[str], sources: dict[str, int]) -> str:
        # A command's verb or an exact value that put this tool first says more than shared words.
        for name, rank in sources.items():
            if rank == 1 and name.startswith(("asked to ", "takes ")):
                return name
        found = self._words(doc_id)
        if found is None:
            return ""
        words, prefixes = found

        def stem_hit(t: str) -> bool:
            # A query word matches a document word it equals or that starts with its first 5 letters.
            return t in words or (len(t) >= 5 and t[:5] in prefixes)

        matched = [t for t in qterms if stem_hit(t)]
        if matched:
            return "matched: " + ", ".join(matched[:3])
        ctx = [t for t in cterms if stem_hit(t)]
        if ctx and "context" in sources:
            return "conversation: " + ", ".join(ctx[:3])
        return "similar meaning"


def _experience_reason(n: int) -> str:
    return f"experience: {n} similar past request" + ("" if n == 1 else "s")
