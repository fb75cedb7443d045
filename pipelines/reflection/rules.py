"""Reflection's pure core: read the model's insights, derive insight versions, plan the writes.

An insight is one memory per (user, subject). Its *evidence* is the set of active observations
tagged with that subject (``metadata["insight_subject"]``); its id derives from the subject and
the evidence set (:func:`memlane.ids.insight_id`), so the same evidence always gives the same id
and a retried or repeated reflection writes nothing new. When the evidence of a subject grows,
the new version gets a new id and the old version is superseded by it (history kept).

The shape the reflection prompt asks for::

    {"insights": [{"subject": "hobby", "content": "...", "observations": [1, 3], "keywords": []}]}

Observation numbers are 1-based positions in the request, never memory ids, so the model can
only point at observations it was shown.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from memlane.errors import LLMBadOutput
from memlane.ids import insight_id
from memlane.logging import get_logger
from memlane.models import Memory, MemoryKind
from memlane.text.tokens import detect_language

log = get_logger(__name__)

MAX_INSIGHTS = 40
MAX_CONTENT_CHARS = 1000
MAX_KEYWORDS = 8
EVIDENCE_IN_METADATA = 40  # the metadata stays a small flat dict; the full set is on the tags
TAG_REFLECTED = "reflected"
TAG_SUBJECT = "insight_subject"


@dataclass(frozen=True, slots=True)
class InsightDraft:
    """One validated insight of a reflection reply."""

    subject: str
    content: str
    observations: tuple[int, ...]  # 1-based numbers of the request's observations
    keywords: tuple[str, ...] = ()


@dataclass
class SubjectState:
    """A subject during one reflection run: its active versions, evidence and new content."""

    subject: str
    actives: list[Memory] = field(default_factory=list)
    evidence: set[str] = field(default_factory=set)
    content: str | None = None
    keywords: tuple[str, ...] = ()
    updated: bool = False

    @property
    def current(self) -> Memory | None:
        """The latest active version (several exist only after an interrupted run)."""
        if not self.actives:
            return None
        return max(self.actives, key=lambda m: (m.created_at or m.recorded_at, m.id))


@dataclass
class ReflectionPlan:
    """The store changes of one reflection run, computed before anything is written."""

    insights: list[Memory] = field(default_factory=list)
    supersede: list[tuple[str, str]] = field(default_factory=list)  # (old id, new id)
    observations: list[Memory] = field(default_factory=list)  # marked reflected


def normalise_subject(value: object) -> str | None:
    """A subject as stored: lower-case, single-spaced, at most 64 characters."""
    if not isinstance(value, str):
        return None
    text = " ".join(value.split()).lower()[:64]
    return text or None


def early_reflection_due(unreflected: int, threshold: int) -> bool:
    """Whether a user with this many unreflected observations is reflected before the night."""
    return unreflected >= threshold


def is_reflected(memory: Memory) -> bool:
    """Whether reflection has already seen this observation."""
    return memory.metadata.get(TAG_REFLECTED) is True


def parse_reflection(raw: object, count: int) -> list[InsightDraft]:
    """Validate a reply about ``count`` numbered observations; raises :class:`LLMBadOutput`.

    Items without a subject, text or any valid observation number are dropped and logged (an
    insight needs evidence); two items for one subject are merged.
    """
    if not isinstance(raw, dict) or not isinstance(raw.get("insights"), list):
        raise LLMBadOutput("reflection.insights: missing or not a list")
    items = raw["insights"]
    if len(items) > MAX_INSIGHTS:
        raise LLMBadOutput(f"reflection.insights: more than {MAX_INSIGHTS} items")
    drafts: dict[str, InsightDraft] = {}
    for i, item in enumerate(items):
        draft = _parse_item(item, count, f"insights[{i}]")
        if draft is None:
            continue
        earlier = drafts.get(draft.subject)
        if earlier is not None:
            numbers = tuple(dict.fromkeys(earlier.observations + draft.observations))
            draft = InsightDraft(draft.subject, draft.content, numbers, draft.keywords)
        drafts[draft.subject] = draft
    return list(drafts.values())


def _parse_item(item: object, count: int, path: str) -> InsightDraft | None:
    if not isinstance(item, dict):
        raise LLMBadOutput(f"reflection.{path}: expected an object")
    subject = normalise_subject(item.get("subject"))
    content = item.get("content")
    if subject is None or not isinstance(content, str) or not content.strip():
        log.warning("insight_ignored", path=path, reason="no subject or content")
        return None
    numbers = _numbers(item.get("observations"), count)
    if not numbers:
        log.warning("insight_ignored", path=path, subject=subject, reason="no evidence")
        return None
    return InsightDraft(
        subject=subject,
        content=" ".join(content.split())[:MAX_CONTENT_CHARS],
        observations=numbers,
        keywords=_keywords(item.get("keywords")),
    )


def _numbers(value: object, count: int) -> tuple[int, ...]:
    items = value if isinstance(value, list) else [value]
    found: list[int] = []
    for item in items:
        text = str(item).strip().lstrip("#") if isinstance(item, int | str) else ""
        if isinstance(item, bool) or not text.isdigit() or not 1 <= int(text) <= count:
            continue
        found.append(int(text))
    return tuple(dict.fromkeys(found))


def _keywords(value: object) -> tuple[str, ...]:
    if not isinstance(value, list):
        return ()
    words = [" ".join(str(v).split())[:64] for v in value if isinstance(v, str | int)]
    return tuple(dict.fromkeys(w for w in words if w))[:MAX_KEYWORDS]


def evidence_key(ids: Iterable[str]) -> str:
    """The version key of an evidence set: order-free, so the same set gives the same key."""
    h = hashlib.sha256()
    for memory_id in sorted(set(ids)):
        h.update(memory_id.encode("utf-8") + b"\n")
    return h.hexdigest()[:32]


def subject_states(
    insights: Sequence[Memory], observations: Sequence[Memory]
) -> dict[str, SubjectState]:
    """Every known subject with its active insight versions and tagged active evidence."""
    states: dict[str, SubjectState] = {}
    for insight in insights:
        subject = normalise_subject(insight.subject)
        if subject is not None:
            states.setdefault(subject, SubjectState(subject)).actives.append(insight)
    for memory in observations:
        subject = normalise_subject(memory.metadata.get(TAG_SUBJECT))
        if subject is not None and is_reflected(memory):
            states.setdefault(subject, SubjectState(subject)).evidence.add(memory.id)
    return states


def insight_texts(states: dict[str, SubjectState]) -> list[tuple[str, str]]:
    """``(subject, what its insight says now)`` for every subject that has a text, by subject."""
    found = []
    for subject in sorted(states):
        state = states[subject]
        text = state.content or (state.current.content if state.current else None)
        if text:
            found.append((subject, text))
    return found


def apply_drafts(
    states: dict[str, SubjectState],
    drafts: Sequence[InsightDraft],
    shown: Sequence[Memory],
    assigned: dict[str, str],
) -> None:
    """Fold one reply into the states; ``assigned`` maps observation id -> its (first) subject."""
    for draft in drafts:
        state = states.setdefault(draft.subject, SubjectState(draft.subject))
        ids = [shown[n - 1].id for n in draft.observations]
        state.evidence.update(ids)
        state.content = draft.content
        state.keywords = draft.keywords or state.keywords
        state.updated = True
        for memory_id in ids:
            assigned.setdefault(memory_id, draft.subject)


def build_insight(
    user_id: str,
    state: SubjectState,
    evidence: Sequence[Memory],
    now: datetime,
    metadata: dict[str, Any],
) -> Memory:
    """The insight version of a subject with this evidence (not yet embedded)."""
    assert state.content is not None, "only updated subjects become new versions"
    ordered = sorted(evidence, key=lambda m: (m.recorded_at, m.id), reverse=True)
    key = evidence_key(m.id for m in evidence)
    turns = [t for m in reversed(ordered) for t in m.source_turn_ids]
    return Memory(
        id=insight_id(user_id, state.subject, key),
        user_id=user_id,
        kind=MemoryKind.INSIGHT,
        content=state.content,
        recorded_at=ordered[0].recorded_at,
        keywords=list(state.keywords),
        subject=state.subject,
        created_at=now,
        updated_at=now,
        source_turn_ids=list(dict.fromkeys(turns)),
        importance=max(m.importance for m in evidence),
        language=detect_language(state.content),
        metadata={
            **metadata,
            "evidence": " ".join(m.id for m in ordered[:EVIDENCE_IN_METADATA]),
            "evidence_count": len(ordered),
            "evidence_key": key,
        },
    )


def plan_reflection(
    user_id: str,
    states: dict[str, SubjectState],
    observations: dict[str, Memory],
    processed: Sequence[Memory],
    assigned: dict[str, str],
    now: datetime,
    metadata: dict[str, Any],
) -> ReflectionPlan:
    """New versions for the updated subjects, supersessions, and the observations to mark.

    A subject whose evidence did not change keeps its version; a subject left with several
    active versions (after an interrupted run) keeps only the target one.
    """
    plan = ReflectionPlan()
    for state in states.values():
        target = _target(user_id, state, observations, now, metadata)
        if target is None:
            continue
        if target.id not in {m.id for m in state.actives}:
            plan.insights.append(target)
        plan.supersede.extend((m.id, target.id) for m in state.actives if m.id != target.id)
    for memory in processed:
        tags: dict[str, Any] = {TAG_REFLECTED: True}
        if memory.id in assigned:
            tags[TAG_SUBJECT] = assigned[memory.id]
        plan.observations.append(memory.replace(metadata={**memory.metadata, **tags}))
    return plan


def _target(
    user_id: str,
    state: SubjectState,
    observations: dict[str, Memory],
    now: datetime,
    metadata: dict[str, Any],
) -> Memory | None:
    if state.updated:
        evidence = [observations[i] for i in state.evidence if i in observations]
        if evidence:
            return build_insight(user_id, state, evidence, now, metadata)
    current = state.current
    return current if current is not None and len(state.actives) > 1 else None
