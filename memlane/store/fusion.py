"""Fusion: THE one place where a kNN list and a BM25 list become one scored list, for every caller.

Equal-weight **z-score fusion** of the two components' scores over the union of their
candidates. Each list's scores (cosine, BM25) are standardised to mean 0 and standard deviation
1 over the union; a candidate missing from a list takes that list's minimum score, because it
ranked below everything the list returned. The fused score is the weighted mean
``(w_knn * z_knn + w_bm25 * z_bm25) / (w_knn + w_bm25)``, then rescaled to [0, 1] over the
candidates (1.0 = the best candidate, 0.0 = the worst, over a span of at least
:data:`MIN_SPAN` standard deviations), so the boosts of :mod:`memlane.retrieval.ranking` add
on a stable scale.

Why scores and not ranks (issue 14, measured on LoCoMo and MADial-Bench zh): reciprocal rank
fusion gives BM25's first hit as much weight as the vector's first hit even when BM25 matched
only a filler word, which cost up to 15 points of R@5 against plain vector search on Chinese.
Standardised scores keep how far ahead a hit is. With the word-level Chinese tokens it was the
rule whose result stayed within 1 point of the better of dense-only and BM25-only on every
query formulation of both benchmarks (``tests/integration/test_fusion_never_hurts.py``), and the
best on LoCoMo. No weights are learned; ``knn_weight`` and ``bm25_weight`` are the mix.

Used by both store backends (:func:`fuse_hits`), by the ranking of turns still in the buffer
(``memlane.retrieval.pending``) and, through the search query, by the extractor's look-up of
related memories. :class:`Fusion` carries the weights from the settings
(``retrieval.knn_weight``, ``bm25_weight``). Pure functions, no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from memlane.models import Memory, SearchHit

if TYPE_CHECKING:
    from memlane.config_sections import RetrievalSettings

Scored = Sequence[tuple[str, float]]
# The rescale to [0, 1] spans at least this many standard deviations of the mix. z-scores know
# nothing of absolute gaps: over two candidates they are always +-1, so a cosine gap of 0.002
# between a user's only two memories would become the whole 0..1 range and outweigh every
# boost. Over a real candidate list (tens of hits) the mix spans more than this, and the floor
# changes nothing. Fused values closer than TIE are equal (rounding).
MIN_SPAN = 3.0
TIE = 1e-9


@dataclass(frozen=True, slots=True)
class Fusion:
    """How a kNN list and a BM25 list are fused: the weight of each in the mix."""

    knn_weight: float = 1.0
    bm25_weight: float = 1.0

    @classmethod
    def of(cls, retrieval: RetrievalSettings) -> Fusion:
        """The configured fusion (``retrieval.knn_weight``, ``bm25_weight``)."""
        return cls(retrieval.knn_weight, retrieval.bm25_weight)


def standardise(values: Sequence[float]) -> list[float]:
    """Values as z-scores (population standard deviation); all 0 when they are all equal."""
    if not values:
        return []
    mean = math.fsum(values) / len(values)
    sd = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / len(values))
    return [(v - mean) / sd if sd > 0 else 0.0 for v in values]


def fuse_scores(
    lists: Sequence[Scored], weights: Sequence[float] | None = None
) -> list[tuple[str, float]]:
    """Fuse ``(id, score)`` lists by weighted z-scores; fused scores rescaled to [0, 1].

    The best candidate scores 1.0; the others ``1 - (best - mix) / span``, where ``span`` is the
    mix's range, or :data:`MIN_SPAN` if that is larger (few candidates).

    Returns ``(id, score)`` best first over the union of ids; ties keep the order of first
    appearance (the first list's order, then the next's). An id repeated within one list counts
    at its first score. A list with no entries adds nothing. When every candidate fuses to the
    same value (one candidate, or no signal; within :data:`TIE`), each scores 1.0, or 0.0 if
    every weight is 0.
    """
    if weights is None:
        weights = [1.0] * len(lists)
    if len(weights) != len(lists):
        raise ValueError("weights: one weight per list is required")
    if any(w < 0 or not math.isfinite(w) for w in weights):
        raise ValueError("weights: must be finite and >= 0")
    firsts = [dict(reversed(lst)) for lst in lists]  # reversed: the first score of an id wins
    ids = list(dict.fromkeys(i for lst in lists for i, _ in lst))
    total = math.fsum(weights)
    mixed = [0.0] * len(ids)
    for scores, weight in zip(firsts, weights, strict=True):
        if not scores or not weight:
            continue
        low = min(scores.values())
        z = standardise([scores.get(i, low) for i in ids])
        mixed = [m + weight * v / total for m, v in zip(mixed, z, strict=True)]
    lo, hi = min(mixed, default=0.0), max(mixed, default=0.0)
    if hi - lo > TIE:
        span = max(hi - lo, MIN_SPAN)
        fused = [(i, 1.0 - (hi - m) / span) for i, m in zip(ids, mixed, strict=True)]
    else:
        fused = [(i, 1.0 if total else 0.0) for i in ids]
    order = {item: n for n, item in enumerate(ids)}
    return sorted(fused, key=lambda kv: (-kv[1], order[kv[0]]))


def fuse_hits(
    knn: Scored,
    bm25: Scored,
    memories: Mapping[str, Memory],
    fusion: Fusion,
    limit: int | None = None,
) -> list[SearchHit]:
    """Fuse kNN and BM25 ``(id, score)`` lists (each best first) into explained hits.

    Each hit keeps its rank and score in each component; ids missing from ``memories`` are
    skipped; at most ``limit`` hits (all when None).
    """
    fused = fuse_scores([knn, bm25], [fusion.knn_weight, fusion.bm25_weight])
    knn_pos = {i: (r, s) for r, (i, s) in reversed(list(enumerate(knn, start=1)))}
    bm25_pos = {i: (r, s) for r, (i, s) in reversed(list(enumerate(bm25, start=1)))}
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
