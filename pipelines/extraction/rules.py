"""Extraction's pure core: the model's JSON into observation drafts and links, drafts into
memories, near-duplicates into links, and links into the batch's plan.

Everything here is pure. The shape the extraction prompt asks for::

    {"observations": [{"content", "event_time", "time_granularity", "keywords", "importance",
                       "source_turns", "about", "subject"}],
     "links": [{"observation", "memory_id", "relation"}]}

Structural faults (no ``observations`` list, an observation without text, a wrong type) raise
:class:`LLMBadOutput` naming the path. Faults in single values are repaired where that is safe:
``importance`` is clamped, an unreadable ``event_time`` becomes None, out-of-range turn numbers
are dropped. A link naming a memory id that was not among the candidates shown to the model is
refused and logged (``foreign_memory_id_refused``): no output can reach another memory, and so
no other user's memory.

Near-duplicates and contradictions: for each new observation the model did not link itself,
the :mod:`pipelines.pairs` check against the related memories decides (:data:`PAIR_RULES`): a
duplicate link without asking, or an ambiguous pair; all ambiguous pairs of a batch go to ONE
arbitration call, whose answers (by pair number) become links (:func:`arbitration_links`).
:func:`pipelines.plan.build_plan` turns the links into the batch's plan.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import Any

import numpy as np

from memlane.buffer.turns import BufferedTurn
from memlane.errors import LLMBadOutput
from memlane.ids import observation_id
from memlane.logging import get_logger
from memlane.models import Memory, MemoryKind, TimeGranularity
from memlane.text.tokens import detect_language
from pipelines.pairs import (
    Pair,
    PairRules,
    Relation,
    Verdict,
    cosine_matrix,
    judge,
    parse_decisions,
    subjects,
)
from pipelines.plan import Link

log = get_logger(__name__)

LINK_RELATIONS = (Relation.DUPLICATE, Relation.CONTRADICTION)  # what a link may say
# e5 cosines are compressed: same-subject facts of one person have a median near 0.85 on
# LoCoMo, "lives in Beijing" / "now lives in Shanghai" reach 0.97 in Chinese, and paraphrases of
# one fact sit above 0.98. So only >= 0.98 (same subject, same person) merges without asking,
# and 0.94-0.98 is asked.
PAIR_RULES = PairRules(
    duplicate=0.98, ambiguous=0.94, duplicate_needs_same_subject=True, same_person=True
)
MAX_OBSERVATIONS = 50
MAX_CONTENT_CHARS = 2000
MAX_KEYWORDS = 8
_COARSENESS = ("year", "month", "week", "day", "minute")
_DATE = re.compile(r"^(\d{4})(?:[-/.](\d{1,2})(?:[-/.](\d{1,2}))?)?$")


@dataclass(frozen=True, slots=True)
class ObservationDraft:
    """One validated observation, before it becomes a :class:`Memory`."""

    content: str
    event_time: datetime | None = None
    time_granularity: TimeGranularity | None = None
    keywords: tuple[str, ...] = ()
    importance: float = 0.5
    source_turns: tuple[int, ...] = ()  # 1-based turn numbers of the batch
    about: str = "user"
    subject: str | None = None


@dataclass(frozen=True, slots=True)
class Extraction:
    """The validated result of one extraction call."""

    observations: tuple[ObservationDraft, ...]
    links: tuple[Link, ...]


def parse_extraction(
    raw: object,
    turn_count: int,
    candidate_ids: Collection[str],
    tz: tzinfo,
    context: dict[str, str] | None = None,
) -> Extraction:
    """Validate the model's JSON for a batch of ``turn_count`` turns (pure but for logging)."""
    if not isinstance(raw, dict):
        raise LLMBadOutput("extraction: expected a JSON object")
    items = raw.get("observations")
    if not isinstance(items, list):
        raise LLMBadOutput("extraction.observations: missing or not a list")
    if len(items) > MAX_OBSERVATIONS:
        raise LLMBadOutput(f"extraction.observations: more than {MAX_OBSERVATIONS} items")
    drafts = tuple(
        parse_observation(item, turn_count, tz, f"observations[{i}]")
        for i, item in enumerate(items)
    )
    links = parse_links(raw.get("links", []), len(drafts), candidate_ids, context or {})
    return Extraction(drafts, links)


def parse_observation(item: object, turn_count: int, tz: tzinfo, path: str) -> ObservationDraft:
    """One observation; raises :class:`LLMBadOutput` on a structural fault."""
    if not isinstance(item, dict):
        raise LLMBadOutput(f"extraction.{path}: expected an object")
    content = item.get("content")
    if not isinstance(content, str) or not content.strip():
        raise LLMBadOutput(f"extraction.{path}.content: missing or empty")
    event_time, inferred = parse_event_time(item.get("event_time"), tz)
    return ObservationDraft(
        content=" ".join(content.split())[:MAX_CONTENT_CHARS],
        event_time=event_time,
        time_granularity=coarser(inferred, item.get("time_granularity")) if event_time else None,
        keywords=_keywords(item.get("keywords"), path),
        importance=clamp_importance(item.get("importance")),
        source_turns=_turn_numbers(item.get("source_turns"), turn_count, path),
        about=_short_text(item.get("about")) or "user",
        subject=(_short_text(item.get("subject")) or "").lower() or None,
    )


def parse_event_time(value: object, tz: tzinfo) -> tuple[datetime | None, TimeGranularity | None]:
    """An event time and the precision its text shows; naive times take ``tz`` (pure).

    Accepts ``2024``, ``2024-10``, ``2024-10-26`` (also with ``/``) and ISO date-times. Anything
    else, or an absurd year, gives ``(None, None)``.
    """
    if not isinstance(value, str | int) or isinstance(value, bool):
        return None, None
    text = str(value).strip()
    if text.lower() in {"", "null", "none", "unknown"}:
        return None, None
    when, gran = _parse_date_only(text, tz)
    if when is None:
        try:
            when = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            return None, None
        when = when if when.tzinfo else when.replace(tzinfo=tz)
        gran = TimeGranularity.MINUTE
    if not 1900 <= when.year <= 2200:
        return None, None
    return when, gran


def _parse_date_only(text: str, tz: tzinfo) -> tuple[datetime | None, TimeGranularity | None]:
    m = _DATE.match(text)
    if not m:
        return None, None
    year, month, day = int(m.group(1)), int(m.group(2) or 1), int(m.group(3) or 1)
    try:
        when = datetime(year, month, day, tzinfo=tz)
    except ValueError:
        return None, None
    gran = "day" if m.group(3) else "month" if m.group(2) else "year"
    return when, TimeGranularity(gran)


def coarser(inferred: TimeGranularity | None, declared: object) -> TimeGranularity | None:
    """The coarser of the text's precision and the declared granularity (pure)."""
    if not isinstance(declared, str) or declared.lower() not in _COARSENESS:
        return inferred
    stated = TimeGranularity(declared.lower())
    if inferred is None:
        return stated
    return min(inferred, stated, key=lambda g: _COARSENESS.index(g.value))


def clamp_importance(value: object) -> float:
    """Importance in [0, 1]; anything unreadable is 0.5 (pure)."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return 0.5
    try:
        number = float(value)
    except ValueError:
        return 0.5
    if number != number:  # NaN
        return 0.5
    return round(min(1.0, max(0.0, number)), 3)


def _keywords(value: object, path: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        value = re.split(r"[,，、;；]", value)
    if not isinstance(value, list):
        raise LLMBadOutput(f"extraction.{path}.keywords: expected a list of strings")
    words = [" ".join(str(v).split())[:64] for v in value if isinstance(v, str | int)]
    return tuple(dict.fromkeys(w for w in words if w))[:MAX_KEYWORDS]


def _turn_numbers(value: object, turn_count: int, path: str) -> tuple[int, ...]:
    if value is None:
        return ()
    items = value if isinstance(value, list) else [value]
    numbers: list[int] = []
    for item in items:
        number = _as_int(item)
        if number is None or not 1 <= number <= turn_count:
            log.warning("source_turn_refused", path=path, value=str(item)[:20], turns=turn_count)
            continue
        numbers.append(number)
    return tuple(dict.fromkeys(numbers))


def _as_int(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("#").isdigit():
        return int(value.strip().lstrip("#"))
    return None


def _short_text(value: object) -> str | None:
    if not isinstance(value, str):
        return None
    text = " ".join(value.split())[:64]
    return text or None


def parse_links(
    value: object, observations: int, candidate_ids: Collection[str], context: dict[str, str]
) -> tuple[Link, ...]:
    """Validated links; ids outside ``candidate_ids`` are refused and logged."""
    if value is None:
        return ()
    if not isinstance(value, list):
        raise LLMBadOutput("extraction.links: expected a list")
    links: list[Link] = []
    for i, item in enumerate(value):
        link = _parse_link(item, observations, candidate_ids, context, f"links[{i}]")
        if link is not None and link not in links:
            links.append(link)
    return tuple(links)


def _parse_link(
    item: object,
    observations: int,
    candidate_ids: Collection[str],
    context: dict[str, str],
    path: str,
) -> Link | None:
    if not isinstance(item, dict):
        raise LLMBadOutput(f"extraction.{path}: expected an object")
    index = _as_int(item.get("observation"))
    memory_id = item.get("memory_id")
    relation = str(item.get("relation", "")).lower()
    if index is None or not 0 <= index < observations or relation not in LINK_RELATIONS:
        log.warning("link_ignored", path=path, observation=str(index), relation=relation[:20])
        return None
    if not isinstance(memory_id, str) or memory_id not in candidate_ids:
        log.warning(
            "foreign_memory_id_refused", memory_id=str(memory_id)[:80], path=path, **context
        )
        return None
    return Link(index, memory_id, Relation(relation))


def extraction_to_json(extraction: Extraction) -> dict[str, Any]:
    """The cacheable form of a validated extraction; :func:`parse_extraction` reads it back."""
    return {
        "observations": [
            {
                "content": d.content,
                "event_time": d.event_time.isoformat() if d.event_time else None,
                "time_granularity": d.time_granularity.value if d.time_granularity else None,
                "keywords": list(d.keywords),
                "importance": d.importance,
                "source_turns": list(d.source_turns),
                "about": d.about,
                "subject": d.subject,
            }
            for d in extraction.observations
        ],
        "links": [
            {"observation": k.observation, "memory_id": k.memory_id, "relation": k.relation}
            for k in extraction.links
        ],
    }


def draft_memory(
    user_id: str,
    batch_id: str,
    entries: Sequence[BufferedTurn],
    draft: ObservationDraft,
    metadata: dict[str, Any],
    now: datetime,
) -> Memory:
    """The observation memory of a draft: id from (user, batch, content), times from its turns."""
    sources = [entries[n - 1] for n in draft.source_turns] or list(entries)
    extra = {"about": draft.about} if draft.about.lower() not in {"user", "用户"} else {}
    return Memory(
        id=observation_id(user_id, batch_id, draft.content),
        user_id=user_id,
        kind=MemoryKind.OBSERVATION,
        content=draft.content,
        recorded_at=max(e.turn.ts for e in sources),
        keywords=list(draft.keywords),
        subject=draft.subject,
        event_time=draft.event_time,
        time_granularity=draft.time_granularity,
        created_at=now,
        updated_at=now,
        source_turn_ids=list(dict.fromkeys(e.turn.turn_id for e in sources)),
        session_id=sources[0].turn.session_id,
        batch_id=batch_id,
        importance=draft.importance,
        language=detect_language(draft.content),
        metadata={**metadata, **extra},
    )


@dataclass(frozen=True, slots=True)
class PairLimits:
    """The pair check of a batch: its rules, and how many pairs may go to arbitration."""

    rules: PairRules = PAIR_RULES
    max_pairs: int = 12
    pairs_per_observation: int = 2


def classify(
    new: Sequence[Memory], candidates: Sequence[Memory], linked: set[int], limits: PairLimits
) -> tuple[list[Link], list[Pair]]:
    """Automatic duplicate links and the ambiguous pairs, for observations not yet linked.

    ``Pair.new`` is the observation's position, ``Pair.old`` the candidate's.
    """
    if not new or not candidates:
        return [], []
    cos = cosine_matrix(new, candidates)
    links: list[Link] = []
    pairs: list[Pair] = []
    for i, memory in enumerate(new):
        if i in linked:
            continue
        found = _classify_one(i, memory, candidates, cos[i], limits)
        if isinstance(found, Link):
            links.append(found)
        else:
            pairs.extend(found)
    return links, pairs[: limits.max_pairs]


def _classify_one(
    index: int,
    memory: Memory,
    candidates: Sequence[Memory],
    cosines: np.ndarray,
    limits: PairLimits,
) -> Link | list[Pair]:
    rules = limits.rules
    pairs: list[Pair] = []
    for j in np.argsort(-cosines):
        value = float(cosines[j])
        if value < rules.floor:
            break
        other = candidates[j]
        verdict = judge(value, subjects(memory, other, rules.same_person), rules)
        if verdict is Verdict.DUPLICATE:
            return Link(index, other.id, Relation.DUPLICATE)
        if verdict is Verdict.ASK and len(pairs) < limits.pairs_per_observation:
            pairs.append(Pair(index, int(j), value))
    return pairs


def arbitration_links(
    raw: object, pairs: Sequence[Pair], candidates: Sequence[Memory]
) -> list[Link]:
    """Links from the arbitration answer, by pair number; pairs it leaves out are distinct."""
    decided = parse_decisions(raw, len(pairs), "arbitration")
    return [
        Link(pairs[n].new, candidates[pairs[n].old].id, relation)
        for n, relation in sorted(decided.items())
        if relation is not Relation.DISTINCT
    ]
