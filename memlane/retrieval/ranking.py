"""Pure ranking: boosts on top of fused search hits, MMR, and profile-question detection.

The fused score comes in [0, 1] from :mod:`memlane.store.fusion`; the boosts add to it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np

from memlane.buffer.raw import SPEAKER_KEY
from memlane.config_sections import RetrievalSettings
from memlane.models import Memory, MemoryKind, SearchHit, memory_time
from memlane.store.vectors import normalise_rows, product
from memlane.text.tokens import is_cjk

_PROFILE = re.compile(
    r"(你知道我|我(是|的)?(喜欢|爱好|职业|工作|家人|住在|偏好)|关于我|我是谁|我的.{0,6}是什么"
    r"|\bwhat do i\b|\bwho am i\b|\bwhat (?:is|are) my\b|\bdo you know (?:what|who|where) i\b"
    r"|\bmy (?:hobby|hobbies|job|work|family|preferences?|favou?rite)\b|\babout me\b)",
    re.IGNORECASE,
)


@dataclass(frozen=True, slots=True)
class Explanation:
    """Why a memory got its score: component ranks, boosts and rerank score."""

    knn_rank: int | None = None
    bm25_rank: int | None = None
    fused: float = 0.0
    boosts: dict[str, float] = field(default_factory=dict)
    rerank_score: float | None = None


@dataclass(frozen=True, slots=True)
class RetrievedMemory:
    """One retrieval result. ``pending`` marks a turn still waiting in the buffer."""

    memory: Memory
    score: float
    explanation: Explanation
    pending: bool = False


def is_profile_query(query: str) -> bool:
    """True for questions about the user themselves ("你知道我喜欢什么?", "what do I do?")."""
    return bool(_PROFILE.search(query))


def named_speaker(query: str, memories: Sequence[Memory]) -> str | None:
    """The one speaker of these raw memories whose name the query mentions; None if 0 or 2+.

    The names come from the candidates themselves (``metadata["speaker"]``), so no list of
    participants is kept. Latin names match as whole words, case-insensitively ("What did
    caroline's..."); names in CJK script as substrings (there are no word boundaries).
    """
    names = {
        str(m.metadata[SPEAKER_KEY])
        for m in memories
        if m.kind is MemoryKind.RAW and m.metadata.get(SPEAKER_KEY)
    }
    text = query.casefold()
    named = {n for n in names if _mentions(text, n.casefold())}
    return named.pop() if len(named) == 1 else None


def _mentions(text: str, name: str) -> bool:
    if any(is_cjk(ch) for ch in name):
        return name in text
    return re.search(rf"(?<!\w){re.escape(name)}(?!\w)", text) is not None


def recency(memory: Memory, now: datetime, half_life_days: float) -> float:
    """Exponential decay in [0, 1] of the time since the memory was recorded."""
    age_days = max(0.0, (now - memory.recorded_at).total_seconds() / 86400)
    return math.exp(-math.log(2) * age_days / half_life_days)


def boost(
    hit: SearchHit,
    cfg: RetrievalSettings,
    now: datetime,
    window: tuple[datetime | None, datetime | None] | None,
    profile: bool,
    speaker: str | None = None,
) -> RetrievedMemory:
    """Score one hit: its fused score (in [0, 1]) plus boosts, each recorded.

    ``speaker`` is the participant the question names (:func:`named_speaker`): their raw
    turns get ``speaker_boost``.
    """
    fused = hit.score
    m = hit.memory
    boosts: dict[str, float] = {}
    if m.kind is MemoryKind.INSIGHT:
        boosts["insight"] = cfg.profile_insight_boost if profile else cfg.insight_boost
    if cfg.importance_weight:
        boosts["importance"] = cfg.importance_weight * m.importance
    if cfg.recency_weight:
        boosts["recency"] = cfg.recency_weight * recency(m, now, cfg.recency_half_life_days)
    if window and in_window(memory_time(m), window):
        boosts["time"] = cfg.time_match_boost
    if speaker is not None and m.kind is MemoryKind.RAW and m.metadata.get(SPEAKER_KEY) == speaker:
        boosts["speaker"] = cfg.speaker_boost
    explanation = Explanation(hit.knn_rank, hit.bm25_rank, fused, boosts)
    return RetrievedMemory(m, fused + sum(boosts.values()), explanation)


def in_window(when: datetime, window: tuple[datetime | None, datetime | None]) -> bool:
    """Whether ``when`` falls in the half-open window (open ends allowed)."""
    start, end = window
    return (start is None or when >= start) and (end is None or when < end)


def rank(
    hits: Sequence[SearchHit],
    cfg: RetrievalSettings,
    now: datetime,
    window: tuple[datetime | None, datetime | None] | None = None,
    profile: bool = False,
    query: str = "",
) -> list[RetrievedMemory]:
    """Boost and sort hits, best first (stable on ties). ``query`` names a speaker, or not."""
    speaker = named_speaker(query, [h.memory for h in hits]) if cfg.speaker_boost else None
    scored = [boost(h, cfg, now, window, profile, speaker) for h in hits]
    return sorted(scored, key=lambda r: -r.score)


def fold_covered(results: Sequence[RetrievedMemory]) -> list[RetrievedMemory]:
    """Raw turns that an observation among the results covers, folded into it (pure).

    In LLM mode a turn is kept raw beside the observations made from it. When both come back,
    the raw memory leaves the results and its observation takes the better of the two scores,
    so the observation ranks where its turn did and the context holds the fact once. A raw
    memory whose observation is not among the results stays: it may be what answers.
    """
    covering: dict[str, int] = {}
    for i, r in enumerate(results):
        if r.memory.kind is MemoryKind.OBSERVATION and not r.pending:
            for turn_id in r.memory.source_turn_ids:
                covering.setdefault(turn_id, i)
    if not covering:
        return list(results)
    best = [r.score for r in results]
    folded: set[int] = set()
    for i, r in enumerate(results):
        if r.memory.kind is not MemoryKind.RAW or r.pending:
            continue
        owners = [covering[t] for t in r.memory.source_turn_ids if t in covering]
        if owners and len(owners) == len(r.memory.source_turn_ids):
            folded.add(i)
            for owner in owners:
                best[owner] = max(best[owner], r.score)
    kept = [
        RetrievedMemory(r.memory, best[i], r.explanation, r.pending) if best[i] != r.score else r
        for i, r in enumerate(results)
        if i not in folded
    ]
    return sorted(kept, key=lambda r: -r.score)


def mmr(
    results: Sequence[RetrievedMemory], lam: float, k: int, duplicate_threshold: float = 0.97
) -> list[RetrievedMemory]:
    """Maximal marginal relevance over the memories' embeddings; near-identical ones drop.

    Results without embeddings are kept in place of relevance order.
    """
    if not results:
        return []
    vecs = [r.memory.embedding for r in results]
    if any(v is None for v in vecs):
        return list(results[:k])
    mat = normalise_rows(np.asarray(vecs, dtype=np.float32))
    rel = np.asarray([r.score for r in results])
    rel = rel / (rel.max() or 1.0)
    chosen: list[int] = []
    left = np.ones(len(results), dtype=bool)
    # Each result's highest similarity to a chosen one (0 before the first is chosen), kept up
    # to date one matrix-vector product per choice (no BLAS: see store.vectors.product).
    max_sim = np.zeros(len(results), dtype=np.float32)
    while left.any() and len(chosen) < k:
        candidates = np.flatnonzero(left)
        scores = lam * rel[candidates] - (1 - lam) * max_sim[candidates]
        idx = int(candidates[np.argmax(scores)])
        left[idx] = False
        if chosen and max_sim[idx] >= duplicate_threshold:
            continue
        sims = product(mat, mat[idx])
        max_sim = np.maximum(max_sim, sims) if chosen else sims
        chosen.append(idx)
    return [results[i] for i in chosen]
