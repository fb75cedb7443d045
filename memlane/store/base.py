"""The :class:`MemoryStore` protocol and the search query both backends accept."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol, runtime_checkable

from memlane.errors import InvalidInput
from memlane.models import Memory, MemoryFilter, Page, SearchHit
from memlane.store.fusion import Fusion

MAX_PAGE = 10_000  # the largest ``list`` page; Elasticsearch's default result window
LIST_ALL_PAGE = 1000  # the page size of list_all


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


def check_limit(limit: int) -> None:
    """A ``list`` page size between 1 and :data:`MAX_PAGE`."""
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidInput("limit", f"must be between 1 and {MAX_PAGE}")


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
    ) -> Page:
        """One page of the user's memories in a stable order; follow ``cursor``."""

    def supersede(
        self, user_id: str, ids: Sequence[str], superseded_by: str, valid_to: datetime
    ) -> int:
        """Mark memories superseded (kept as history). Returns how many changed."""

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
