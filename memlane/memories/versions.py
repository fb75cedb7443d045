"""Memory versions, pure: what an edit writes, what a soft delete leaves, how history reads.

A memory is never overwritten in place by the API:

- an edit writes a *new version* (a new id, see :func:`memlane.ids.edited_memory_id`) valid
  from the edit, and the old one is superseded by it with reason ``edited``, valid until the
  edit;
- a soft delete keeps the version with status ``deleted`` (reason ``deleted`` if it was
  active; a superseded version keeps the reason it was superseded for), valid until the delete;
- history is the connected chain of versions linked by ``superseded_by``: successors, and
  predecessors (every version whose ``superseded_by`` names one in the chain), so duplicates
  merged into a memory and the raw turns an observation expired appear too.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime

from memlane.ids import edited_memory_id
from memlane.memories.params import EditParams
from memlane.models import (
    Memory,
    MemoryStatus,
    MemoryVersion,
    SupersedeReason,
    TimeGranularity,
)
from memlane.text.tokens import detect_language


def edited_version(old: Memory, edit: EditParams, now: datetime, vector: list[float]) -> Memory:
    """The new version of ``old`` with the edit applied, embedded with ``vector``.

    Provenance (turn ids, batch, session, merges), kind, subject, importance and
    ``recorded_at`` (when it was said) carry over. Keywords described the old text, so a new
    content drops them. A new event time keeps the old granularity, or takes ``day``, as
    imported memories do. Metadata, when given, replaces the old metadata.
    """
    content = edit.content if edit.content is not None else old.content
    metadata = dict(edit.metadata) if edit.metadata is not None else dict(old.metadata)
    event_time = edit.event_time if edit.event_time is not None else old.event_time
    granularity = old.time_granularity
    if edit.event_time is not None and granularity is None:
        granularity = TimeGranularity.DAY
    meta_json = json.dumps(metadata, sort_keys=True, ensure_ascii=False)
    return old.replace(
        id=edited_memory_id(old.user_id, old.id, content, meta_json, event_time),
        content=content,
        metadata=metadata,
        event_time=event_time,
        time_granularity=granularity if event_time is not None else None,
        keywords=list(old.keywords) if content == old.content else [],
        language=detect_language(content),
        embedding=list(vector),
        status=MemoryStatus.ACTIVE,
        superseded_by=None,
        reason=None,
        valid_to=None,
        valid_from=now,
        created_at=now,
        updated_at=now,
    )


def soft_deleted(memory: Memory, now: datetime) -> Memory | None:
    """The memory marked deleted (kept as history); None if it already is."""
    if memory.status is MemoryStatus.DELETED:
        return None
    was_active = memory.status is MemoryStatus.ACTIVE
    return memory.replace(
        status=MemoryStatus.DELETED,
        reason=SupersedeReason.DELETED if was_active else memory.reason,
        valid_to=now if was_active or memory.valid_to is None else memory.valid_to,
        updated_at=now,
    )


def history_view(chain: Sequence[Memory]) -> list[MemoryVersion]:
    """The versions of a chain, oldest first, each naming the versions it superseded.

    Oldest means: by ``valid_from`` (when the version became current), then creation, then id.
    """
    ids = {m.id for m in chain}
    predecessors: dict[str, list[str]] = defaultdict(list)
    for memory in chain:
        if memory.superseded_by in ids:
            predecessors[memory.superseded_by].append(memory.id)
    ordered = sorted(
        chain,
        key=lambda m: (m.valid_from or m.recorded_at, m.created_at or m.recorded_at, m.id),
    )
    return [MemoryVersion.of(m, tuple(sorted(predecessors[m.id]))) for m in ordered]
