"""Checks on what the model says, before anything is written (pure).

A model's extraction is a claim about the batch's turns; these rules decide which claims memlane
believes. Each rejection has a :class:`Check` reason, counted per model (``memlane stats``):

- **speaker**: an observation supported only by the assistant's turns is the assistant's word,
  not a fact about the user: dropped. Its source turns are narrowed to the user's turns.
- **grounding**: an observation must be supported by the batch's user turns: at least
  :attr:`CheckRules.ground_overlap` of its content terms occur in them, or its passage cosine
  to one of them is at least :attr:`CheckRules.ground_cosine`, or it shares a term with them
  and its cosine is at least :attr:`CheckRules.shared_cosine`. Otherwise it is dropped
  (``ungrounded``), or, when it restates one of the existing memories shown to the model, it
  is a ``copy``. The turns of a dropped observation are kept as raw memories.
- **links**: a model's ``duplicate`` stands only when the two texts are near-identical
  (cosine >= :attr:`CheckRules.duplicate_cosine` and most terms shared); a ``contradiction``
  only when both memories name the same subject and their meanings are related (cosine >=
  :attr:`CheckRules.contradiction_cosine`) and the new text changes the content. A failing link
  is dropped, and the observation is written as new: nothing is merged away on the model's word.
- **event time**: time expressions of the source turns are resolved by
  :mod:`memlane.text.timeparse` against each turn's timestamp (the prompt shows them as hints);
  an event time outside every resolved range of its source turns is set to the one resolution
  there is (``event_time_corrected``).
- **atomicity**: an observation whose clauses are each supported by a different user turn, in
  :attr:`CheckRules.packed_turns` or more turns, packs several facts (``packed``): it goes back
  to the model once; what the retry gives is checked like the rest, and a packed observation
  left over is dropped.

Why terms as well as embeddings: multilingual-e5-small compresses cosines, Chinese most.
Measured here: "用户养了一只叫豆豆的柯基" against a turn about 川菜 and 花生 is 0.89, while
"用户对花生过敏" against that turn is 0.92, "用户现在住在上海" / "我上个月搬到上海了" 0.92;
"用户住在北京" / "用户上周刚搬到上海" is 0.94.
So the cosine bars are high and shared content terms (CJK bigrams, English stems, without the
subject marker 用户 / "the user" and without digits, which a resolved date rewrites) carry
most of the decision.
Calibrated on the LLM bench's hand-made batches (``benchmarks/llm_cases``): of the 165
expected observations and accepted wordings, 161 pass (refused: "41 years old" for "I'm Priya,
41", "卖掉了自己的车" for "把车卖了", two loose paraphrases); of the 26 things the assistant said
or the batch did not say (forbidden assistant claims, shown memories of the copy batches), one
passes ("用户计划周末去苏州" after the assistant recommended 苏州 for a weekend trip). Claims a
user makes in an injection are the user's words: grounding does not judge them.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum

import numpy as np

from memlane.buffer.turns import BufferedTurn
from memlane.logging import get_logger
from memlane.models import Memory, Role
from memlane.text.tokens import EN_STOPWORDS, is_cjk, stem
from pipelines.extraction.rules import ObservationDraft
from pipelines.extraction.timehints import TimeHint, correct_time
from pipelines.pairs import Relation, Subjects, subjects
from pipelines.plan import Link

log = get_logger(__name__)


class Check(StrEnum):
    """Why a claim of the model was refused or repaired (the counters' names)."""

    UNGROUNDED = "ungrounded"  # no support in the batch's user turns
    COPY = "copy"  # restates an existing memory, no support in the batch
    SPEAKER = "speaker"  # supported only by the assistant's turns
    PACKED = "packed"  # several facts in one observation, not split
    SPLIT = "split"  # a packed observation split by the targeted retry (a repair)
    DUPLICATE_LINK = "duplicate_link"  # "duplicate" of a text that is not near-identical
    CONTRADICTION_LINK = "contradiction_link"  # different subject or unrelated meaning
    UNCHANGED_SUPERSEDE = "unchanged_supersede"  # a supersede that changes nothing
    EVENT_TIME_CORRECTED = "event_time_corrected"  # contradicted a resolved time expression


@dataclass(frozen=True, slots=True)
class CheckRules:
    """The thresholds of the checks (cosines are multilingual-e5-small passage cosines)."""

    ground_overlap: float = 0.5  # share of the observation's terms found in the user turns
    ground_cosine: float = 0.93  # or: cosine to one user turn at least this
    shared_cosine: float = 0.88  # or: one shared term and a cosine at least this
    # "name is Priya" / "I'm Priya, 41, ...": one of two terms shared at 0.83; "works at a bank"
    # against "...while she looks for work" (a copy) at 0.77.
    single_cosine: float = 0.78
    copy_cosine: float = 0.93  # an unsupported observation this close to a shown memory...
    copy_overlap: float = 0.8  # ...or sharing this share of its terms is a copy
    duplicate_cosine: float = 0.97  # a "duplicate" must be near-identical...
    duplicate_overlap: float = 0.6  # ...and share most terms both ways
    contradiction_cosine: float = 0.8  # a "contradiction" must be about a related meaning
    unchanged_overlap: float = 0.9  # a supersede sharing this much both ways changes nothing
    packed_turns: int = 3  # clauses supported by this many different user turns: packed


_SUBJECT_MARKERS = re.compile(r"用户|the user'?s?|user'?s?", re.IGNORECASE)
_WORD = re.compile(r"[^\W\d_]+", re.UNICODE)
_CLAUSE = re.compile(r"[,，;；。.、]|\band\b|\bbut\b|以及|并且|而且|还|也")


def terms(text: str) -> set[str]:
    """Content terms: CJK bigrams, English stems without stop words; the subject marker and
    digits left out (a date the model resolved must not count against it)."""
    norm = _SUBJECT_MARKERS.sub(" ", unicodedata.normalize("NFKC", text).casefold())
    found: set[str] = set()
    for match in _WORD.finditer(norm):
        run = match.group()
        if is_cjk(run):
            found.update(run[i : i + 2] for i in range(len(run) - 1))
        elif run not in EN_STOPWORDS and len(run) > 1:
            found.add(stem(run))
    return found


def overlap(part: set[str], whole: set[str]) -> float:
    """The share of ``part`` found in ``whole`` (0 when ``part`` is empty)."""
    return len(part & whole) / len(part) if part else 0.0


def _unit(vectors: Sequence[Sequence[float]]) -> np.ndarray:
    mat = np.asarray(vectors, dtype=np.float64).reshape(len(vectors), -1)
    unit: np.ndarray = mat / (np.linalg.norm(mat, axis=1, keepdims=True) + 1e-12)
    return unit


def cosines(a: Sequence[Sequence[float]], b: Sequence[Sequence[float]]) -> np.ndarray:
    """Cosines between two lists of vectors (rows: ``a``); an empty side gives an empty matrix."""
    if not a or not b:
        return np.zeros((len(a), len(b)))
    result: np.ndarray = np.asarray(_unit(a) @ _unit(b).T)
    return result


# -- the observations ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Evidence:
    """The batch as the checks see it: per turn, its role, terms and vector (None if unused),
    and the existing memories shown to the model (text and vector)."""

    roles: tuple[Role, ...]
    turn_terms: tuple[set[str], ...]
    turn_vectors: Sequence[Sequence[float]]
    turn_numbers: tuple[str, ...] = ()  # each turn's digits, space-separated
    shown_texts: tuple[str, ...] = ()
    shown_vectors: Sequence[Sequence[float]] = ()

    def user_turns(self) -> list[int]:
        """Positions (0-based) of the user's turns."""
        return [i for i, role in enumerate(self.roles) if role is Role.USER]


def evidence(
    entries: Sequence[BufferedTurn],
    turn_vectors: Sequence[Sequence[float]],
    shown_texts: Sequence[str] = (),
    shown_vectors: Sequence[Sequence[float]] = (),
) -> Evidence:
    """The :class:`Evidence` of a batch."""
    return Evidence(
        roles=tuple(e.turn.role for e in entries),
        turn_terms=tuple(terms(e.turn.content) for e in entries),
        turn_numbers=tuple(" ".join(_NUMBER.findall(e.turn.content)) for e in entries),
        turn_vectors=turn_vectors,
        shown_texts=tuple(shown_texts),
        shown_vectors=shown_vectors,
    )


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the checks make of one observation: kept (with repaired fields) or refused."""

    draft: ObservationDraft
    refused: Check | None = None


RULES = CheckRules()


@dataclass(frozen=True, slots=True)
class Support:
    """How well some turns support a text: the share of its terms they hold, how many terms
    (and numbers: "41" in "41 years old") they share, and the best cosine to one of them."""

    overlap: float
    shared: int
    terms: int
    cosine: float

    def holds(self, rules: CheckRules = RULES) -> bool:
        """Supported: most terms shared (two at least, or one and a cosine above
        ``single_cosine``), or a cosine above ``ground_cosine``, or a shared term and a cosine
        above ``shared_cosine``."""
        if self.overlap >= rules.ground_overlap and (
            self.shared >= 2 or self.cosine >= rules.single_cosine
        ):
            return True
        return self.cosine >= rules.ground_cosine or (
            self.shared > 0 and self.cosine >= rules.shared_cosine
        )


_NUMBER = re.compile(r"\d+")


def support(content: str, vector: Sequence[float], ev: Evidence, turns: Sequence[int]) -> Support:
    """How the turns at ``turns`` (0-based) support the text."""
    if not turns:
        return Support(0.0, 0, 0, 0.0)
    mine = terms(content)
    said: set[str] = set().union(*(ev.turn_terms[i] for i in turns))
    texts = " ".join(ev.turn_numbers[i] for i in turns) if ev.turn_numbers else ""
    numbers = set(_NUMBER.findall(content)) & set(_NUMBER.findall(texts))
    shared = len(mine & said) + len(numbers)  # a number only counts when the turns hold it
    total = len(mine) + len(numbers)
    cos = cosines([vector], [ev.turn_vectors[i] for i in turns])
    best = float(cos.max()) if cos.size else 0.0
    return Support(shared / total if total else 0.0, shared, total, best)


def judge_observation(
    draft: ObservationDraft, vector: Sequence[float], ev: Evidence, rules: CheckRules = RULES
) -> Verdict:
    """Speaker, grounding and copy checks of one observation (see the module docstring).

    Said by the assistant: supported by the assistant's turns and better than by the user's
    (the assistant's recommendation, its own habits, its name).
    """
    users = ev.user_turns()
    others = [i for i, role in enumerate(ev.roles) if role is not Role.USER]
    by_user = support(draft.content, vector, ev, users)
    by_others = support(draft.content, vector, ev, others)
    if by_others.holds(rules) and (by_others.overlap > by_user.overlap or not by_user.holds(rules)):
        return Verdict(draft, Check.SPEAKER)
    if by_user.holds(rules):
        mine = tuple(n for n in draft.source_turns if ev.roles[n - 1] is Role.USER)
        best = mine or (_best_turn(draft.content, ev, users) + 1,)
        return Verdict(replace(draft, source_turns=best))
    if _restates(draft.content, vector, ev, rules):
        return Verdict(draft, Check.COPY)
    return Verdict(draft, Check.UNGROUNDED)


def _best_turn(content: str, ev: Evidence, turns: Sequence[int]) -> int:
    mine = terms(content)
    return max(turns, key=lambda i: len(mine & ev.turn_terms[i]))


def _restates(content: str, vector: Sequence[float], ev: Evidence, rules: CheckRules) -> bool:
    mine = terms(content)
    if any(overlap(mine, terms(text)) >= rules.copy_overlap for text in ev.shown_texts):
        return True
    cos = cosines([vector], list(ev.shown_vectors))
    return bool(cos.size and cos.max() >= rules.copy_cosine)


def packed(draft: ObservationDraft, ev: Evidence, rules: CheckRules = RULES) -> bool:
    """Whether the observation's clauses draw on ``packed_turns`` or more different user turns."""
    users = ev.user_turns()
    drawn: set[int] = set()
    for clause in _CLAUSE.split(draft.content):
        mine = terms(clause)
        if len(mine) < 2:
            continue
        best = max(users, key=lambda i: overlap(mine, ev.turn_terms[i]), default=None)
        if best is not None and overlap(mine, ev.turn_terms[best]) >= rules.ground_overlap:
            drawn.add(best)
    return len(drawn) >= rules.packed_turns


# -- links ---------------------------------------------------------------------------------------


def judge_link(
    relation: Relation, new: Memory, old: Memory, rules: CheckRules = RULES
) -> Check | None:
    """None when the model's link between ``new`` and ``old`` stands, else why it is dropped.

    A contradiction between memories of different subjects (or people) is refused; when one
    names no subject, the meanings must be close (``duplicate_cosine``'s ambiguous band is not
    enough: ``contradiction_cosine`` + 0.1).
    """
    if new.embedding is None or old.embedding is None:
        return Check.DUPLICATE_LINK if relation is Relation.DUPLICATE else Check.CONTRADICTION_LINK
    cos = float(cosines([new.embedding], [old.embedding])[0, 0])
    a, b = terms(new.content), terms(old.content)
    both_ways = min(overlap(a, b), overlap(b, a)) if a and b else 1.0
    if relation is Relation.DUPLICATE:
        near = both_ways >= rules.duplicate_overlap
        return None if cos >= rules.duplicate_cosine and near else Check.DUPLICATE_LINK
    if relation is Relation.CONTRADICTION:
        same = subjects(new, old, same_person=True)
        floor = rules.contradiction_cosine + (0.1 if same is Subjects.UNKNOWN else 0.0)
        if same is Subjects.DIFFERENT or cos < floor:
            return Check.CONTRADICTION_LINK
        if _normal(new.content) == _normal(old.content) or both_ways >= rules.unchanged_overlap:
            return Check.UNCHANGED_SUPERSEDE
    return None


def _normal(text: str) -> str:
    return "".join(unicodedata.normalize("NFKC", text).casefold().split()).rstrip("。.!！")


@dataclass
class Tally:
    """The rejections and repairs of one batch, by :class:`Check`."""

    counts: Counter[str] = field(default_factory=Counter)

    def add(self, check: Check, n: int = 1) -> None:
        """Count ``n`` of ``check``."""
        if n:
            self.counts[check.value] += n


def renumber(links: Sequence[Link], kept: Sequence[int]) -> list[Link]:
    """Links re-pointed at the kept observations' new positions; links of dropped ones go."""
    position = {old: new for new, old in enumerate(kept)}
    return [
        Link(position[k.observation], k.memory_id, k.relation)
        for k in links
        if k.observation in position
    ]


@dataclass
class Checked:
    """The observations that passed, by their original position, and what the rest left."""

    drafts: list[ObservationDraft] = field(default_factory=list)
    kept: list[int] = field(default_factory=list)  # original positions of ``drafts``
    packed: list[ObservationDraft] = field(default_factory=list)
    raw_turns: set[int] = field(default_factory=set)  # 1-based turns to keep raw
    tally: Tally = field(default_factory=Tally)


def check_drafts(
    drafts: Sequence[ObservationDraft],
    vectors: Sequence[Sequence[float]],
    ev: Evidence,
    hints: Sequence[TimeHint],
    rules: CheckRules = RULES,
) -> Checked:
    """Speaker, grounding, copy, atomicity and event-time checks of a batch's observations."""
    out = Checked()
    users = [i + 1 for i in ev.user_turns()]
    for i, (draft, vector) in enumerate(zip(drafts, vectors, strict=True)):
        verdict = judge_observation(draft, vector, ev, rules)
        if verdict.refused is not None or packed(verdict.draft, ev, rules):
            # A refused claim says nothing reliable about where it came from: every user turn
            # of the batch stays, raw.
            out.raw_turns.update(users)
            if verdict.refused is not None:
                out.tally.add(verdict.refused)
            else:
                out.packed.append(verdict.draft)
            continue
        kept = verdict.draft
        corrected = correct_time(kept, hints)
        if corrected is not None:
            out.tally.add(Check.EVENT_TIME_CORRECTED)
            kept = corrected
        out.drafts.append(kept)
        out.kept.append(i)
    return out


def believed(
    links: Sequence[Link], memories: Sequence[Memory], shown: Sequence[Memory], tally: Tally
) -> list[Link]:
    """The model's links that pass :func:`judge_link`; the rest are counted and dropped."""
    by_id = {m.id: m for m in shown}
    kept: list[Link] = []
    for link in links:
        old = by_id.get(link.memory_id)
        new = memories[link.observation]
        refused = judge_link(link.relation, new, old) if old is not None else Check.DUPLICATE_LINK
        if refused is None:
            kept.append(link)
            continue
        tally.add(refused)
        log.warning(
            "link_refused",
            user_id=new.user_id,
            check=refused.value,
            relation=link.relation.value,
            memory_id=link.memory_id,
        )
    return kept
