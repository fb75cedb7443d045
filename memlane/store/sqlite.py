"""The embedded memory store: one SQLite file, FTS5 for BM25, numpy for exact cosine kNN.

Safe for several threads (one connection per thread) and several processes (WAL mode, a busy
timeout, and ``BEGIN IMMEDIATE`` for every write). Filters are always applied in SQL by
:func:`memlane.store.sqlite_query.where_clause`; kNN scores the rows that filter allows
against a per-user matrix cached in memory. The cache is keyed by a per-user token that every
write transaction replaces, so a write in any process makes other processes reload.

Memories are keyed by ``(user_id, id)``: the same id under two users is two memories.
"""

from __future__ import annotations

import secrets
import sqlite3
import threading
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from memlane.config_sections import LimitSettings
from memlane.models import Memory, MemoryFilter, MemoryStatus, Page, SearchHit, SupersedeReason
from memlane.store import sqlite_query as q
from memlane.store.base import (
    SearchQuery,
    Snapshot,
    UserCount,
    check_after,
    check_ids,
    check_limit,
    check_query,
    check_supersede,
)
from memlane.store.fusion import fuse_hits
from memlane.store.sqlite_scan import snapshot_counts, snapshot_pages, user_counts
from memlane.store.sqlite_schema import connect, create_schema, store_errors
from memlane.store.vectors import Matrix, stack, top_k
from memlane.validation import validate_memories, validate_user_id

CACHE_USERS = 256
CHUNK = 500  # ids per IN (...) list, well under SQLite's variable limit
_UPSERT = """
    INSERT INTO memories (id, user_id, kind, status, session_id, event_us, recorded_us,
        created_at, updated_at, meta_terms, doc, embedding, superseded_by)
    VALUES (:id, :user_id, :kind, :status, :session_id, :event_us, :recorded_us,
        :created_at, :updated_at, :meta_terms, :doc, :embedding, :superseded_by)
    ON CONFLICT (user_id, id) DO UPDATE SET kind = excluded.kind, status = excluded.status,
        session_id = excluded.session_id, event_us = excluded.event_us,
        recorded_us = excluded.recorded_us, created_at = excluded.created_at,
        updated_at = excluded.updated_at, meta_terms = excluded.meta_terms,
        doc = excluded.doc, embedding = excluded.embedding,
        superseded_by = excluded.superseded_by
    RETURNING rowid
"""


@dataclass(frozen=True, slots=True)
class _UserVectors:
    """One user's embedded memories as a row-normalised matrix, valid for one token."""

    token: str
    rowids: npt.NDArray[np.int64]
    ids: list[str]
    matrix: Matrix
    # The mask of the rows a filter allows, by (where, params): valid for the same token, so a
    # repeated search skips reading every rowid of the user (3.7 ms at 2,000 memories).
    masks: dict[tuple[str, tuple[Any, ...]], npt.NDArray[np.bool_]] = field(default_factory=dict)


MASKS_PER_USER = 32


def _chunks(items: Sequence[str]) -> Iterator[list[str]]:
    for start in range(0, len(items), CHUNK):
        yield list(items[start : start + CHUNK])


class SqliteStore:
    """A :class:`~memlane.store.base.MemoryStore` in one SQLite file."""

    def __init__(self, path: Path, dims: int, limits: LimitSettings) -> None:
        self.path = Path(path)
        self.dims = dims
        self.limits = limits
        self._local = threading.local()
        self._lock = threading.Lock()
        self._conns: list[sqlite3.Connection] = []
        self._schema_ready = False
        self._cache: OrderedDict[str, _UserVectors] = OrderedDict()

    # -- connections and transactions -------------------------------------------------

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = connect(self.path)
            with self._lock:
                self._conns.append(conn)
            self._local.conn = conn
        if not self._schema_ready:
            create_schema(conn, self.dims)
            self._schema_ready = True
        return conn

    @contextmanager
    def _tx(self, write: bool = False) -> Iterator[sqlite3.Connection]:
        """One transaction (a consistent snapshot for reads); sqlite3 errors -> StoreError."""
        with store_errors(self.path):
            conn = self._conn()
            conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

    def _user(self, user_id: str) -> str:
        return validate_user_id(user_id, self.limits)

    @staticmethod
    def _bump(conn: sqlite3.Connection, user_ids: Sequence[str]) -> None:
        """Give each user a fresh version token, inside the caller's write transaction."""
        conn.executemany(
            "INSERT INTO user_versions (user_id, token) VALUES (?, ?)"
            " ON CONFLICT (user_id) DO UPDATE SET token = excluded.token",
            [(u, secrets.token_hex(8)) for u in dict.fromkeys(user_ids)],
        )

    # -- the MemoryStore protocol -------------------------------------------------------

    def ensure_schema(self) -> None:
        """Create the tables (and WAL mode) if missing; safe to call repeatedly."""
        with self._tx():
            pass

    def upsert(self, memories: Sequence[Memory]) -> int:
        """Insert or replace memories by (user_id, id), all in one transaction."""
        validate_memories(memories, self.dims, self.limits)
        now = datetime.now(UTC)
        rows = [q.memory_row(m, now) for m in memories]
        texts = [q.fts_text(m) for m in memories]
        with self._tx(write=True) as conn:
            for row, text in zip(rows, texts, strict=True):
                (rowid,) = conn.execute(_UPSERT, row).fetchone()
                conn.execute("DELETE FROM memories_fts WHERE rowid = ?", (rowid,))
                conn.execute(
                    "INSERT INTO memories_fts (rowid, text, owner) VALUES (?, ?, ?)",
                    (rowid, text, q.owner_token(row["user_id"])),
                )
            self._bump(conn, [m.user_id for m in memories])
        return len(memories)

    def get(self, user_id: str, ids: Sequence[str]) -> list[Memory]:
        """The user's memories with these ids, in the order given; missing ids skipped."""
        user = self._user(user_id)
        wanted = check_ids(ids)
        with self._tx() as conn:
            found = self._fetch_by_ids(conn, user, wanted)
        return [found[i] for i in wanted if i in found]

    def _fetch_by_ids(
        self, conn: sqlite3.Connection, user_id: str, ids: Sequence[str]
    ) -> dict[str, Memory]:
        found: dict[str, Memory] = {}
        for chunk in _chunks(ids):
            where, params = q.where_clause(user_id, MemoryFilter(include_superseded=True))
            sql = f"SELECT {q.MEMORY_COLUMNS} FROM memories m WHERE {where} AND m.id IN "
            sql += f"({', '.join('?' * len(chunk))})"
            for _, doc, blob in conn.execute(sql, [*params, *chunk]):
                memory = q.memory_from_row(doc, blob)
                found[memory.id] = memory
        return found

    def search(self, user_id: str, query: SearchQuery) -> list[SearchHit]:
        """Hybrid search: BM25 (FTS5) and cosine kNN under one filter, fused by z-scores."""
        user = self._user(user_id)
        check_query(query, self.dims)
        size = max(query.k, query.candidates)
        with self._tx() as conn:
            where, params = q.where_clause(user, query.filter)
            bm25 = self._bm25(conn, user, where, params, query.text, size)
            knn = self._knn(conn, user, where, params, query.vector, size)
            ids = list(dict.fromkeys([i for i, _ in knn] + [i for i, _ in bm25]))
            memories = self._fetch_by_ids(conn, user, ids)
        return fuse_hits(knn, bm25, memories, query.fusion, query.k)

    @staticmethod
    def _bm25(
        conn: sqlite3.Connection,
        user_id: str,
        where: str,
        params: list[Any],
        text: str | None,
        size: int,
    ) -> list[tuple[str, float]]:
        expression = q.match_expression(text, user_id) if text else None
        if expression is None:
            return []
        sql = (
            "SELECT m.id, -bm25(memories_fts, 1.0, 0.0) AS score FROM memories_fts"
            " JOIN memories m ON m.rowid = memories_fts.rowid"
            f" WHERE memories_fts MATCH ? AND {where}"
            " ORDER BY score DESC, m.recorded_us DESC, m.id LIMIT ?"
        )
        return [(i, float(s)) for i, s in conn.execute(sql, [expression, *params, size])]

    def _knn(
        self,
        conn: sqlite3.Connection,
        user_id: str,
        where: str,
        params: list[Any],
        vector: Sequence[float] | None,
        size: int,
    ) -> list[tuple[str, float]]:
        if vector is None:
            return []
        vectors = self._vectors(conn, user_id)
        key = (where, tuple(params))
        mask = vectors.masks.get(key)
        if mask is None:
            sql = f"SELECT m.rowid FROM memories m WHERE {where} AND m.embedding IS NOT NULL"
            rows = conn.execute(sql, params).fetchall()
            mask = np.isin(vectors.rowids, np.array(rows, dtype=np.int64).reshape(-1))
            if len(vectors.masks) >= MASKS_PER_USER:
                vectors.masks.clear()
            vectors.masks[key] = mask
        return [(vectors.ids[i], s) for i, s in top_k(vectors.matrix, vector, size, mask)]

    def _vectors(self, conn: sqlite3.Connection, user_id: str) -> _UserVectors:
        """The user's cached matrix, reloaded when its version token changed."""
        row = conn.execute("SELECT token FROM user_versions WHERE user_id = ?", (user_id,))
        token = (row.fetchone() or ("",))[0]
        with self._lock:
            cached = self._cache.get(user_id)
            if cached is not None and cached.token == token:
                self._cache.move_to_end(user_id)
                return cached
        sql = (
            "SELECT m.rowid, m.id, m.embedding FROM memories m"
            " WHERE m.user_id = ? AND m.embedding IS NOT NULL ORDER BY m.rowid"
        )
        rows = conn.execute(sql, (user_id,)).fetchall()
        vectors = _UserVectors(
            token,
            np.array([r[0] for r in rows], dtype=np.int64),
            [r[1] for r in rows],
            stack([r[2] for r in rows], self.dims),
        )
        with self._lock:
            self._cache[user_id] = vectors
            self._cache.move_to_end(user_id)
            while len(self._cache) > CACHE_USERS:
                self._cache.popitem(last=False)
        return vectors

    def list(
        self,
        user_id: str,
        filter: MemoryFilter | None = None,
        limit: int = 100,
        cursor: str | None = None,
        newest_first: bool = False,
    ) -> Page:
        """A page in (recorded_at, id) order, or the reverse; the cursor is the last position."""
        user = self._user(user_id)
        check_limit(limit)
        where, params = q.where_clause(user, filter)
        after, order = ("<", "DESC") if newest_first else (">", "ASC")
        if cursor is not None:
            where += f" AND (m.recorded_us, m.id) {after} (?, ?)"
            params.extend(q.decode_cursor(cursor))
        sql = (
            f"SELECT {q.MEMORY_COLUMNS}, m.recorded_us FROM memories m WHERE {where}"
            f" ORDER BY m.recorded_us {order}, m.id {order} LIMIT ?"
        )
        with self._tx() as conn:
            rows = conn.execute(sql, [*params, limit + 1]).fetchall()
        memories = [q.memory_from_row(doc, blob) for _, doc, blob, _ in rows[:limit]]
        more = len(rows) > limit
        last = rows[limit - 1] if more else None
        return Page(memories, q.encode_cursor(last[3], memories[-1].id) if last else None)

    def supersede(
        self,
        user_id: str,
        ids: Sequence[str],
        superseded_by: str,
        valid_to: datetime,
        reason: SupersedeReason,
    ) -> int:
        """Mark the user's memories superseded by another; returns how many were matched."""
        user = self._user(user_id)
        wanted = check_ids(ids)
        why = check_supersede(superseded_by, valid_to, reason)
        now = datetime.now(UTC)
        with self._tx(write=True) as conn:
            found = self._fetch_by_ids(conn, user, wanted)
            for memory in found.values():
                changed = memory.replace(
                    status=MemoryStatus.SUPERSEDED,
                    superseded_by=superseded_by,
                    valid_to=valid_to,
                    reason=why,
                    updated_at=now,
                )
                conn.execute(_UPSERT, q.memory_row(changed, now)).fetchone()
            if found:
                self._bump(conn, [user])
        return len(found)

    def delete(self, user_id: str, ids: Sequence[str]) -> int:
        """Delete some of the user's memories; returns how many existed."""
        user = self._user(user_id)
        wanted = check_ids(ids)
        deleted = 0
        with self._tx(write=True) as conn:
            for chunk in _chunks(wanted):
                flt = MemoryFilter(ids=tuple(chunk), include_superseded=True)
                where, params = q.where_clause(user, flt)
                deleted += self._delete_where(conn, where, params)
            if deleted:
                self._bump(conn, [user])
        return deleted

    def delete_user(self, user_id: str) -> int:
        """Delete every memory of the user and its version token; safe to re-run."""
        user = self._user(user_id)
        with self._tx(write=True) as conn:
            where, params = q.where_clause(user, MemoryFilter(include_superseded=True))
            deleted = self._delete_where(conn, where, params)
            conn.execute("DELETE FROM user_versions WHERE user_id = ?", (user,))
        with self._lock:
            self._cache.pop(user, None)
        return deleted

    @staticmethod
    def _delete_where(conn: sqlite3.Connection, where: str, params: Sequence[Any]) -> int:
        rows = f"SELECT m.rowid FROM memories m WHERE {where}"
        conn.execute(f"DELETE FROM memories_fts WHERE rowid IN ({rows})", params)
        return conn.execute(f"DELETE FROM memories AS m WHERE {where}", params).rowcount

    def count(self, user_id: str, filter: MemoryFilter | None = None) -> int:
        """How many of the user's memories match the filter."""
        user = self._user(user_id)
        where, params = q.where_clause(user, filter)
        with self._tx() as conn:
            (n,) = conn.execute(f"SELECT count(*) FROM memories m WHERE {where}", params).fetchone()
        return int(n)

    @contextmanager
    def snapshot(self, user_id: str, with_embeddings: bool = False) -> Iterator[Snapshot]:
        """The user's memories from one read transaction on a connection of its own.

        Its own connection, because a streamed export may be read on from other threads.
        """
        user = self._user(user_id)
        with self._tx():  # the schema exists (or is migrated) before we read
            pass
        with store_errors(self.path):
            conn = connect(self.path)
        try:
            with store_errors(self.path):
                conn.execute("BEGIN")
                counts = snapshot_counts(conn, user)
            yield Snapshot(counts, snapshot_pages(conn, self.path, user, with_embeddings))
        finally:
            conn.close()

    def users(self, after: str | None = None, limit: int = 100) -> Sequence[UserCount]:
        """Users with stored memories after ``after``, in user-id order, with their counts."""
        check_limit(limit)
        with self._tx() as conn:
            return user_counts(conn, check_after(after), limit)

    def close(self) -> None:
        """Close every connection this store opened (in any thread)."""
        with self._lock:
            conns, self._conns = self._conns, []
            self._cache.clear()
        for conn in conns:
            conn.close()
        self._local = threading.local()
