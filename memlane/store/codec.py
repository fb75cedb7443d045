"""Memory <-> plain dict, shared by the store backends. Dates are ISO-8601 strings.

``valid_from`` is written as ``recorded_at`` when a memory has none, and read that way from
documents written before the field existed, so every stored version has one.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from memlane.models import (
    Memory,
    MemoryKind,
    MemoryStatus,
    MergeRecord,
    SupersedeReason,
    TimeGranularity,
)

DATE_FIELDS = ("recorded_at", "event_time", "created_at", "updated_at", "valid_to", "valid_from")


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _parse(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def memory_to_doc(memory: Memory, with_embedding: bool = True) -> dict[str, Any]:
    """A JSON-ready dict of the memory (the Elasticsearch ``_source`` shape)."""
    doc: dict[str, Any] = {
        "id": memory.id,
        "user_id": memory.user_id,
        "kind": memory.kind.value,
        "content": memory.content,
        "keywords": list(memory.keywords),
        "subject": memory.subject,
        "time_granularity": memory.time_granularity.value if memory.time_granularity else None,
        "status": memory.status.value,
        "superseded_by": memory.superseded_by,
        "source_turn_ids": list(memory.source_turn_ids),
        "session_id": memory.session_id,
        "batch_id": memory.batch_id,
        "importance": memory.importance,
        "language": memory.language,
        "metadata": dict(memory.metadata),
        "reason": memory.reason.value if memory.reason else None,
        "merges": [merge_to_doc(r) for r in memory.merges],
    }
    for name in DATE_FIELDS:
        doc[name] = _iso(getattr(memory, name))
    doc["valid_from"] = doc["valid_from"] or doc["recorded_at"]
    if with_embedding:
        doc["embedding"] = list(memory.embedding) if memory.embedding is not None else None
    return doc


def merge_to_doc(record: MergeRecord) -> dict[str, Any]:
    """A merge record as a JSON-ready dict."""
    return {
        "batch_id": record.batch_id,
        "source_turn_ids": list(record.source_turn_ids),
        "merged_at": record.merged_at.isoformat(),
    }


def merge_from_doc(doc: dict[str, Any]) -> MergeRecord:
    """The inverse of :func:`merge_to_doc`."""
    return MergeRecord(
        batch_id=doc.get("batch_id"),
        source_turn_ids=tuple(doc.get("source_turn_ids") or ()),
        merged_at=datetime.fromisoformat(doc["merged_at"]),
    )


def memory_from_doc(doc: dict[str, Any]) -> Memory:
    """The inverse of :func:`memory_to_doc`; unknown keys are ignored."""
    granularity = doc.get("time_granularity")
    reason = doc.get("reason")
    recorded = _parse(doc["recorded_at"])
    assert recorded is not None
    return Memory(
        id=doc["id"],
        user_id=doc["user_id"],
        kind=MemoryKind(doc["kind"]),
        content=doc["content"],
        recorded_at=recorded,
        embedding=doc.get("embedding"),
        keywords=list(doc.get("keywords") or []),
        subject=doc.get("subject"),
        event_time=_parse(doc.get("event_time")),
        time_granularity=TimeGranularity(granularity) if granularity else None,
        created_at=_parse(doc.get("created_at")),
        updated_at=_parse(doc.get("updated_at")),
        status=MemoryStatus(doc.get("status") or "active"),
        superseded_by=doc.get("superseded_by"),
        valid_to=_parse(doc.get("valid_to")),
        source_turn_ids=list(doc.get("source_turn_ids") or []),
        session_id=doc.get("session_id"),
        batch_id=doc.get("batch_id"),
        importance=float(doc.get("importance", 0.5)),
        language=doc.get("language"),
        metadata=dict(doc.get("metadata") or {}),
        reason=SupersedeReason(reason) if reason else None,
        valid_from=_parse(doc.get("valid_from")) or recorded,
        merges=[merge_from_doc(r) for r in doc.get("merges") or ()],
    )
