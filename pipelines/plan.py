"""What one batch changes in the store, and applying it idempotently.

A :class:`Link` says that a new observation duplicates or contradicts an existing memory (the
model's own, or the pair check's); :func:`build_plan` turns a batch's memories and links into
its plan. An :class:`ExtractionPlan` is the output of an extractor: new memories to upsert, old
memories that the new ones supersede, and existing memories that absorb the provenance of a
duplicate. ``after_commit`` hooks run once the batch has left the buffer (the extractor drops
its cache). :func:`apply_plan` applies it in that order. Every step is idempotent (upsert by id,
supersede to the same values, set union of turn ids), so re-applying a plan after a crash gives
the same state.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from memlane.models import Memory, MergeRecord, SupersedeReason, memory_time
from memlane.store.base import MemoryStore
from pipelines.pairs import Relation

MAX_MERGES = 100  # merge records kept per memory (the newest); turn ids are all kept


@dataclass(frozen=True, slots=True)
class Link:
    """An observation that duplicates or contradicts an existing memory."""

    observation: int
    memory_id: str
    relation: Relation


@dataclass(frozen=True, slots=True)
class Supersession:
    """``old_id`` is replaced by ``new_id``, and stopped being true at ``valid_to``."""

    old_id: str
    new_id: str
    valid_to: datetime


@dataclass(frozen=True, slots=True)
class Merge:
    """An existing memory that a new observation duplicated: it gains the new provenance."""

    existing_id: str
    source_turn_ids: tuple[str, ...]
    importance: float = 0.0
    batch_id: str | None = None  # the batch whose duplicate observation is folded in


@dataclass
class ExtractionPlan:
    """The store changes of one batch."""

    memories: list[Memory] = field(default_factory=list)
    supersede: list[Supersession] = field(default_factory=list)
    merge: list[Merge] = field(default_factory=list)
    after_commit: list[Callable[[], None]] = field(default_factory=list)
    # 1-based turns of the batch to keep as raw memories whatever the configuration (the turns
    # of observations the checks refused): the user's words are never lost.
    keep_raw: list[int] = field(default_factory=list)

    @property
    def writes(self) -> int:
        """How many memories the plan writes or changes."""
        return len(self.memories) + len(self.supersede) + len(self.merge)


def merged(memory: Memory, merge: Merge, now: datetime) -> Memory | None:
    """``memory`` with the merge's turn ids and importance folded in, and a record of the
    merge for its history; None if nothing changes (e.g. the merge was applied before)."""
    turn_ids = list(dict.fromkeys([*memory.source_turn_ids, *merge.source_turn_ids]))
    importance = max(memory.importance, merge.importance)
    if turn_ids == memory.source_turn_ids and importance == memory.importance:
        return None
    recorded = any(
        r.batch_id == merge.batch_id and r.source_turn_ids == merge.source_turn_ids
        for r in memory.merges
    )
    merges = memory.merges
    if not recorded:
        record = MergeRecord(merge.batch_id, tuple(merge.source_turn_ids), now)
        merges = [*memory.merges, record][-MAX_MERGES:]
    return memory.replace(
        source_turn_ids=turn_ids, importance=importance, merges=merges, updated_at=now
    )


def build_plan(
    memories: Sequence[Memory], links: Sequence[Link], candidates: Sequence[Memory]
) -> ExtractionPlan:
    """New memories minus duplicates, supersessions for contradictions, provenance merges."""
    known = {m.id for m in candidates}
    duplicate_of: dict[int, str] = {}
    for link in links:
        if link.relation == Relation.DUPLICATE and link.memory_id in known:
            duplicate_of.setdefault(link.observation, link.memory_id)
    plan = ExtractionPlan()
    for i, memory in enumerate(memories):
        if i in duplicate_of:
            merge = Merge(
                duplicate_of[i], tuple(memory.source_turn_ids), memory.importance, memory.batch_id
            )
            plan.merge.append(merge)
        elif memory.id not in {m.id for m in plan.memories}:
            plan.memories.append(memory)
    written = {m.id for m in plan.memories}
    for link in links:
        new = memories[link.observation]
        if (
            link.relation == Relation.CONTRADICTION
            and new.id in written
            and link.memory_id in known
            and link.observation not in duplicate_of
            and link.memory_id != new.id
        ):
            plan.supersede.append(Supersession(link.memory_id, new.id, memory_time(new)))
    return plan


def apply_plan(
    store: MemoryStore,
    user_id: str,
    plan: ExtractionPlan,
    now: datetime,
    embed: Callable[[Sequence[str]], list[list[float]]] | None = None,
) -> None:
    """Upsert, then supersede, then merge provenance. Safe to re-apply.

    ``embed`` fills in a merged memory's vector if the store returned it without one.
    """
    if plan.memories:
        store.upsert(plan.memories)
    for step in plan.supersede:
        store.supersede(
            user_id, [step.old_id], step.new_id, step.valid_to, SupersedeReason.CONTRADICTION
        )
    if plan.merge:
        _apply_merges(store, user_id, plan.merge, now, embed)


def _apply_merges(
    store: MemoryStore,
    user_id: str,
    merges: Sequence[Merge],
    now: datetime,
    embed: Callable[[Sequence[str]], list[list[float]]] | None,
) -> None:
    existing = {m.id: m for m in store.get(user_id, [m.existing_id for m in merges])}
    changed: dict[str, Memory] = {}
    for merge in merges:
        current = changed.get(merge.existing_id) or existing.get(merge.existing_id)
        updated = merged(current, merge, now) if current is not None else None
        if updated is not None:
            changed[updated.id] = updated
    missing = [m for m in changed.values() if m.embedding is None]
    if missing and embed is not None:
        for memory, vector in zip(missing, embed([m.content for m in missing]), strict=True):
            memory.embedding = vector
    if changed:
        store.upsert(list(changed.values()))
