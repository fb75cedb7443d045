"""Fusion: THE one place where rankings become one scored list, for every caller.

Weighted reciprocal rank fusion: an id scores ``sum(w_i / (k + rank_i))`` over the rankings it
appears in (ranks from 1). Scores are returned **normalised** by the best score possible, first
place in every ranking (``sum(w_i) / (k + 1)``), so a fused score is in [0, 1] (up to rounding)
and 1.0 means "first everywhere"; the boosts of ranking add to it on a stable scale.

Used by both store backends (:func:`fuse_hits` over their kNN and BM25 hits), by the ranking of
turns still in the buffer (``memlane.retrieval.pending``) and, through the search query, by the
extractor's look-up of related memories. :class:`Fusion` carries the weights and ``rrf_k`` from
the settings (``retrieval.knn_weight``, ``bm25_weight``, ``rrf_k``); its defaults are the
settings' defaults (:data:`memlane.constants.RRF_K`). Pure functions, no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from memlane.constants import RRF_K
from memlane.models import Memory, SearchHit

if TYPE_CHECKING:
    from memlane.config_sections import RetrievalSettings


@dataclass(frozen=True, slots=True)
class Fusion:
    """How a kNN ranking and a BM25 ranking are fused: their weights and RRF's ``k``."""

    knn_weight: float = 1.0
    bm25_weight: float = 1.0
    rrf_k: int = RRF_K

    @classmethod
    def of(cls, retrieval: RetrievalSettings) -> Fusion:
        """The configured fusion (``retrieval.knn_weight``, ``bm25_weight``, ``rrf_k``)."""
        return cls(retrieval.knn_weight, retrieval.bm25_weight, retrieval.rrf_k)


def fuse_rankings(
    rankings: Sequence[Sequence[str]],
    weights: Sequence[float] | None = None,
    k: int = RRF_K,
) -> list[tuple[str, float]]:
    """Fuse ranked id lists with weighted reciprocal rank fusion; scores normalised to [0, 1].

    Returns ``(id, score)`` best first; ties keep the order of first appearance. An id repeated
    within one list counts at its first rank. With every weight 0, every score is 0.
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
    # Sorted by the raw sums, then normalised: the order never depends on a rounding.
    fused = sorted(scores.items(), key=lambda kv: (-kv[1], order[kv[0]]))
    best = sum(weights) / (k + 1)
    return [(item, score / best if best else 0.0) for item, score in fused]


def fuse_hits(
    knn: Sequence[tuple[str, float]],
    bm25: Sequence[tuple[str, float]],
    memories: Mapping[str, Memory],
    fusion: Fusion,
    limit: int | None = None,
) -> list[SearchHit]:
    """Fuse kNN and BM25 ``(id, score)`` lists into explained hits, best first.

    Each hit keeps its rank and score in each component; ids missing from ``memories`` are
    skipped; at most ``limit`` hits (all when None).
    """
    fused = fuse_rankings(
        [[i for i, _ in knn], [i for i, _ in bm25]],
        [fusion.knn_weight, fusion.bm25_weight],
        fusion.rrf_k,
    )
    knn_pos = {i: (r, s) for r, (i, s) in enumerate(knn, start=1)}
    bm25_pos = {i: (r, s) for r, (i, s) in enumerate(bm25, start=1)}
    hits: list[SearchHit] = []
    for mem_id, score in fused:
        if mem_id not in memories:
            continue
        kr, ks = knn_pos.get(mem_id, (None, None))
        br, bs = bm25_pos.get(mem_id, (None, None))
        hits.append(SearchHit(memories[mem_id], score, kr, br, ks, bs))
        if limit is not None and len(hits) >= limit:
            break
    return hits
