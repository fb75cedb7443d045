"""Near-duplicates and contradictions: links from embeddings first, the LLM only when unclear.

For each new observation the model did not link itself, its cosine to every candidate memory
(same subject, about the same person) decides:

- cosine >= ``duplicate`` and the same subject: a duplicate, no LLM needed;
- ``ambiguous`` <= cosine < ``duplicate`` with compatible subjects: an ambiguous pair. All
  ambiguous pairs of a batch go to ONE arbitration call, which answers per pair.

Arbitration answers refer to pairs by number, never by memory id, so it cannot name a memory
that was not offered. Everything here is pure; turning links into a plan is too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from memlane.errors import LLMBadOutput
from memlane.logging import get_logger
from memlane.models import Memory
from memlane.ranking import memory_time
from pipelines.extract import Link
from pipelines.plan import ExtractionPlan, Merge, Supersession

log = get_logger(__name__)
ARBITRATION_RELATIONS = ("duplicate", "contradiction", "distinct")


@dataclass(frozen=True, slots=True)
class Thresholds:
    """Cosine thresholds of the embedding check, tuned on multilingual-e5-small.

    e5 cosines are compressed: same-subject facts of one person have a median near 0.85 on
    LoCoMo, "lives in Beijing" / "now lives in Shanghai" reach 0.97 in Chinese, and paraphrases
    of one fact sit above 0.98. So only >= 0.98 merges without asking, and 0.94-0.98 is asked.
    """

    duplicate: float = 0.98
    ambiguous: float = 0.94
    max_pairs: int = 12
    pairs_per_observation: int = 2


@dataclass(frozen=True, slots=True)
class Pair:
    """An observation (by position) and a candidate memory that may be the same fact."""

    observation: int
    memory_id: str
    cosine: float


def cosine_matrix(new: Sequence[Memory], old: Sequence[Memory]) -> np.ndarray:
    """Cosines between the new memories' and the candidates' embeddings (rows: new)."""
    a = np.asarray([m.embedding for m in new], dtype=np.float64)
    b = np.asarray([m.embedding for m in old], dtype=np.float64)
    a /= np.linalg.norm(a, axis=1, keepdims=True) + 1e-12
    b /= np.linalg.norm(b, axis=1, keepdims=True) + 1e-12
    result: np.ndarray = a @ b.T
    return result


def _subjects(a: Memory, b: Memory) -> str:
    """``same``, ``unknown`` (a subject is missing) or ``different`` (subject or person)."""
    if a.metadata.get("about") != b.metadata.get("about"):
        return "different"
    if not a.subject or not b.subject:
        return "unknown"
    return "same" if a.subject == b.subject else "different"


def classify(
    new: Sequence[Memory], candidates: Sequence[Memory], linked: set[int], limits: Thresholds
) -> tuple[list[Link], list[Pair]]:
    """Automatic duplicate links and the ambiguous pairs, for observations not yet linked."""
    if not new or not candidates:
        return [], []
    cos = cosine_matrix(new, candidates)
    links: list[Link] = []
    pairs: list[Pair] = []
    for i, memory in enumerate(new):
        if i in linked:
            continue
        order = np.argsort(-cos[i])
        found = _classify_one(i, memory, [candidates[j] for j in order], cos[i][order], limits)
        if isinstance(found, Link):
            links.append(found)
        else:
            pairs.extend(found)
    return links, pairs[: limits.max_pairs]


def _classify_one(
    index: int,
    memory: Memory,
    ranked: Sequence[Memory],
    cosines: np.ndarray,
    limits: Thresholds,
) -> Link | list[Pair]:
    pairs: list[Pair] = []
    for other, value in zip(ranked, cosines, strict=True):
        if value < limits.ambiguous:
            break
        subjects = _subjects(memory, other)
        if subjects == "different":
            continue
        if value >= limits.duplicate and subjects == "same":
            return Link(index, other.id, "duplicate")
        if len(pairs) < limits.pairs_per_observation:
            pairs.append(Pair(index, other.id, float(value)))
    return pairs


def parse_arbitration(raw: object, pairs: Sequence[Pair]) -> list[Link]:
    """Links from the arbitration answer; pairs it leaves out count as distinct."""
    if not isinstance(raw, dict) or not isinstance(raw.get("decisions"), list):
        raise LLMBadOutput("arbitration.decisions: missing or not a list")
    links: dict[int, Link] = {}
    for i, item in enumerate(raw["decisions"]):
        if not isinstance(item, dict):
            raise LLMBadOutput(f"arbitration.decisions[{i}]: expected an object")
        number, relation = item.get("pair"), str(item.get("relation", "")).lower()
        if not isinstance(number, int) or isinstance(number, bool) or not 0 <= number < len(pairs):
            log.warning("arbitration_pair_ignored", pair=str(number)[:20])
            continue
        if relation not in ARBITRATION_RELATIONS:
            log.warning("arbitration_relation_ignored", pair=number, relation=relation[:20])
            continue
        if relation != "distinct":
            pair = pairs[number]
            links[number] = Link(pair.observation, pair.memory_id, relation)
    return [links[n] for n in sorted(links)]


def build_plan(
    memories: Sequence[Memory], links: Sequence[Link], candidates: Sequence[Memory]
) -> ExtractionPlan:
    """New memories minus duplicates, supersessions for contradictions, provenance merges."""
    known = {m.id for m in candidates}
    duplicate_of: dict[int, str] = {}
    for link in links:
        if link.relation == "duplicate" and link.memory_id in known:
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
            link.relation == "contradiction"
            and new.id in written
            and link.memory_id in known
            and link.observation not in duplicate_of
            and link.memory_id != new.id
        ):
            plan.supersede.append(Supersession(link.memory_id, new.id, memory_time(new)))
    return plan
