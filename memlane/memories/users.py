"""``list_users`` for operators: every user memlane knows, with counts and activity.

A user is known from the store (has stored memories, e.g. imported ones) or from Redis (has
ever pushed a turn and was not forgotten). Pages go in user-id order (code points, which is
also the byte order SQLite and Elasticsearch sort UTF-8 keywords in), so the two sources merge
with one ``after`` cursor. Redis keeps the known users in a plain set, so each page reads the
whole set: fine for operators' thousands of users, not meant for a hot path.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from memlane.memories.params import decode_user_cursor, encode_user_cursor
from memlane.memories.ports import MemoryServices
from memlane.models import UserPage, UserSummary


def merge_user_ids(
    known: Sequence[str], stored: Sequence[str], after: str | None, limit: int
) -> tuple[list[str], bool]:
    """The first ``limit`` ids after ``after`` of both sorted sources, and whether more follow.

    ``stored`` must be the first ``limit + 1`` stored ids after ``after`` (or all of them):
    then every id of the page that the store has is among them.
    """
    ids = sorted({u for u in (*known, *stored) if after is None or u > after})
    return ids[:limit], len(ids) > limit


def list_users(services: MemoryServices, cursor: str | None, limit: int) -> UserPage:
    """One page of users with their active and stored counts, pending turns, last push."""
    after = decode_user_cursor(cursor)
    stored = {c.user_id: c for c in services.store.users(after, limit + 1)}
    page, more = merge_user_ids(services.buffer.known_users(), list(stored), after, limit)
    summaries = []
    for user_id, (pending, last_ms) in zip(page, services.buffer.activity(page), strict=True):
        counts = stored.get(user_id)
        summaries.append(
            UserSummary(
                user_id=user_id,
                memories=counts.active if counts else 0,
                stored=counts.total if counts else 0,
                pending=pending,
                last_activity=datetime.fromtimestamp(last_ms / 1000, UTC) if last_ms else None,
            )
        )
    return UserPage(summaries, encode_user_cursor(page[-1]) if more else None)
