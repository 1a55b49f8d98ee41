"""Reciprocal rank fusion (Cormack et al., 2009), with optional weights per ranking."""

from __future__ import annotations

from collections.abc import Sequence

RRF_K = 60
"""The usual RRF constant: damps the head so one ranking cannot dominate."""


def rrf(
    rankings: Sequence[Sequence[str]], weights: Sequence[float] | None = None, *, k: int = RRF_K
) -> list[tuple[str, float]]:
    """Fuse ranked id lists: score(d) = Σ w_i / (k + rank_i(d)), ranks from 1; best first.

    Ties keep the order in which ids were first seen, so the result is deterministic.
    """
    if weights is None:
        weights = [1.0] * len(rankings)
    if len(weights) != len(rankings):
        raise ValueError(f"rrf: {len(rankings)} rankings but {len(weights)} weights")
    scores: dict[str, float] = {}
    for ranking, w in zip(rankings, weights):
        if w == 0:
            continue
        seen: set[str] = set()
        for r, doc in enumerate(ranking, start=1):
            if doc in seen:
                continue
            seen.add(doc)
            scores[doc] = scores.get(doc, 0.0) + w / (k + r)
    order = {d: i for i, d in enumerate(scores)}
    return sorted(scores.items(), key=lambda kv: (-kv[1], order[kv[0]]))
