"""Retrieval: time parsing, hybrid search, pending turns, boosts, rerank and MMR.

The I/O (store, buffer, embedder, reranker) happens here; the scoring is in
:mod:`memlane.ranking`, which is pure. Parameters arrive validated
(:func:`memlane.validation.validate_retrieve`). The work per call is bounded: the embedder sees
at most ``limits.max_embed_chars`` of the query, and ``include_pending`` embeds the newest
buffered turns only up to ``retrieval.pending_max_chars``, in one batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, tzinfo
from typing import TYPE_CHECKING

import numpy as np

from memlane.buffer.raw import raw_content, raw_memories
from memlane.buffer.turns import BufferedTurn
from memlane.models import Memory, MemoryFilter, MemoryKind, SearchHit, TimeField, TimeWindow
from memlane.ranking import Explanation, RetrievedMemory, is_profile_query, memory_time, mmr, rank
from memlane.store.base import SearchQuery
from memlane.store.fusion import Fusion, fuse_hits
from memlane.text.timeparse import parse_time_range
from memlane.text.tokens import tokenize

if TYPE_CHECKING:
    from memlane.services import Services

Window = tuple[datetime | None, datetime | None]
PENDING_SCAN = 200
PENDING_MIN_COSINE = 0.85  # e5 cosines of unrelated short texts sit around 0.75-0.82
# Time expressions are looked for in the query's first characters only: the parser's cost grows
# with the square of the number of CJK time words (a 16,000-character query of 昨天 took 1.8 s).
TIME_PARSE_CHARS = 2_000

WEEKDAYS = {
    "zh": ("周一", "周二", "周三", "周四", "周五", "周六", "周日"),
    "en": ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"),
}


def retrieve(
    services: Services,
    user_id: str,
    query: str,
    top_k: int,
    kinds: Sequence[MemoryKind] | None = None,
    time_range: Window | None = None,
    now: datetime | None = None,
    include_pending: bool = False,
    rerank: bool | None = None,
) -> list[RetrievedMemory]:
    """The user's memories most relevant to ``query``, best first (parameters validated)."""
    cfg = services.settings.retrieval
    moment = now or datetime.now(services.settings.tz)
    window = time_range or _parse_window(query, moment)
    vector = services.embedder.embed_query(query)
    flt = MemoryFilter(
        kinds=tuple(kinds) if kinds else None,
        time=TimeWindow(window[0], window[1], TimeField.EVENT_TIME)
        if window and (cfg.time_filter or time_range)
        else None,
    )
    search = SearchQuery(
        text=query,
        vector=vector,
        k=cfg.candidates,
        filter=flt,
        candidates=cfg.candidates,
        with_vectors=cfg.mmr_lambda is not None,
        fusion=Fusion.of(cfg),
    )
    hits = services.store.search(user_id, search)
    results = rank(hits, cfg, moment, window, is_profile_query(query))
    if include_pending:
        pending = _pending_hits(services, user_id, query, vector)
        results = sorted(
            results + [_as_pending(r) for r in rank(pending, cfg, moment, window)],
            key=lambda r: -r.score,
        )
    if rerank or (rerank is None and services.settings.rerank.enabled):
        results = _rerank(services, query, results[: top_k * 3])
    if cfg.mmr_lambda is not None:
        return mmr(results, cfg.mmr_lambda, top_k, cfg.mmr_duplicate_threshold)
    return results[:top_k]


def _parse_window(query: str, now: datetime) -> Window | None:
    found = parse_time_range(query[:TIME_PARSE_CHARS], now)
    return (found.start, found.end) if found else None


def _as_pending(result: RetrievedMemory) -> RetrievedMemory:
    return RetrievedMemory(result.memory, result.score, result.explanation, pending=True)


def _pending_hits(
    services: Services, user_id: str, query: str, vector: Sequence[float]
) -> list[SearchHit]:
    """Rank the user's still-buffered turns by cosine and token overlap (read-your-writes).

    A pending turn must share a token with the query or be clearly similar to it, so a burst of
    unrelated chatter never crowds out stored memories.
    """
    settings = services.settings
    entries = newest_within(
        services.buffer.read(user_id, PENDING_SCAN),
        settings.retrieval.pending_max_chars,
        settings.limits.max_embed_chars,
    )
    if not entries:
        return []
    memories = raw_memories(user_id, "pending", entries, datetime.now(services.settings.tz))
    vecs = np.asarray(services.embedder.embed_passages([m.content for m in memories]))
    cos = vecs @ np.asarray(vector, dtype=np.float64)
    q_tokens = set(tokenize(query))
    overlap = [len(q_tokens & set(tokenize(m.content))) for m in memories]
    keep = [i for i in range(len(memories)) if overlap[i] > 0 or cos[i] >= PENDING_MIN_COSINE]
    by_cos = sorted(keep, key=lambda i: -cos[i])
    by_lex = sorted((i for i in keep if overlap[i]), key=lambda i: -overlap[i])
    for i in keep:
        memories[i].embedding = vecs[i].tolist()
    return fuse_hits(
        [(str(i), float(cos[i])) for i in by_cos],
        [(str(i), float(overlap[i])) for i in by_lex],
        {str(i): memories[i] for i in keep},
        Fusion.of(settings.retrieval),
    )


def newest_within(
    entries: Sequence[BufferedTurn], budget_chars: int, max_embed_chars: int
) -> list[BufferedTurn]:
    """The newest entries whose embedded text fits ``budget_chars`` (at least the newest one).

    Each turn counts as the embedder sees it: its stored text cut to ``max_embed_chars``.
    Returned oldest first, like the buffer.
    """
    kept: list[BufferedTurn] = []
    used = 0
    for entry in reversed(entries):
        size = min(len(raw_content(entry)), max_embed_chars)
        if kept and used + size > budget_chars:
            break
        kept.append(entry)
        used += size
    return kept[::-1]


def _rerank(
    services: Services, query: str, results: list[RetrievedMemory]
) -> list[RetrievedMemory]:
    """Order by the reranker's relevance; keep the boosts for the explanation."""
    from memlane.llm.rerank import Reranker

    if not results:
        return results
    reranker = Reranker(services.settings.rerank)
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


def format_time(memory: Memory, language: str, tz: tzinfo | None = None) -> str:
    """``2024-10-26 21:26 周六`` (or ``Sat``), trimmed to the event time's granularity."""
    when = memory_time(memory)
    when = when.astimezone(tz) if tz else when
    gran = memory.time_granularity.value if memory.event_time and memory.time_granularity else ""
    if gran == "year":
        return f"{when:%Y}"
    if gran == "month":
        return f"{when:%Y-%m}"
    day = WEEKDAYS["zh" if language == "zh" else "en"][when.weekday()]
    if gran in {"day", "week"}:
        return f"{when:%Y-%m-%d} {day}"
    return f"{when:%Y-%m-%d %H:%M} {day}"


def format_context(
    memories: Sequence[RetrievedMemory | Memory], language: str = "zh", tz: tzinfo | None = None
) -> list[str]:
    """Lines for a system prompt: ``[2024-10-26 21:26 周六] 用户爱好是吉他。``."""
    lines = []
    for item in memories:
        memory = item.memory if isinstance(item, RetrievedMemory) else item
        lines.append(f"[{format_time(memory, language, tz)}] {memory.content}")
    return lines
