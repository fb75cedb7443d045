"""Maintenance's pure core: similar pairs, duplicate clusters, merges, forgetting, covered raw.

Pairs come from the memories' stored embeddings (cosine, computed in blocks so a large user
never needs an n x n matrix in memory) and are judged by :mod:`pipelines.pairs` under
:data:`PAIR_RULES`:

- memories of the same kind whose subjects differ (both named) are never paired;
- cosine >= ``duplicate`` (``maintenance.dedup_threshold``): a duplicate, no LLM needed;
- ``ambiguous`` <= cosine < ``duplicate``, or the same subject and cosine >= ``subject_floor``
  (how "lives in Beijing" meets "moved to Shanghai"): ambiguous, for the LLM, which answers
  duplicate, contradiction or distinct per pair.

Duplicates form clusters (union-find); each cluster keeps one memory, which takes the union of
the cluster's provenance, and the others are superseded by it. A contradiction keeps the newer
memory active and supersedes the older, ``valid_to`` = the newer one's time.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

import numpy as np

from memlane.config_sections import MaintenanceSettings
from memlane.models import (
    NO_SUCCESSOR,
    Memory,
    MemoryKind,
    MemoryStatus,
    SupersedeReason,
    memory_time,
)
from pipelines.pairs import Pair, PairRules, Verdict, judge, subjects

# e5-small puts unrelated short zh sentences at 0.91-0.93 and paraphrases at 0.95-0.97, so only
# near-identical pairs merge without asking (the duplicate bar is a setting, 0.97 by default).
PAIR_RULES = PairRules(duplicate=0.97, ambiguous=0.85, subject_floor=0.80)
ARCHIVED = NO_SUCCESSOR  # superseded_by of a forgotten memory: superseded by nothing
FORGETTABLE = (MemoryKind.OBSERVATION, MemoryKind.RAW)
BLOCK = 512
MAX_KEYWORDS = 8


@dataclass(frozen=True, slots=True)
class SweepOptions:
    """The pair rules and the LLM budget of one maintenance sweep, and the forgetting bar."""

    rules: PairRules = PAIR_RULES
    pairs_per_call: int = 20
    max_llm_calls: int = 2
    forget_below: float = 0.1

    @classmethod
    def of(cls, settings: MaintenanceSettings) -> SweepOptions:
        """The defaults, with the configured duplicate bar (``maintenance.dedup_threshold``)."""
        return cls(rules=replace(PAIR_RULES, duplicate=settings.dedup_threshold))


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
    """The pair with the one said first as ``old``."""
    if _order(memories[a]) <= _order(memories[b]):
        return Pair(new=b, old=a, cosine=cosine)
    return Pair(new=a, old=b, cosine=cosine)


def classify_pairs(
    memories: Sequence[Memory], options: SweepOptions
) -> tuple[list[Pair], list[Pair]]:
    """Automatic duplicates and ambiguous pairs (best first, within the LLM budget)."""
    rules = options.rules
    auto: list[Pair] = []
    ambiguous: list[Pair] = []
    for pair in similar_pairs(memories, rules.floor):
        subject = subjects(memories[pair.old], memories[pair.new])
        verdict = judge(pair.cosine, subject, rules)
        if verdict is Verdict.DUPLICATE:
            auto.append(pair)
        elif verdict is Verdict.ASK:
            ambiguous.append(pair)
    ambiguous.sort(key=lambda p: -p.cosine)
    return auto, ambiguous[: options.pairs_per_call * options.max_llm_calls]


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
    for group in clusters(len(memories), [(p.old, p.new) for p in duplicates]):
        merged, others = merge_cluster([memories[i] for i in group], now)
        plan.keep.append(merged)
        for other in others:
            kept_as[other.id] = merged.id
            plan.supersede.append((other.id, merged.id, now, SupersedeReason.DUPLICATE))
            plan.merged += 1
    gone: set[str] = set(kept_as)
    for pair in contradictions:
        old, new = memories[pair.old], memories[pair.new]
        old_id, new_id = kept_as.get(old.id, old.id), kept_as.get(new.id, new.id)
        if old_id == new_id or old_id in gone:
            continue
        gone.add(old_id)
        plan.supersede.append((old_id, new_id, memory_time(new), SupersedeReason.CONTRADICTION))
    return plan


def is_sweep_hour(now: datetime, cron_hour: int) -> bool:
    """Whether the hourly housekeeping at ``now`` (local time) also fans out the nightly sweep."""
    return now.hour == cron_hour


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
