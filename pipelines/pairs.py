"""Pairs of memories that may state the same fact: the one pair classifier of memlane.

Consolidation checks each new observation against the user's related memories (before it is
written); maintenance checks a user's memories among themselves (weeks later). Both do it the
same way:

1. the cosine of two memories' embeddings and their subjects give a :class:`Verdict`
   (:func:`judge`, under the :class:`PairRules` of the caller): a duplicate without asking the
   model, an ambiguous pair to ask about, or no pair at all;
2. the ambiguous pairs go to the model in one call (per batch, or per chunk of a sweep), which
   answers each by its number with a :class:`Relation`; :func:`parse_decisions` reads the answer.

Pairs are named by position, never by memory id, so an answer can only point at a pair that was
shown. Everything here is pure.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

import numpy as np

from memlane.errors import LLMBadOutput
from memlane.logging import get_logger
from memlane.models import Memory

log = get_logger(__name__)


class Relation(StrEnum):
    """What the model (or the embedding check) says two memories are to each other."""

    DUPLICATE = "duplicate"  # the same fact: one memory absorbs the other's provenance
    CONTRADICTION = "contradiction"  # the newer fact replaces the older (superseded, kept)
    DISTINCT = "distinct"  # two facts: both stay


class Subjects(StrEnum):
    """How the subjects of two memories compare."""

    SAME = "same"
    UNKNOWN = "unknown"  # one of them names no subject
    DIFFERENT = "different"  # both named and not equal (or about different people)


class Verdict(StrEnum):
    """The embedding check's verdict on one pair."""

    DUPLICATE = "duplicate"  # near-identical: merged without asking the model
    ASK = "ask"  # ambiguous: the model decides
    NONE = "none"  # not a pair


@dataclass(frozen=True, slots=True)
class PairRules:
    """The cosine thresholds of one pair check, and what subjects must agree.

    A pair with :attr:`Subjects.DIFFERENT` subjects is never a pair. At ``duplicate`` or above
    it is a duplicate (with ``duplicate_needs_same_subject``, only when both name the same
    subject); at ``ambiguous`` or above, or at ``subject_floor`` or above when the subjects are
    the same, the model is asked. ``same_person`` also makes memories about different people
    (``metadata["about"]``) different.
    """

    duplicate: float
    ambiguous: float
    subject_floor: float | None = None
    duplicate_needs_same_subject: bool = False
    same_person: bool = False

    @property
    def floor(self) -> float:
        """The lowest cosine at which a pair can be anything."""
        return min(self.ambiguous, self.subject_floor or self.ambiguous)


@dataclass(frozen=True, slots=True)
class Pair:
    """Two memories by position: the ``new`` statement and the ``old`` one, and their cosine.

    In consolidation ``new`` indexes the batch's observations and ``old`` the related memories;
    in maintenance both index the swept memories (``old`` was said first).
    """

    new: int
    old: int
    cosine: float


def subjects(a: Memory, b: Memory, same_person: bool = False) -> Subjects:
    """How the subjects of ``a`` and ``b`` compare (and their persons, with ``same_person``)."""
    if same_person and a.metadata.get("about") != b.metadata.get("about"):
        return Subjects.DIFFERENT
    if not a.subject or not b.subject:
        return Subjects.UNKNOWN
    return Subjects.SAME if a.subject == b.subject else Subjects.DIFFERENT


def judge(cosine: float, subject: Subjects, rules: PairRules) -> Verdict:
    """The verdict on a pair with this cosine and these subjects (see :class:`PairRules`)."""
    if subject is Subjects.DIFFERENT:
        return Verdict.NONE
    if cosine >= rules.duplicate and (
        subject is Subjects.SAME or not rules.duplicate_needs_same_subject
    ):
        return Verdict.DUPLICATE
    if cosine >= rules.ambiguous or (
        rules.subject_floor is not None
        and subject is Subjects.SAME
        and cosine >= rules.subject_floor
    ):
        return Verdict.ASK
    return Verdict.NONE


def cosine_matrix(new: Sequence[Memory], old: Sequence[Memory]) -> np.ndarray:
    """Cosines between the ``new`` and the ``old`` memories' embeddings (rows: new)."""
    a = np.asarray([m.embedding for m in new], dtype=np.float64)
    b = np.asarray([m.embedding for m in old], dtype=np.float64)
    a /= np.linalg.norm(a, axis=1, keepdims=True) + 1e-12
    b /= np.linalg.norm(b, axis=1, keepdims=True) + 1e-12
    result: np.ndarray = a @ b.T
    return result


def parse_decisions(raw: object, count: int, what: str) -> dict[int, Relation]:
    """Pair number -> relation from the model's answer about ``count`` numbered pairs.

    The answer is ``{"decisions": [{"pair": 0, "relation": "duplicate"}, ...]}``; a missing list
    or an item that is not an object raises :class:`LLMBadOutput` (``what`` names the call in
    the message); an unknown pair number or relation is logged and skipped; pairs left out
    count as distinct. A later answer about the same pair wins.
    """
    if not isinstance(raw, dict) or not isinstance(raw.get("decisions"), list):
        raise LLMBadOutput(f"{what}.decisions: missing or not a list")
    found: dict[int, Relation] = {}
    for i, item in enumerate(raw["decisions"]):
        if not isinstance(item, dict):
            raise LLMBadOutput(f"{what}.decisions[{i}]: expected an object")
        number, relation = item.get("pair"), str(item.get("relation", "")).lower()
        if not isinstance(number, int) or isinstance(number, bool) or not 0 <= number < count:
            log.warning("pair_decision_ignored", what=what, pair=str(number)[:20])
            continue
        if relation not in set(Relation):
            log.warning("pair_decision_ignored", what=what, pair=number, relation=relation[:20])
            continue
        found[number] = Relation(relation)
    return found
