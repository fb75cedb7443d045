"""Import ready-made memories (a dataset's observations, another system's export) directly.

``import_memories`` bypasses the turn buffer and the workers: it validates every item, embeds
the ones without a vector as *passages*, and upserts them. Ids are deterministic
(:func:`memlane.ids.custom_memory_id` of the user and the item's ``external_id``, else its
content), so importing the same file twice changes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from memlane.errors import InvalidInput
from memlane.ids import custom_memory_id
from memlane.llm.embeddings import embed_missing
from memlane.models import Memory, MemoryKind, TimeGranularity
from memlane.text.tokens import detect_language
from memlane.validation import (
    validate_content,
    validate_memories,
    validate_metadata,
    validate_timestamp,
    validate_user_id,
)

if TYPE_CHECKING:
    from memlane.services import Services

FIELDS = frozenset(
    {
        "content",
        "recorded_at",
        "event_time",
        "time_granularity",
        "kind",
        "external_id",
        "source_turn_ids",
        "session_id",
        "importance",
        "keywords",
        "subject",
        "metadata",
        "embedding",
    }
)
IMPORTABLE_KINDS = frozenset({MemoryKind.CUSTOM, MemoryKind.OBSERVATION, MemoryKind.RAW})


def _str_list(value: object, field: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise InvalidInput(field, "must be a list of strings")
    if not all(isinstance(v, str) and v for v in value):
        raise InvalidInput(field, "must be a list of non-empty strings")
    return list(value)


def build_memory(
    services: Services, user_id: str, item: Mapping[str, Any], now: datetime, field: str
) -> Memory:
    """One validated :class:`Memory` (without embedding unless given) from an import item."""
    settings = services.settings
    if not isinstance(item, Mapping):
        raise InvalidInput(field, "each memory must be a mapping")
    unknown = set(item) - FIELDS
    if unknown:
        raise InvalidInput(f"{field}.{sorted(unknown)[0]}", "unknown field")
    content = validate_content(item.get("content"), settings.limits, f"{field}.content")
    recorded = validate_timestamp(item.get("recorded_at"), settings.tz, now, f"{field}.recorded_at")
    event = item.get("event_time")
    event_time = (
        validate_timestamp(event, settings.tz, now, f"{field}.event_time") if event else None
    )
    try:
        kind = MemoryKind(item.get("kind", MemoryKind.CUSTOM.value))
        gran_raw = item.get("time_granularity")
        granularity = TimeGranularity(gran_raw) if gran_raw else None
    except ValueError as e:
        raise InvalidInput(field, str(e)) from e
    if kind not in IMPORTABLE_KINDS:
        raise InvalidInput(f"{field}.kind", "insights are written by reflection, not imported")
    if event_time is not None and granularity is None:
        granularity = TimeGranularity.DAY
    external = item.get("external_id")
    if external is not None and (not isinstance(external, str) or not external):
        raise InvalidInput(f"{field}.external_id", "must be a non-empty string")
    importance = item.get("importance", 0.5)
    if isinstance(importance, bool) or not isinstance(importance, int | float):
        raise InvalidInput(f"{field}.importance", "must be a number between 0 and 1")
    embedding = item.get("embedding")
    return Memory(
        id=custom_memory_id(user_id, content, external),
        user_id=user_id,
        kind=kind,
        content=content,
        recorded_at=recorded,
        embedding=[float(x) for x in embedding] if embedding is not None else None,
        keywords=_str_list(item.get("keywords"), f"{field}.keywords"),
        subject=item.get("subject"),
        event_time=event_time,
        time_granularity=granularity if event_time else None,
        created_at=now,
        updated_at=now,
        source_turn_ids=_str_list(item.get("source_turn_ids"), f"{field}.source_turn_ids"),
        session_id=item.get("session_id"),
        importance=float(importance),
        language=detect_language(content),
        metadata=validate_metadata(item.get("metadata"), settings.limits, f"{field}.metadata"),
    )


def import_memories(
    services: Services,
    user_id: str,
    memories: Sequence[Mapping[str, Any]],
    now: datetime | None = None,
) -> list[str]:
    """Validate, embed (as passages) and upsert memories for one user; returns their ids.

    Each item is a mapping with ``content`` (required) and optionally ``recorded_at``,
    ``event_time``, ``time_granularity``, ``kind`` (custom, observation or raw; default
    custom), ``external_id``, ``source_turn_ids``, ``session_id``, ``importance``,
    ``keywords``, ``subject``, ``metadata`` and a precomputed ``embedding``. Nothing is
    written unless every item is valid.
    """
    settings = services.settings
    uid = validate_user_id(user_id, settings.limits)
    if isinstance(memories, str | bytes) or not isinstance(memories, Sequence):
        raise InvalidInput("memories", "must be a list of memory mappings")
    moment = now or datetime.now(settings.tz)
    built = [
        build_memory(services, uid, item, moment, f"memories[{i}]")
        for i, item in enumerate(memories)
    ]
    embed_missing(services.embedder, built)
    validate_memories(built, settings.embedding.dims, settings.limits)
    if built:
        services.store.upsert(built)
    return [m.id for m in built]
