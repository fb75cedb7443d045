"""``list_users`` for operators: every user memlane knows, with counts and activity.

A user is known from the store (has stored memories, e.g. imported ones) or from Redis (has
ever pushed a turn and was not forgotten). Pages go in user-id order (code points, which is
also the byte order SQLite and Elasticsearch sort UTF-8 keywords in), so the two sources merge
with one ``after`` cursor. Redis keeps the known users in a plain set, so each page reads the
whole set: fine for operators' thousands of users, not meant for a hot path.

A ``prefix`` keeps the users whose id starts with it. In code-point order they are one run
starting at the prefix itself, so a page starts just below the prefix (:func:`floor_of`) and
stops at the first stored id outside it.
"""

from __future__ import annotations

from collections import Counter
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


# Unassigned (Unicode category Cn): no valid user id holds it, so it is above every id's
# character at the same position.
_ABOVE_ALL = "\U0010ffff"
_SURROGATES = range(0xD800, 0xE000)


def floor_of(prefix: str) -> str:
    """A string below every id that starts with ``prefix`` and above every valid id below it.

    ``prefix`` with its last character lowered by one, then a character above any a user id
    may hold: every id under ``prefix`` is greater (it is greater at that position), every
    valid id less than ``prefix`` is smaller. Surrogates (not UTF-8) are skipped.
    """
    code = ord(prefix[-1]) - 1
    if code in _SURROGATES:
        code = _SURROGATES.start - 1
    return prefix[:-1] + chr(code) + _ABOVE_ALL


def list_users(
    services: MemoryServices, cursor: str | None, limit: int, prefix: str | None = None
) -> UserPage:
    """One page of users (all, or those whose id starts with ``prefix``) with their active and
    stored counts, pending turns, last push and dead letters."""
    after = decode_user_cursor(cursor)
    if prefix:
        floor = floor_of(prefix)
        after = floor if after is None or after < floor else after
    stored = {
        c.user_id: c
        for c in services.store.users(after, limit + 1)
        if not prefix or c.user_id.startswith(prefix)
    }
    known = [u for u in services.buffer.known_users() if not prefix or u.startswith(prefix)]
    page, more = merge_user_ids(known, list(stored), after, limit)
    parked = Counter(d["user_id"] for d in services.buffer.dead_letters()) if page else Counter()
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
                dead_letters=parked[user_id],
            )
        )
    return UserPage(summaries, encode_user_cursor(page[-1]) if more else None)
