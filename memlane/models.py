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
    """Active memories are retrieved; superseded ones are kept as history."""

    ACTIVE = "active"
    SUPERSEDED = "superseded"


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
    """Filters shared by ``search``, ``list`` and ``count``. ``user_id`` is always applied."""

    kinds: tuple[MemoryKind, ...] | None = None
    include_superseded: bool = False
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
