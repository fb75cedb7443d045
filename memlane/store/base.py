"""The :class:`MemoryStore` protocol and the search query both backends accept."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol, runtime_checkable

from memlane.errors import InvalidInput
from memlane.models import Memory, MemoryFilter, Page, SearchHit, SupersedeReason
from memlane.store.fusion import Fusion

MAX_PAGE = 10_000  # the largest ``list`` page; Elasticsearch's default result window
LIST_ALL_PAGE = 1000  # the page size of list_all
SNAPSHOT_PAGE = 500  # memories per page of a snapshot (export): bounded memory at any size


@dataclass(frozen=True, slots=True)
class SearchQuery:
    """A hybrid query: BM25 on ``text`` and kNN on ``vector``, fused by ``fusion``.

    Either part may be None. ``candidates`` is how many hits each component contributes
    before fusion; the same ``filter`` (always with the user id) applies to both. Callers that
    rank for retrieval pass the configured fusion (:meth:`Fusion.of`); hit scores are
    normalised (:mod:`memlane.store.fusion`).
    """

    text: str | None = None
    vector: Sequence[float] | None = None
    k: int = 10
    filter: MemoryFilter = field(default_factory=MemoryFilter)
    candidates: int = 50
    fusion: Fusion = field(default_factory=Fusion)
    # Whether hits must carry their embeddings (a backend may include them anyway). Ranking
    # does not need them; leaving 384 floats per hit out of Elasticsearch responses cuts its
    # search latency about threefold. Near-duplicate checks and MMR ask for them.
    with_vectors: bool = False


def check_query(query: SearchQuery, dims: int) -> None:
    """Refuse a query no backend can run, naming the field (shared by every backend)."""
    if query.k < 1 or query.candidates < 1:
        raise InvalidInput("query.k", "k and candidates must be >= 1")
    if query.vector is None:
        return
    if len(query.vector) != dims:
        raise InvalidInput("query.vector", f"has {len(query.vector)} dims, need {dims}")
    if not all(abs(float(x)) < float("inf") for x in query.vector):
        raise InvalidInput("query.vector", "must be finite")


def check_ids(ids: Sequence[str], field: str = "ids") -> list[str]:
    """A list of id strings, de-duplicated in order (a bare string is refused)."""
    if isinstance(ids, str) or not all(isinstance(i, str) for i in ids):
        raise InvalidInput(field, "must be a list of strings")
    return list(dict.fromkeys(ids))


def check_supersede(superseded_by: object, valid_to: object, reason: object) -> SupersedeReason:
    """The arguments of ``supersede``: a successor id, an aware time and a known reason."""
    if not isinstance(superseded_by, str) or not superseded_by:
        raise InvalidInput("superseded_by", "must be a non-empty memory id")
    if not isinstance(valid_to, datetime) or valid_to.tzinfo is None:
        raise InvalidInput("valid_to", "must be a timezone-aware datetime")
    try:
        return SupersedeReason(str(reason))
    except ValueError as e:
        raise InvalidInput("reason", f"unknown supersede reason {reason!r}") from e


def check_limit(limit: int) -> None:
    """A ``list`` page size between 1 and :data:`MAX_PAGE`."""
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidInput("limit", f"must be between 1 and {MAX_PAGE}")


@dataclass(frozen=True, slots=True)
class UserCount:
    """How many memories one user has: active ones, and every stored version."""

    user_id: str
    active: int
    total: int


@dataclass
class Snapshot:
    """Every memory of one user as of one moment, in (recorded_at, id) order, in pages.

    ``counts`` maps each status to its number of memories in the same moment (a PIT on
    Elasticsearch, one read transaction on SQLite), so they match what ``pages`` yields.
    """

    counts: dict[str, int]
    pages: Iterator[list[Memory]]


def check_after(after: object) -> str | None:
    """None or a user id string to page users after."""
    if after is not None and not isinstance(after, str):
        raise InvalidInput("cursor", "not a cursor returned by list_users()")
    return after


@runtime_checkable
class MemoryStore(Protocol):
    """Where memories live. Every method is scoped to exactly one ``user_id``."""

    def ensure_schema(self) -> None:
        """Create indices/tables if missing; safe to call repeatedly."""

    def upsert(self, memories: Sequence[Memory]) -> int:
        """Insert or replace memories by id (bulk). Validates all before writing any."""

    def get(self, user_id: str, ids: Sequence[str]) -> list[Memory]:
        """The user's memories with these ids, in the order given; missing ids are skipped."""

    def search(self, user_id: str, query: SearchQuery) -> list[SearchHit]:
        """Hybrid search over the user's memories, best first."""

    def list(
        self,
        user_id: str,
        filter: MemoryFilter | None = None,
        limit: int = 100,
        cursor: str | None = None,
        newest_first: bool = False,
    ) -> Page:
        """One page of the user's memories in (recorded_at, id) order (or the reverse with
        ``newest_first``); follow ``cursor`` with the same order."""

    def supersede(
        self,
        user_id: str,
        ids: Sequence[str],
        superseded_by: str,
        valid_to: datetime,
        reason: SupersedeReason,
    ) -> int:
        """Mark memories superseded for ``reason`` (kept as history). Returns how many changed."""

    def snapshot(
        self, user_id: str, with_embeddings: bool = False
    ) -> AbstractContextManager[Snapshot]:
        """Every memory of the user, streamed from one consistent moment (for export)."""

    def users(self, after: str | None = None, limit: int = 100) -> Sequence[UserCount]:
        """Users with stored memories, in user-id order after ``after`` (for operators only:
        the one method not scoped to a user)."""

    def delete(self, user_id: str, ids: Sequence[str]) -> int:
        """Delete some of the user's memories. Returns how many were deleted."""

    def delete_user(self, user_id: str) -> int:
        """Delete every memory of the user; safe to re-run. Returns how many were deleted."""

    def count(self, user_id: str, filter: MemoryFilter | None = None) -> int:
        """How many of the user's memories match the filter."""

    def close(self) -> None:
        """Release connections."""


def list_all(store: MemoryStore, user_id: str, flt: MemoryFilter) -> list[Memory]:
    """Every memory of the user matching ``flt``, following the list cursor page by page."""
    found: list[Memory] = []
    cursor = None
    while True:
        page = store.list(user_id, flt, limit=LIST_ALL_PAGE, cursor=cursor)
        found.extend(page.memories)
        cursor = page.cursor
        if cursor is None:
            return found
