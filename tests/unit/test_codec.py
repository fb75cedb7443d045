"""Memory <-> dict conversion shared by the store backends."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

from memlane.models import (
    Memory,
    MemoryKind,
    MemoryStatus,
    MergeRecord,
    SupersedeReason,
    TimeGranularity,
)
from memlane.store.codec import DATE_FIELDS, memory_from_doc, memory_to_doc

SHANGHAI = timezone(timedelta(hours=8))


def full_memory() -> Memory:
    """A memory with every field set."""
    return Memory(
        id="o-1",
        user_id="用户",
        kind=MemoryKind.INSIGHT,
        content="用户爱好是吉他。",
        recorded_at=datetime(2024, 10, 26, 21, 26, tzinfo=SHANGHAI),
        embedding=[0.1, -0.2, 0.3],
        keywords=["吉他", "hobby"],
        subject="hobby",
        event_time=datetime(2024, 10, 21, tzinfo=SHANGHAI),
        time_granularity=TimeGranularity.DAY,
        created_at=datetime(2024, 10, 27, tzinfo=UTC),
        updated_at=datetime(2024, 10, 28, tzinfo=UTC),
        status=MemoryStatus.SUPERSEDED,
        superseded_by="o-2",
        valid_to=datetime(2024, 11, 1, tzinfo=UTC),
        reason=SupersedeReason.REFLECTION,
        valid_from=datetime(2024, 10, 27, 8, tzinfo=SHANGHAI),
        merges=[MergeRecord("b-0", ("t-0",), datetime(2024, 10, 27, 9, tzinfo=UTC))],
        source_turn_ids=["t-1", "t-2"],
        session_id="s1",
        batch_id="b-1",
        importance=0.8,
        language="zh",
        metadata={"source": "chat", "n": 3, "ok": True},
    )


def test_round_trip_preserves_every_field() -> None:
    """to_doc then from_doc gives back an equal memory, timezones included."""
    memory = full_memory()
    assert memory_from_doc(memory_to_doc(memory)) == memory


def test_round_trip_through_json() -> None:
    """The doc is JSON-ready and survives serialisation (what both backends store)."""
    memory = full_memory()
    doc = json.loads(json.dumps(memory_to_doc(memory), ensure_ascii=False))
    assert memory_from_doc(doc) == memory


def test_minimal_memory_round_trips_with_defaults() -> None:
    """Optional fields stay None or empty; valid_from defaults to recorded_at."""
    memory = Memory("c-1", "u1", MemoryKind.CUSTOM, "hi", datetime(2024, 1, 1, tzinfo=UTC))
    back = memory_from_doc(memory_to_doc(memory))
    assert back == memory.replace(valid_from=memory.recorded_at)
    assert back.event_time is None
    assert back.status is MemoryStatus.ACTIVE
    assert back.reason is None and back.merges == []


def test_a_document_from_before_versions_reads_with_defaults() -> None:
    """A stored doc without reason, valid_from or merges reads as valid from recorded_at."""
    doc = memory_to_doc(full_memory())
    for name in ("reason", "valid_from", "merges"):
        del doc[name]
    back = memory_from_doc(doc)
    assert back.valid_from == back.recorded_at
    assert back.reason is None and back.merges == []


def test_dates_are_iso_strings_and_enums_are_values() -> None:
    """The doc holds plain strings, never datetime or enum objects."""
    doc = memory_to_doc(full_memory())
    for name in DATE_FIELDS:
        assert isinstance(doc[name], str)
    assert doc["recorded_at"] == "2024-10-26T21:26:00+08:00"
    assert doc["kind"] == "insight"
    assert doc["time_granularity"] == "day"


def test_without_embedding_leaves_it_out() -> None:
    """with_embedding=False drops the vector; reading it back gives None."""
    doc = memory_to_doc(full_memory(), with_embedding=False)
    assert "embedding" not in doc
    assert memory_from_doc(doc).embedding is None


def test_unknown_keys_are_ignored_and_missing_status_is_active() -> None:
    """Reading tolerates extra keys and older docs without a status."""
    doc = memory_to_doc(full_memory())
    doc["extra"] = "x"
    del doc["status"]
    assert memory_from_doc(doc).status is MemoryStatus.ACTIVE
