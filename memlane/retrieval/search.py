"""``retrieve``: time parsing, hybrid search, pending turns, boosts, rerank and MMR, in order.

The I/O (store, buffer, embedder, reranker) happens here and in :mod:`.pending` and
:mod:`.rerank`; the scoring is in :mod:`.ranking` and the fusion in :mod:`memlane.store.fusion`,
both pure. Parameters arrive validated (:func:`memlane.validation.validate_retrieve`). The work
per call is bounded: the embedder sees at most ``limits.max_embed_chars`` of the query, and
``include_pending`` embeds the newest buffered turns only up to ``retrieval.pending_max_chars``,
in one batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from memlane.buffer.turns import TurnBuffer
from memlane.config import Settings
from memlane.llm.embeddings import Embedder
from memlane.llm.searches import searching
from memlane.models import MemoryFilter, MemoryKind, TimeField, TimeWindow
from memlane.retrieval.pending import pending_hits
from memlane.retrieval.ranking import RetrievedMemory, fold_covered, is_profile_query, mmr, rank
from memlane.retrieval.rerank import rerank as rerank_step
from memlane.store.base import MemoryStore, SearchQuery
from memlane.store.fusion import Fusion
from memlane.text.timeparse import parse_time_range

Window = tuple[datetime | None, datetime | None]
# Time expressions are looked for in the query's first characters only: the parser's cost grows
# with the square of the number of CJK time words (a 16,000-character query of 昨天 took 1.8 s).
TIME_PARSE_CHARS = 2_000


class RetrievalServices(Protocol):
    """What retrieval uses (:class:`memlane.services.Services` is one). The buffer is only
    touched for ``include_pending``, so a plain retrieve never connects to Redis."""

    @property
    def settings(self) -> Settings:
        """The settings (``retrieval``, ``rerank``, ``limits``, the timezone)."""

    @property
    def store(self) -> MemoryStore:
        """The memory store."""

    @property
    def embedder(self) -> Embedder:
        """The embedder (queries and pending turns)."""

    @property
    def buffer(self) -> TurnBuffer:
        """The turn buffer (pending turns)."""


def retrieve(
    services: RetrievalServices,
    user_id: str,
    query: str,
    top_k: int,
    kinds: Sequence[MemoryKind] | None = None,
    time_range: Window | None = None,
    now: datetime | None = None,
    include_pending: bool = False,
    rerank: bool | None = None,
) -> list[RetrievedMemory]:
    """The user's memories most relevant to ``query``, best first (parameters validated).

    Counted as a search in progress while it runs (:mod:`memlane.llm.searches`)."""
    with searching():
        return _retrieve(
            services, user_id, query, top_k, kinds, time_range, now, include_pending, rerank
        )


def _retrieve(
    services: RetrievalServices,
    user_id: str,
    query: str,
    top_k: int,
    kinds: Sequence[MemoryKind] | None,
    time_range: Window | None,
    now: datetime | None,
    include_pending: bool,
    rerank: bool | None,
) -> list[RetrievedMemory]:
    settings = services.settings
    cfg = settings.retrieval
    moment = now or datetime.now(settings.tz)
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
    # Raw turns an observation among the candidates covers fold into it (LLM mode keeps both).
    results = fold_covered(rank(hits, cfg, moment, window, is_profile_query(query), query))
    if include_pending:
        pending = pending_hits(services.buffer, services.embedder, settings, user_id, query, vector)
        results = sorted(
            results + [_as_pending(r) for r in rank(pending, cfg, moment, window, query=query)],
            key=lambda r: -r.score,
        )
    if rerank or (rerank is None and settings.rerank.enabled):
        results = rerank_step(settings.rerank, query, results[: top_k * 3])
    if cfg.mmr_lambda is not None:
        return mmr(results, cfg.mmr_lambda, top_k, cfg.mmr_duplicate_threshold)
    return results[:top_k]


def _parse_window(query: str, now: datetime) -> Window | None:
    found = parse_time_range(query[:TIME_PARSE_CHARS], now)
    return (found.start, found.end) if found else None


def _as_pending(result: RetrievedMemory) -> RetrievedMemory:
    return RetrievedMemory(result.memory, result.score, result.explanation, pending=True)
