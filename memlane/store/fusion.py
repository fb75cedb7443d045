"""Reciprocal rank fusion: one pure function shared by every store backend."""

from __future__ import annotations

from collections.abc import Sequence

DEFAULT_RRF_K = 60


def fuse_rankings(
    rankings: Sequence[Sequence[str]],
    weights: Sequence[float] | None = None,
    k: int = DEFAULT_RRF_K,
) -> list[tuple[str, float]]:
    """Fuse ranked id lists with weighted reciprocal rank fusion.

    Each id scores ``sum(w_i / (k + rank_i))`` over the lists it appears in (ranks from 1).
    Returns ``(id, score)`` best first; ties keep the order of first appearance.
    """
    if weights is None:
        weights = [1.0] * len(rankings)
    if len(weights) != len(rankings):
        raise ValueError("weights: one weight per ranking is required")
    if k < 1:
        raise ValueError("k: must be >= 1")
    scores: dict[str, float] = {}
    for ranking, weight in zip(rankings, weights, strict=True):
        for rank, item in enumerate(dict.fromkeys(ranking), start=1):
            scores[item] = scores.get(item, 0.0) + weight / (k + rank)
    order = {item: i for i, item in enumerate(scores)}
    return sorted(scores.items(), key=lambda kv: (-kv[1], order[kv[0]]))
