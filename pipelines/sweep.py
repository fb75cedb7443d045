"""Maintenance's pure core: similar pairs, duplicate clusters, merges, forgetting, covered raw.

Pairs come from the memories' stored embeddings (cosine, computed in blocks so a large user
never needs an n x n matrix in memory):

- memories of the same kind whose subjects differ (both named) are never paired;
- cosine >= ``dedup_threshold``: a duplicate, no LLM needed;
- ``ambiguous_floor`` <= cosine < ``dedup_threshold``, or the same subject and cosine >=
  ``subject_floor`` (how "lives in Beijing" meets "moved to Shanghai"): ambiguous, for the LLM,
  which answers duplicate, contradiction or distinct per pair.

Duplicates form clusters (union-find); each cluster keeps one memory, which takes the union of
the cluster's provenance, and the others are superseded by it. A contradiction keeps the newer
memory active and supersedes the older, ``valid_to`` = the newer one's time.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np

from memlane.errors import LLMBadOutput
from memlane.logging import get_logger
from memlane.models import NO_SUCCESSOR, Memory, MemoryKind, MemoryStatus, SupersedeReason
from memlane.ranking import memory_time

log = get_logger(__name__)

RELATIONS = ("duplicate", "contradiction", "distinct")
ARCHIVED = NO_SUCCESSOR  # superseded_by of a forgotten memory: superseded by nothing
FORGETTABLE = (MemoryKind.OBSERVATION, MemoryKind.RAW)
BLOCK = 512
MAX_KEYWORDS = 8


@dataclass(frozen=True, slots=True)
class SweepOptions:
    """Thresholds and the LLM budget of one maintenance sweep."""

    dedup_threshold: float = 0.97
    ambiguous_floor: float = 0.85
    subject_floor: float = 0.80
    pairs_per_call: int = 20
    max_llm_calls: int = 2
    forget_below: float = 0.1


@dataclass(frozen=True, slots=True)
class Pair:
    """Two memories (positions in the sweep's list), the older first."""

    older: int
    newer: int
    cosine: float


@dataclass
class SweepPlan:
    """What one sweep changes, computed before anything is written."""

    keep: list[Memory] = field(default_factory=list)  # cluster keepers with merged provenance
    # (old id, superseded by, valid_to, why)
    supersede: list[tuple[str, str, datetime, SupersedeReason]] = field(default_factory=list)
    archive: list[Memory] = field(default_factory=list)  # forgotten, already marked
    merged: int = 0  # how many of ``supersede`` are duplicates absorbed by a keeper

    @property
    def changes(self) -> int:
        """How many memories the plan writes."""
        return len(self.keep) + len(self.supersede) + len(self.archive)


def _order(memory: Memory) -> tuple[datetime, str]:
    """Older first by when it was said: the later statement is the newer fact."""
    return (memory.recorded_at, memory.id)


def subjects_compatible(a: Memory, b: Memory) -> bool:
    """False only when both memories name a subject and they differ."""
    return not (a.subject and b.subject and a.subject != b.subject)


def similar_pairs(memories: Sequence[Memory], floor: float) -> Iterator[Pair]:
    """Every pair of same-kind memories with embeddings whose cosine is >= ``floor``."""
    idx = [i for i, m in enumerate(memories) if m.embedding is not None]
    if len(idx) < 2:
        return
    mat = np.asarray([memories[i].embedding for i in idx], dtype=np.float32)
    mat /= np.linalg.norm(mat, axis=1, keepdims=True) + 1e-12
    for start in range(0, len(idx), BLOCK):
        block = mat[start : start + BLOCK] @ mat.T
        rows, cols = np.nonzero(block >= floor)
        for r, c in zip(rows.tolist(), cols.tolist(), strict=True):
            a, b = idx[start + r], idx[c]
            if a < b and memories[a].kind == memories[b].kind:
                yield _pair(memories, a, b, float(block[r, c]))


def _pair(memories: Sequence[Memory], a: int, b: int, cosine: float) -> Pair:
    if _order(memories[a]) <= _order(memories[b]):
        return Pair(a, b, cosine)
    return Pair(b, a, cosine)


def classify_pairs(
    memories: Sequence[Memory], options: SweepOptions
) -> tuple[list[Pair], list[Pair]]:
    """Automatic duplicates and ambiguous pairs (best first, within the LLM budget)."""
    floor = min(options.ambiguous_floor, options.subject_floor)
    auto: list[Pair] = []
    ambiguous: list[Pair] = []
    for pair in similar_pairs(memories, floor):
        a, b = memories[pair.older], memories[pair.newer]
        if not subjects_compatible(a, b):
            continue
        same_subject = bool(a.subject) and a.subject == b.subject
        if pair.cosine >= options.dedup_threshold:
            auto.append(pair)
        elif pair.cosine >= options.ambiguous_floor or (
            same_subject and pair.cosine >= options.subject_floor
        ):
            ambiguous.append(pair)
    ambiguous.sort(key=lambda p: -p.cosine)
    return auto, ambiguous[: options.pairs_per_call * options.max_llm_calls]


def parse_decisions(raw: object, pairs: Sequence[Pair]) -> dict[int, str]:
    """Pair number -> relation from the model's answer; pairs left out count as distinct."""
    if not isinstance(raw, dict) or not isinstance(raw.get("decisions"), list):
        raise LLMBadOutput("maintenance.decisions: missing or not a list")
    found: dict[int, str] = {}
    for i, item in enumerate(raw["decisions"]):
        if not isinstance(item, dict):
            raise LLMBadOutput(f"maintenance.decisions[{i}]: expected an object")
        number, relation = item.get("pair"), str(item.get("relation", "")).lower()
        if isinstance(number, bool) or not isinstance(number, int):
            continue
        if 0 <= number < len(pairs) and relation in RELATIONS:
            found[number] = relation
        else:
            log.warning("maintenance_decision_ignored", pair=str(number)[:20], relation=relation)
    return found


def clusters(count: int, edges: Sequence[tuple[int, int]]) -> list[list[int]]:
    """Connected groups (of two or more) of ``count`` nodes joined by ``edges``."""
    parent = list(range(count))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for a, b in edges:
        ra, rb = root(a), root(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    groups: dict[int, list[int]] = {}
    for i in range(count):
        groups.setdefault(root(i), []).append(i)
    return [g for g in groups.values() if len(g) > 1]


def keeper(members: Sequence[Memory]) -> Memory:
    """The memory a duplicate cluster keeps: the most important, then the earliest."""
    return min(members, key=lambda m: (-m.importance, m.recorded_at, m.id))


def merge_cluster(members: Sequence[Memory], now: datetime) -> tuple[Memory, list[Memory]]:
    """The keeper with the union of the cluster's provenance, and the memories it absorbs."""
    kept = keeper(members)
    others = [m for m in members if m.id != kept.id]
    ordered = sorted(members, key=_order)
    turns = list(dict.fromkeys(t for m in ordered for t in m.source_turn_ids))
    words = list(dict.fromkeys(w for m in [kept, *others] for w in m.keywords))[:MAX_KEYWORDS]
    merged = kept.replace(
        source_turn_ids=turns,
        keywords=words,
        importance=max(m.importance for m in members),
        updated_at=now,
        metadata={**kept.metadata, "merged": int(kept.metadata.get("merged", 0)) + len(others)},
    )
    return merged, others


def plan_sweep(
    memories: Sequence[Memory],
    duplicates: Sequence[Pair],
    contradictions: Sequence[Pair],
    now: datetime,
) -> SweepPlan:
    """Merges of the duplicate clusters, then contradictions resolved between keepers."""
    plan = SweepPlan()
    kept_as: dict[str, str] = {}
    for group in clusters(len(memories), [(p.older, p.newer) for p in duplicates]):
        merged, others = merge_cluster([memories[i] for i in group], now)
        plan.keep.append(merged)
        for other in others:
            kept_as[other.id] = merged.id
            plan.supersede.append((other.id, merged.id, now, SupersedeReason.DUPLICATE))
            plan.merged += 1
    gone: set[str] = set(kept_as)
    for pair in contradictions:
        old, new = memories[pair.older], memories[pair.newer]
        old_id, new_id = kept_as.get(old.id, old.id), kept_as.get(new.id, new.id)
        if old_id == new_id or old_id in gone:
            continue
        gone.add(old_id)
        plan.supersede.append((old_id, new_id, memory_time(new), SupersedeReason.CONTRADICTION))
    return plan


def forgetting_score(memory: Memory, now: datetime, half_life_days: float) -> float:
    """Importance times exponential recency decay, in [0, 1]."""
    age_days = max(0.0, (now - memory.recorded_at).total_seconds() / 86400)
    return memory.importance * math.exp(-math.log(2) * age_days / half_life_days)


def to_forget(
    memories: Sequence[Memory], now: datetime, max_age_days: float, options: SweepOptions
) -> list[Memory]:
    """Observations and raw turns older than ``max_age_days`` that scored under the bar.

    The decay's half-life is ``max_age_days`` itself: at that age an importance-0.2 memory
    scores 0.1, a core fact (1.0) 0.5, so trivia goes first and core facts stay for years.
    """
    return [
        m
        for m in memories
        if m.kind in FORGETTABLE
        and m.status is MemoryStatus.ACTIVE
        and (now - m.recorded_at).total_seconds() / 86400 > max_age_days
        and forgetting_score(m, now, max_age_days) < options.forget_below
    ]


def archived(memory: Memory, now: datetime) -> Memory:
    """The memory archived: superseded by nothing, kept as history with ``archived=true``."""
    return memory.replace(
        status=MemoryStatus.SUPERSEDED,
        superseded_by=ARCHIVED,
        valid_to=now,
        reason=SupersedeReason.ARCHIVED,
        updated_at=now,
        metadata={**memory.metadata, "archived": True},
    )


def covered_raw(memories: Sequence[Memory]) -> list[tuple[str, str]]:
    """(raw id, observation id) for raw memories whose every turn an observation covers."""
    covering: dict[str, str] = {}
    for memory in sorted(memories, key=_order):
        if memory.kind is MemoryKind.OBSERVATION:
            for turn_id in memory.source_turn_ids:
                covering.setdefault(turn_id, memory.id)
    out = []
    for memory in memories:
        turns = memory.source_turn_ids
        if memory.kind is MemoryKind.RAW and turns and all(t in covering for t in turns):
            out.append((memory.id, covering[turns[0]]))
    return out
