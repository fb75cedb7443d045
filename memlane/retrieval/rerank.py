"""The optional rerank step: order results by a cross-encoder's relevance (``/rerank``)."""

from __future__ import annotations

from memlane.config_sections import RerankSettings
from memlane.retrieval.ranking import Explanation, RetrievedMemory


def rerank(
    settings: RerankSettings, query: str, results: list[RetrievedMemory]
) -> list[RetrievedMemory]:
    """Order by the reranker's relevance; keep the boosts, and record the rerank score."""
    from memlane.llm.rerank import Reranker  # httpx is only loaded when reranking is used

    if not results:
        return results
    reranker = Reranker(settings)
    try:
        scores = reranker.scores(query, [r.memory.content for r in results])
    finally:
        reranker.close()
    out = []
    for r, s in zip(results, scores, strict=True):
        e = r.explanation
        expl = Explanation(e.knn_rank, e.bm25_rank, e.fused, e.boosts, s)
        out.append(RetrievedMemory(r.memory, s + sum(e.boosts.values()), expl, r.pending))
    return sorted(out, key=lambda r: -r.score)
