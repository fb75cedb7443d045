"""The extraction checks' pure rules, the time hints, the raw-turn fold and the counters' parse."""

from __future__ import annotations

import math
from datetime import datetime
from zoneinfo import ZoneInfo

from memlane.buffer.rejections import parse_counts
from memlane.buffer.turns import BufferedTurn
from memlane.models import Memory, MemoryKind, Role, TimeGranularity, Turn
from memlane.retrieval.ranking import Explanation, RetrievedMemory, fold_covered
from pipelines.extraction.checks import (
    Check,
    Evidence,
    Tally,
    believed,
    check_drafts,
    evidence,
    judge_link,
    packed,
    renumber,
    terms,
)
from pipelines.extraction.rules import ObservationDraft
from pipelines.extraction.timehints import correct_time, time_hints
from pipelines.pairs import Relation
from pipelines.plan import Link

SH = ZoneInfo("Asia/Shanghai")
SAT = datetime(2024, 10, 26, 21, 26, tzinfo=SH)


def at(cos: float) -> list[float]:
    """A unit vector at cosine ``cos`` to ``[1, 0]``."""
    return [cos, math.sqrt(max(0.0, 1 - cos * cos))]


def memory(content: str, subject: str | None, cos: float, mid: str = "m") -> Memory:
    """A memory whose vector has cosine ``cos`` to ``[1, 0]``."""
    return Memory(
        id=mid,
        user_id="u",
        kind=MemoryKind.OBSERVATION,
        content=content,
        recorded_at=SAT,
        subject=subject,
        embedding=at(cos),
    )


def entries(*turns: tuple[Role, str]) -> list[BufferedTurn]:
    """Buffered turns said at SAT."""
    return [
        BufferedTurn(f"1-{i}", Turn("u", role, text, SAT, f"t{i}"))
        for i, (role, text) in enumerate(turns)
    ]


def test_terms_leave_out_the_subject_marker_and_digits() -> None:
    """用户 / "the user" and dates are not content: a resolved date never counts against it."""
    assert terms("用户于2024年10月21日去面试") >= {"去面", "面试"}
    assert not {"用户", "2024", "户于"} & terms("用户于2024年10月21日去面试")
    assert terms("The user works as a teacher.") == {"work", "teacher"}


def test_a_contradiction_between_different_subjects_is_dropped() -> None:
    """The peanut allergy does not supersede the job."""
    new = memory("The user is allergic to peanuts.", "health", 1.0)
    old = memory("The user works as a software engineer.", "job", 0.95)
    assert judge_link(Relation.CONTRADICTION, new, old) is Check.CONTRADICTION_LINK


def test_a_supersede_that_changes_nothing_is_refused() -> None:
    """The same text superseding itself is refused even when it is grounded."""
    new = memory("The user works as a teacher.", "job", 1.0)
    old = memory("The user works as a teacher.", "job", 1.0)
    assert judge_link(Relation.CONTRADICTION, new, old) is Check.UNCHANGED_SUPERSEDE
    moved = memory("The user moved to Shanghai.", "location", 1.0)
    lived = memory("The user lives in Beijing.", "location", 0.85)
    assert judge_link(Relation.CONTRADICTION, moved, lived) is None


def test_a_duplicate_must_be_near_identical() -> None:
    """Beijing is no duplicate of Shanghai at any cosine short of near-identical."""
    shanghai = memory("用户上周刚搬到上海。", "location", 1.0)
    beijing = memory("用户住在北京。", "location", 0.94)
    assert judge_link(Relation.DUPLICATE, shanghai, beijing) is Check.DUPLICATE_LINK
    again = memory("用户住在北京。", "location", 0.99)
    assert judge_link(Relation.DUPLICATE, memory("用户住在北京", "location", 1.0), again) is None


def test_refused_links_are_counted_and_the_rest_renumbered() -> None:
    """believed() drops and counts; renumber() re-points links at the kept observations."""
    tally = Tally()
    new = [memory("The user is allergic to peanuts.", "health", 1.0, "n0")]
    shown = [memory("The user works as a software engineer.", "job", 0.95, "o1")]
    link = Link(0, "o1", Relation.CONTRADICTION)
    assert believed([link], new, shown, tally) == []
    assert tally.counts == {"contradiction_link": 1}
    assert renumber([Link(2, "o1", Relation.DUPLICATE), link], kept=[2]) == [
        Link(0, "o1", Relation.DUPLICATE)
    ]


def test_time_hints_use_the_projects_parser() -> None:
    """上周一 said on Saturday 2024-10-26 is the parser's Monday of the previous calendar week
    (2024-10-14); "last Monday" is 2024-10-21; assistant turns give no hints."""
    found = time_hints(
        entries(
            (Role.USER, "上周一我去面试了。"),
            (Role.USER, "Last Monday I had an interview."),
            (Role.ASSISTANT, "昨天呢？"),
        ),
        SH,
    )
    assert [h.label() for h in found] == ["#1 上周一 = 2024-10-14", "#2 Last Monday = 2024-10-21"]


def test_an_event_time_outside_its_turns_resolution_is_corrected() -> None:
    """The day it was said becomes the day it happened; a time inside the range is kept."""
    hints = time_hints(entries((Role.USER, "两天前我去了杭州。")), SH)
    said_day = ObservationDraft("用户去了杭州。", event_time=SAT, source_turns=(1,))
    fixed = correct_time(said_day, hints)
    assert fixed is not None and fixed.event_time == datetime(2024, 10, 24, tzinfo=SH)
    assert fixed.time_granularity is TimeGranularity.DAY
    assert correct_time(fixed, hints) is None
    assert correct_time(ObservationDraft("用户去了杭州。", source_turns=(1,)), hints) is None


def ev_of(*turns: tuple[Role, str], shown: tuple[str, ...] = ()) -> Evidence:
    """Evidence with every turn's vector at [1, 0] (so cosines decide nothing here)."""
    batch = entries(*turns)
    return evidence(batch, [at(0.0)] * len(batch), shown, [at(0.0)] * len(shown))


def test_observations_are_checked_for_speaker_grounding_and_copies() -> None:
    """The assistant's words, a copy of a shown memory and an unsupported claim are refused;
    every user turn is kept raw; the supported one stays, narrowed to the user's turns."""
    ev = ev_of(
        (Role.USER, "I'm allergic to peanuts."),
        (Role.ASSISTANT, "Make sure to carry an EpiPen."),
        shown=("The user has a corgi called Doudou.",),
    )
    drafts = [
        ObservationDraft("The user is allergic to peanuts.", source_turns=(1, 2)),
        ObservationDraft("The user carries an EpiPen.", source_turns=(2,)),
        ObservationDraft("The user has a corgi called Doudou."),
        ObservationDraft("The user plays the violin."),
    ]
    out = check_drafts(drafts, [at(1.0)] * 4, ev, [])
    assert [d.content for d in out.drafts] == ["The user is allergic to peanuts."]
    assert out.drafts[0].source_turns == (1,) and out.kept == [0]
    assert out.tally.counts == {"speaker": 1, "copy": 1, "ungrounded": 1}
    assert out.raw_turns == {1}


def test_an_observation_drawing_on_three_turns_in_clauses_is_packed() -> None:
    """Clauses each supported by a different user turn, three or more: packed."""
    ev = ev_of(
        (Role.USER, "I work as a nurse."),
        (Role.USER, "My corgi Doudou steals socks."),
        (Role.USER, "I love spicy Sichuan food."),
    )
    many = ObservationDraft("The user works as a nurse, has a corgi Doudou, loves Sichuan food.")
    one = ObservationDraft("The user works as a nurse and loves the job.")
    assert packed(many, ev) and not packed(one, ev)


def hit(mem: Memory, score: float) -> RetrievedMemory:
    """A retrieval result."""
    return RetrievedMemory(mem, score, Explanation())


def test_a_covered_raw_turn_folds_into_its_observation() -> None:
    """The observation takes its raw turn's better score and place; an uncovered turn stays."""
    obs = memory("用户爱好是吉他。", "hobby", 1.0, "o1")
    obs.source_turn_ids = ["t1"]
    raw = memory("我的爱好是吉他。", None, 1.0, "r1").replace(
        kind=MemoryKind.RAW, source_turn_ids=["t1"]
    )
    other = memory("今天好困。", None, 1.0, "r2").replace(
        kind=MemoryKind.RAW, source_turn_ids=["t2"]
    )
    folded = fold_covered([hit(raw, 0.9), hit(other, 0.5), hit(obs, 0.4)])
    assert [(r.memory.id, r.score) for r in folded] == [("o1", 0.9), ("r2", 0.5)]


def test_check_counters_parse_per_model() -> None:
    """``model|check`` fields become {model: {check: n}}; a model name may hold "|"."""
    assert parse_counts({"a|b|copy": 2, "m|speaker": 1}) == {
        "a|b": {"copy": 2},
        "m": {"speaker": 1},
    }
