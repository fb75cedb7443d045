"""What each part of the issue-14 retrieval defaults buys, measured on the recall bench's store.

Cumulative steps, each the previous plus one part (every step uses today's BM25 tokens:
Chinese words without stop words and filler):

1. **RRF, turns embedded alone**: reciprocal rank fusion (k = 10, the fusion before issue 14)
   over the same candidates, replayed by :class:`RrfRetriever`, and the LoCoMo turns re-embedded
   without their previous turn (:func:`embed_turns_alone`);
2. **z-score fusion**: the product's fusion (:mod:`memlane.store.fusion`), turns alone;
3. **+ previous turn in the vector**: the turns re-embedded as raw mode embeds them;
4. **+ speaker boost** = the defaults.

MADial-Bench's memories are events, not turns, so only steps 1-2 apply there. The replay is
``retrieve`` step for step (time parsing, one store search, boosts, ranking) with only the
fused score replaced, so its rows compare with the product's rows exactly.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from memlane.buffer.raw import raw_memories, raw_passages
from memlane.buffer.turns import BufferedTurn
from memlane.config import Settings
from memlane.models import SearchHit
from memlane.retrieval.ranking import RetrievedMemory, is_profile_query, rank
from memlane.store.base import MemoryStore, SearchQuery
from memlane.store.fusion import Fusion
from memlane.text.timeparse import parse_time_range
from memlane.validation import validate_turns

RRF_K = 10  # the default of retrieval.rrf_k before issue 14
NO_SPEAKER = {"speaker_boost": 0.0}


class RrfRetriever:
    """``retrieve`` with the fused score replaced by normalised weighted RRF (k = 10).

    The store's search returns every candidate of the two lists with its rank in each
    (``SearchHit.knn_rank`` / ``bm25_rank``); RRF is recomputed from those ranks, then the
    product's boosts and ranking apply. Speaker boost off (it came with issue 14 too).
    """

    def __init__(self, settings: Settings, store: MemoryStore, embedder: Any) -> None:
        self.settings = settings.model_copy(
            update={"retrieval": settings.retrieval.model_copy(update=NO_SPEAKER)}
        )
        self.store = store
        self.embedder = embedder

    def retrieve(
        self, user_id: str, query: str, top_k: int, now: datetime
    ) -> list[RetrievedMemory]:
        """The top ``top_k`` memories under RRF fusion (no time filter, as the defaults)."""
        cfg = self.settings.retrieval
        found = parse_time_range(query[:2000], now)
        window = (found.start, found.end) if found else None
        vector = self.embedder.embed_query(query)
        both = SearchQuery(
            text=query,
            vector=vector,
            k=2 * cfg.candidates,  # the whole union, so RRF sees every candidate
            candidates=cfg.candidates,
            fusion=Fusion.of(cfg),
        )
        hits = [
            rrf_hit(h, cfg.knn_weight, cfg.bm25_weight) for h in self.store.search(user_id, both)
        ]
        ranked = rank(hits, cfg, now, window, is_profile_query(query), query)
        return ranked[:top_k]


def rrf_hit(hit: SearchHit, wk: float, wb: float, k: int = RRF_K) -> SearchHit:
    """The hit with its score replaced by normalised RRF of its two ranks (1.0 = first in both)."""
    score = (wk / (k + hit.knn_rank) if hit.knn_rank else 0.0) + (
        wb / (k + hit.bm25_rank) if hit.bm25_rank else 0.0
    )
    best = (wk + wb) / (k + 1)
    return SearchHit(
        hit.memory,
        score / best if best else 0.0,
        hit.knn_rank,
        hit.bm25_rank,
        hit.knn_score,
        hit.bm25_score,
    )


def embed_turns(
    store: MemoryStore, embedder: Any, samples: Sequence[Any], settings: Settings, alone: bool
) -> None:
    """Re-upsert the LoCoMo raw memories with vectors of the turn alone, or with its previous
    turn (as raw mode embeds it). Same ids and content, so BM25 does not change."""
    for sample in samples:
        user = f"locomo-{sample.sample_id}"
        turns = [
            {
                "role": "user",
                "content": t.text,
                "ts": t.ts,
                "turn_id": t.dia_id,
                "name": t.speaker,
                "session_id": f"{sample.sample_id}-s{t.session}",
            }
            for t in sample.turns
            if t.text.strip()
        ]
        valid = validate_turns(user, turns, None, settings.limits, settings.tz)
        entries = [BufferedTurn(f"{i}-0", turn) for i, turn in enumerate(valid)]
        memories = raw_memories(
            user, f"bench-{sample.sample_id}", entries, datetime.now(settings.tz)
        )
        texts = [m.content for m in memories] if alone else raw_passages(entries)
        for memory, vector in zip(memories, embedder.embed_passages(texts), strict=True):
            memory.embedding = vector
        for i in range(0, len(memories), 500):
            store.upsert(memories[i : i + 500])


def locomo_parts(
    settings: Settings,
    store: MemoryStore,
    embedder: Any,
    samples: Sequence[Any],
    evaluate: Any,
    client_for: Any,
) -> list[dict[str, Any]]:
    """LoCoMo rows of the cumulative steps; leaves the store as raw mode embeds it.

    ``evaluate(client)`` scores one retriever; ``client_for(overrides)`` is a MemoryClient on
    this store with retrieval settings overridden.
    """
    rows = []
    embed_turns(store, embedder, samples, settings, alone=True)
    steps: list[tuple[str, Any]] = [
        ("1. RRF k=10 (fusion before issue 14), turns embedded alone", None),
        ("2. z-score fusion, turns embedded alone", NO_SPEAKER),
    ]
    for name, overrides in steps:
        client = (
            RrfRetriever(settings, store, embedder) if overrides is None else client_for(overrides)
        )
        rows.append({"name": name, **evaluate(client)})
    embed_turns(store, embedder, samples, settings, alone=False)
    rows.append({"name": "3. + previous turn in the vector", **evaluate(client_for(NO_SPEAKER))})
    rows.append({"name": "4. + speaker boost (the defaults)", **evaluate(client_for({}))})
    return rows


def madial_parts(
    settings: Settings, store: MemoryStore, embedder: Any, evaluate: Any, client_for: Any
) -> list[dict[str, Any]]:
    """MADial rows: RRF against z-score fusion (context and speaker do not apply to events)."""
    return [
        {
            "name": "1. RRF k=10 (fusion before issue 14)",
            **evaluate(RrfRetriever(settings, store, embedder)),
        },
        {"name": "2. z-score fusion (the defaults)", **evaluate(client_for({}))},
    ]
