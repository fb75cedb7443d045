"""Read-your-writes: the user's turns still in the buffer, ranked like stored memories.

``retrieve(..., include_pending=True)`` searches the newest buffered turns too, as raw memories:
by cosine to the query and by token overlap, fused by :mod:`memlane.store.fusion` with the
configured weights. The cost is bounded: the newest turns up to ``retrieval.pending_max_chars``
are embedded, in one batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import numpy as np

from memlane.buffer.raw import raw_content, raw_memories
from memlane.buffer.turns import BufferedTurn, TurnBuffer
from memlane.config import Settings
from memlane.llm.embeddings import Embedder
from memlane.models import SearchHit
from memlane.store.fusion import Fusion, fuse_hits
from memlane.text.tokens import tokenize

PENDING_SCAN = 200
PENDING_MIN_COSINE = 0.85  # e5 cosines of unrelated short texts sit around 0.75-0.82


def pending_hits(
    buffer: TurnBuffer,
    embedder: Embedder,
    settings: Settings,
    user_id: str,
    query: str,
    vector: Sequence[float],
) -> list[SearchHit]:
    """Rank the user's still-buffered turns by cosine and token overlap (read-your-writes).

    A pending turn must share a token with the query or be clearly similar to it, so a burst of
    unrelated chatter never crowds out stored memories.
    """
    entries = newest_within(
        buffer.read(user_id, PENDING_SCAN),
        settings.retrieval.pending_max_chars,
        settings.limits.max_embed_chars,
    )
    if not entries:
        return []
    memories = raw_memories(user_id, "pending", entries, datetime.now(settings.tz))
    vecs = np.asarray(embedder.embed_passages([m.content for m in memories]))
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
