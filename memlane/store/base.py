"""The :class:`MemoryStore` protocol and the search query both backends accept."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol, runtime_checkable

from memlane.models import Memory, MemoryFilter, Page, SearchHit


@dataclass(frozen=True, slots=True)
class SearchQuery:
    """A hybrid query: BM25 on ``text`` and kNN on ``vector``, fused with RRF.

    Either part may be None. ``candidates`` is how many hits each component contributes
    before fusion; the same ``filter`` (always with the user id) applies to both.
    """

    text: str | None = None
    vector: Sequence[float] | None = None
    k: int = 10
    filter: MemoryFilter = field(default_factory=MemoryFilter)
    candidates: int = 50
    knn_weight: float = 1.0
    bm25_weight: float = 1.0
    rrf_k: int = 60


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
