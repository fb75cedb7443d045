"""Consolidation's pure core: who is ready, what one batch takes, what a plan writes.

- :func:`ready_users`: the users dispatch hands out now (a full batch, a long wait, or a pause);
- :func:`take_batch`: the oldest turns that fit the batch's size;
- :func:`written_ids`: the memories a plan may create, for the write guard.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from memlane.buffer.raw import raw_content
from memlane.buffer.turns import BufferedTurn, PendingUser
from pipelines.plan import ExtractionPlan


def ready_users(
    users: Iterable[PendingUser],
    now_ms: int,
    batch_max_turns: int,
    max_wait_s: float,
    idle_s: float,
) -> list[str]:
    """Users whose buffered turns should be consolidated now (pure; oldest first).

    Ready means: a full batch is waiting, or the oldest turn waited ``max_wait_s``, or the user
    has been quiet for ``idle_s`` (the conversation paused).
    """
    ready = [
        u
        for u in users
        if u.length > 0
        and (
            u.length >= batch_max_turns
            or now_ms - u.oldest_ms >= max_wait_s * 1000
            or now_ms - u.last_push_ms >= idle_s * 1000
        )
    ]
    return [u.user_id for u in sorted(ready, key=lambda u: u.oldest_ms)]


def take_batch(entries: Sequence[BufferedTurn], max_chars: int | None) -> list[BufferedTurn]:
    """The oldest entries whose stored text fits ``max_chars`` (always at least one; pure)."""
    if max_chars is None:
        return list(entries)
    batch: list[BufferedTurn] = []
    used = 0
    for entry in entries:
        size = len(raw_content(entry))
        if batch and used + size > max_chars:
            break
        batch.append(entry)
        used += size
    return batch


def written_ids(plan: ExtractionPlan) -> list[str]:
    """The memories a plan may create (supersession only updates what exists)."""
    return [m.id for m in plan.memories] + [m.existing_id for m in plan.merge]
