"""The data model: turns coming in, memories stored, and search results going out."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any


class Role(StrEnum):
    """Who spoke a turn."""

    USER = "user"
    ASSISTANT = "assistant"
    SYSTEM = "system"


class MemoryKind(StrEnum):
    """What a memory is."""

    OBSERVATION = "observation"
    INSIGHT = "insight"
    RAW = "raw"
    CUSTOM = "custom"


class MemoryStatus(StrEnum):
    """Active memories are retrieved; superseded and deleted ones are kept as history only."""

    ACTIVE = "active"
    SUPERSEDED = "superseded"
    DELETED = "deleted"  # soft-deleted by ``delete_memory``: never retrieved, kept in history


class SupersedeReason(StrEnum):
    """Why a version stopped being active (``Memory.reason``)."""

    EDITED = "edited"  # ``update_memory`` wrote a new version
    CONTRADICTION = "contradiction"  # a newer fact contradicts it (consolidation, maintenance)
    DUPLICATE = "duplicate"  # merged into a near-identical memory by maintenance
    REFLECTION = "reflection"  # a newer insight version of the same subject
    EXPIRED = "expired"  # a raw turn covered by an observation (maintenance expiry)
    ARCHIVED = "archived"  # forgotten by maintenance's decay (superseded by nothing)
    DELETED = "deleted"  # ``delete_memory`` of an active memory


# ``superseded_by`` of a memory superseded by nothing (archived by maintenance): not an id.
NO_SUCCESSOR = "archived"


class TimeGranularity(StrEnum):
    """How precise an event time is."""

    YEAR = "year"
    MONTH = "month"
    WEEK = "week"
    DAY = "day"
    MINUTE = "minute"


class TimeField(StrEnum):
    """Which date a time-range filter applies to."""

    EVENT_TIME = "event_time"
    RECORDED_AT = "recorded_at"


@dataclass(frozen=True, slots=True)
class Turn:
    """One validated chat turn, as buffered in Redis."""

    user_id: str
    role: Role
    content: str
    ts: datetime
    turn_id: str
    session_id: str | None = None
    name: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class MergeRecord:
    """Provenance a memory absorbed from a duplicate observation of a later batch.

    Consolidation does not store a duplicate: it folds the duplicate's turn ids into the
    existing memory and records where they came from here, so history shows the merge.
    """

    batch_id: str | None
    source_turn_ids: tuple[str, ...]
    merged_at: datetime


@dataclass(slots=True)
class Memory:
    """One stored memory. ``id`` is deterministic so that replays upsert, never duplicate."""

    id: str
    user_id: str
    kind: MemoryKind
    content: str
    recorded_at: datetime
    embedding: list[float] | None = None
    keywords: list[str] = field(default_factory=list)
    subject: str | None = None
    event_time: datetime | None = None
    time_granularity: TimeGranularity | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    status: MemoryStatus = MemoryStatus.ACTIVE
    superseded_by: str | None = None
    valid_to: datetime | None = None
    # Why it stopped being active (None while active); see SupersedeReason.
    reason: SupersedeReason | None = None
    # When this version became the current one. Stores write ``recorded_at`` when it is None
    # (a fact is true from when it was said); an edit's new version starts at the edit.
    valid_from: datetime | None = None
    merges: list[MergeRecord] = field(default_factory=list)
    source_turn_ids: list[str] = field(default_factory=list)
    session_id: str | None = None
    batch_id: str | None = None
    importance: float = 0.5
    language: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    def replace(self, **changes: Any) -> Memory:
        """A copy with some fields changed."""
        return dataclasses.replace(self, **changes)


def memory_time(memory: Memory) -> datetime:
    """When the memory happened: its event time, else when it was said."""
    return memory.event_time or memory.recorded_at


@dataclass(frozen=True, slots=True)
class TimeWindow:
    """A half-open ``[start, end)`` range on one of a memory's dates."""

    start: datetime | None = None
    end: datetime | None = None
    field: TimeField = TimeField.EVENT_TIME


@dataclass(frozen=True, slots=True)
class MemoryFilter:
    """Filters shared by ``search``, ``list`` and ``count``. ``user_id`` is always applied.

    Status: ``statuses`` when given; otherwise active only, or every status with
    ``include_superseded``. ``superseded_by`` selects the predecessors of some memories.
    """

    kinds: tuple[MemoryKind, ...] | None = None
    include_superseded: bool = False
    statuses: tuple[MemoryStatus, ...] | None = None
    superseded_by: tuple[str, ...] | None = None
    time: TimeWindow | None = None
    session_id: str | None = None
    metadata: tuple[tuple[str, str], ...] = ()
    ids: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True)
class SearchHit:
    """One fused search result with the component scores that explain its rank."""

    memory: Memory
    score: float
    knn_rank: int | None = None
    bm25_rank: int | None = None
    knn_score: float | None = None
    bm25_score: float | None = None


@dataclass(frozen=True, slots=True)
class Page:
    """One page of ``list``; pass ``cursor`` back to get the next page (None = done)."""

    memories: list[Memory]
    cursor: str | None


@dataclass(frozen=True, slots=True)
class MemoryPage:
    """One page of ``list_memories``, newest first; pass ``cursor`` back for the next page."""

    memories: list[Memory]
    cursor: str | None


@dataclass(frozen=True, slots=True)
class MemoryVersion:
    """One version in a memory's history (``memory_history``), without its embedding.

    ``supersedes`` are the ids of the versions this one replaced or absorbed (its
    predecessors); ``superseded_by`` is its successor. ``merges`` is provenance absorbed from
    duplicate observations of later batches.
    """

    id: str
    kind: MemoryKind
    content: str
    status: MemoryStatus
    reason: SupersedeReason | None
    valid_from: datetime | None
    valid_to: datetime | None
    superseded_by: str | None
    supersedes: tuple[str, ...]
    source_turn_ids: tuple[str, ...]
    batch_id: str | None
    session_id: str | None
    merges: tuple[MergeRecord, ...]
    recorded_at: datetime
    event_time: datetime | None
    created_at: datetime | None
    updated_at: datetime | None
    subject: str | None
    metadata: dict[str, Any]

    @classmethod
    def of(cls, memory: Memory, supersedes: tuple[str, ...] = ()) -> MemoryVersion:
        """The version view of a stored memory."""
        return cls(
            id=memory.id,
            kind=memory.kind,
            content=memory.content,
            status=memory.status,
            reason=memory.reason,
            valid_from=memory.valid_from,
            valid_to=memory.valid_to,
            superseded_by=memory.superseded_by,
            supersedes=supersedes,
            source_turn_ids=tuple(memory.source_turn_ids),
            batch_id=memory.batch_id,
            session_id=memory.session_id,
            merges=tuple(memory.merges),
            recorded_at=memory.recorded_at,
            event_time=memory.event_time,
            created_at=memory.created_at,
            updated_at=memory.updated_at,
            subject=memory.subject,
            metadata=dict(memory.metadata),
        )


@dataclass(frozen=True, slots=True)
class UserSummary:
    """What an operator sees of one user (``list_users``).

    ``memories`` counts active memories and ``stored`` every stored version; ``pending`` is
    the turns waiting in the buffer; ``last_activity`` the user's latest push (None if the
    user only has imported memories, or Redis lost it); ``dead_letters`` the user's parked
    batches.
    """

    user_id: str
    memories: int
    stored: int
    pending: int
    last_activity: datetime | None
    dead_letters: int = 0


@dataclass(frozen=True, slots=True)
class UserPage:
    """One page of ``list_users`` in user-id order; pass ``cursor`` back for the next page."""

    users: list[UserSummary]
    cursor: str | None
