"""Turn the two component rankings of a backend into fused, explained search hits."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from memlane.models import Memory, SearchHit
from memlane.store.base import SearchQuery
from memlane.store.fusion import fuse_rankings


def combine(
    knn: Sequence[tuple[str, float]],
    bm25: Sequence[tuple[str, float]],
    memories: Mapping[str, Memory],
    query: SearchQuery,
) -> list[SearchHit]:
    """Fuse kNN and BM25 ``(id, score)`` lists with weighted RRF; keep component scores."""
    knn_ids = [i for i, _ in knn]
    bm25_ids = [i for i, _ in bm25]
    fused = fuse_rankings([knn_ids, bm25_ids], [query.knn_weight, query.bm25_weight], query.rrf_k)
    knn_pos = {i: (r, s) for r, (i, s) in enumerate(knn, start=1)}
    bm25_pos = {i: (r, s) for r, (i, s) in enumerate(bm25, start=1)}
    hits = []
    for mem_id, score in fused:
        if mem_id not in memories:
            continue
        kr, ks = knn_pos.get(mem_id, (None, None))
        br, bs = bm25_pos.get(mem_id, (None, None))
        hits.append(SearchHit(memories[mem_id], score, kr, br, ks, bs))
        if len(hits) >= query.k:
            break
    return hits
