"""Whole-user and cross-user reads of the SQLite store: export snapshots and user counts.

A snapshot reads on a connection of its own inside one read transaction, so its counts and
its pages see the same moment (WAL keeps that moment for the reader while writers go on), and
it fetches :data:`~memlane.store.base.SNAPSHOT_PAGE` rows at a time, so memory stays flat
however many memories the user has.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

from memlane.models import Memory
from memlane.store import sqlite_query as q
from memlane.store.base import SNAPSHOT_PAGE, UserCount
from memlane.store.sqlite_schema import store_errors


def snapshot_counts(conn: sqlite3.Connection, user_id: str) -> dict[str, int]:
    """How many memories of the user each status has (the read transaction starts here)."""
    sql = "SELECT status, count(*) FROM memories WHERE user_id = ? GROUP BY status"
    return {str(status): int(n) for status, n in conn.execute(sql, (user_id,))}


def snapshot_pages(
    conn: sqlite3.Connection, path: Path, user_id: str, with_embeddings: bool
) -> Iterator[list[Memory]]:
    """The user's memories in (recorded_at, id) order, a page at a time."""
    blob = "m.embedding" if with_embeddings else "NULL"
    sql = f"SELECT m.doc, {blob} FROM memories m WHERE m.user_id = ? ORDER BY m.recorded_us, m.id"
    with store_errors(path):
        cursor = conn.execute(sql, (user_id,))
        while rows := cursor.fetchmany(SNAPSHOT_PAGE):
            yield [q.memory_from_row(doc, embedding) for doc, embedding in rows]


def user_counts(conn: sqlite3.Connection, after: str | None, limit: int) -> list[UserCount]:
    """Up to ``limit`` users with stored memories after ``after``, with their counts."""
    sql = (
        "SELECT user_id, sum(status = 'active'), count(*) FROM memories"
        f" WHERE {'user_id > ?' if after is not None else '1'}"
        " GROUP BY user_id ORDER BY user_id LIMIT ?"
    )
    params = [after, limit] if after is not None else [limit]
    return [UserCount(u, int(a), int(n)) for u, a, n in conn.execute(sql, params)]
