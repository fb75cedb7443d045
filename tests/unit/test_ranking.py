"""Pure ranking: boosts, time windows, MMR, profile questions and context formatting."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from memlane.config_sections import RetrievalSettings
from memlane.models import Memory, MemoryKind, SearchHit, TimeGranularity
from memlane.retrieval.context import format_context
from memlane.retrieval.ranking import in_window, is_profile_query, mmr, named_speaker, rank, recency

TZ = ZoneInfo("Asia/Shanghai")
NOW = datetime(2024, 10, 26, 21, 26, tzinfo=TZ)


def mem(mid: str, kind: MemoryKind = MemoryKind.OBSERVATION, **kw: object) -> Memory:
    fields: dict[str, object] = {"recorded_at": NOW - timedelta(days=1), "importance": 0.5}
    fields.update(kw)
    return Memory(id=mid, user_id="u", kind=kind, content=f"c-{mid}", **fields)  # type: ignore[arg-type]


def hit(m: Memory, rank_pos: int) -> SearchHit:
    """A hit at ``rank_pos`` in both lists, with a fused score in [0, 1] (1.0 = the best)."""
    return SearchHit(m, 1.0 / rank_pos, rank_pos, rank_pos)


def test_a_double_first_place_without_boosts_scores_one() -> None:
    """Ranking takes fusion's [0, 1] score as is: the best candidate, unboosted, scores 1.0."""
    cfg = RetrievalSettings(importance_weight=0, recency_weight=0)
    (r,) = rank([hit(mem("a"), 1)], cfg, NOW)
    assert r.explanation.fused == pytest.approx(1.0)
    assert r.score == pytest.approx(1.0)


def test_time_window_boost_lifts_a_lower_ranked_memory() -> None:
    """A memory inside the query's time range overtakes a better text match outside it."""
    cfg = RetrievalSettings()
    inside = mem("in", event_time=NOW - timedelta(days=1))
    outside = mem("out", event_time=NOW - timedelta(days=60))
    window = (NOW - timedelta(days=2), NOW)
    ranked = rank([hit(outside, 1), hit(inside, 5)], cfg, NOW, window)
    assert [r.memory.id for r in ranked] == ["in", "out"]
    assert ranked[0].explanation.boosts["time"] == cfg.time_match_boost


def test_event_time_falls_back_to_recorded_at_for_the_window() -> None:
    """Without an event time, when it was said decides."""
    assert in_window(NOW, (NOW - timedelta(hours=1), NOW + timedelta(hours=1)))
    cfg = RetrievalSettings()
    m = mem("raw", MemoryKind.RAW, recorded_at=NOW - timedelta(hours=3))
    (r,) = rank([hit(m, 1)], cfg, NOW, (NOW - timedelta(days=1), NOW))
    assert "time" in r.explanation.boosts


def test_insight_boost_is_larger_for_profile_questions() -> None:
    """Insights get the profile boost only when the question is about the user."""
    cfg = RetrievalSettings()
    ins = mem("i", MemoryKind.INSIGHT)
    plain = rank([hit(ins, 1)], cfg, NOW, profile=False)[0]
    prof = rank([hit(ins, 1)], cfg, NOW, profile=True)[0]
    assert plain.explanation.boosts["insight"] == cfg.insight_boost
    assert prof.explanation.boosts["insight"] == cfg.profile_insight_boost
    assert prof.score > plain.score


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("你知道我喜欢什么?", True),
        ("你知道我的乐器爱好是什么?", True),
        ("what do I do for a living?", True),
        ("What is my favourite food?", True),
        ("今天天气怎么样", False),
        ("what time is it in Tokyo", False),
    ],
)
def test_profile_question_detection(query: str, expected: bool) -> None:
    """Questions about the user themselves are recognised in zh and en."""
    assert is_profile_query(query) is expected


def test_recency_halves_at_the_half_life() -> None:
    """Exponential decay: 1 now, 0.5 after one half-life."""
    m = mem("a", recorded_at=NOW - timedelta(days=90))
    assert recency(m, NOW, 90) == pytest.approx(0.5)
    assert recency(mem("b", recorded_at=NOW), NOW, 90) == pytest.approx(1.0)


def test_mmr_drops_near_identical_results() -> None:
    """Two memories with the same vector keep only the better one."""
    cfg = RetrievalSettings(importance_weight=0, recency_weight=0)
    a = mem("a", embedding=[1.0, 0.0, 0.0])
    b = mem("b", embedding=[1.0, 0.0, 0.0])
    c = mem("c", embedding=[0.0, 1.0, 0.0])
    ranked = rank([hit(a, 1), hit(b, 2), hit(c, 3)], cfg, NOW)
    out = mmr(ranked, lam=0.7, k=3)
    assert [r.memory.id for r in out] == ["a", "c"]


def textbook_mmr(vectors: list[list[float]], rel: list[float], lam: float, k: int) -> list[int]:
    """MMR as usually written: every step recomputes each candidate's similarity to all chosen."""
    unit = [np.asarray(v) / (np.linalg.norm(v) or 1.0) for v in vectors]
    top = max(rel) or 1.0
    chosen: list[int] = []
    left = list(range(len(vectors)))
    while left and len(chosen) < k:
        sim = [max((float(unit[i] @ unit[j]) for j in chosen), default=0.0) for i in left]
        scores = [lam * rel[i] / top - (1 - lam) * s for i, s in zip(left, sim, strict=True)]
        best = int(np.argmax(scores))
        i = left.pop(best)
        if chosen and sim[best] >= 0.97:
            continue
        chosen.append(i)
    return chosen


@given(
    st.integers(0, 2**32 - 1),
    st.integers(1, 40),
    st.integers(1, 40),
    st.sampled_from([0.0, 0.3, 0.7, 1.0]),
)
@hsettings(max_examples=150, deadline=None)
def test_mmr_chooses_as_the_textbook_algorithm(seed: int, n: int, k: int, lam: float) -> None:
    """The incremental MMR picks the same memories, in the same order, as the textbook one.
    Random vectors (no ties), a third of them exact copies of another (the duplicate rule)."""
    rng = np.random.default_rng(seed)
    mat = rng.normal(size=(n, 8))
    for i in range(1, n, 3):
        mat[i] = mat[int(rng.integers(0, i))]
    vecs = [[float(x) for x in row] for row in mat]
    cfg = RetrievalSettings(importance_weight=0, recency_weight=0)
    ranked = rank([hit(mem(str(i), embedding=v), i + 1) for i, v in enumerate(vecs)], cfg, NOW)
    got = [r.memory.id for r in mmr(ranked, lam=lam, k=k)]
    order = [r.memory.id for r in ranked]
    expected = textbook_mmr([vecs[int(i)] for i in order], [r.score for r in ranked], lam, k)
    assert got == [order[i] for i in expected]


def test_format_context_zh_and_en_with_granularity() -> None:
    """Lines carry the date, the weekday in the language, and the granularity's precision."""
    said = datetime(2024, 10, 26, 21, 26, tzinfo=TZ)
    raw = Memory("r", "u", MemoryKind.RAW, "用户爱好是吉他。", recorded_at=said)
    day = Memory(
        "d",
        "u",
        MemoryKind.OBSERVATION,
        "The user went hiking.",
        recorded_at=said,
        event_time=datetime(2024, 10, 21, tzinfo=TZ),
        time_granularity=TimeGranularity.DAY,
    )
    month = Memory(
        "m",
        "u",
        MemoryKind.OBSERVATION,
        "x",
        recorded_at=said,
        event_time=datetime(2024, 5, 1, tzinfo=TZ),
        time_granularity=TimeGranularity.MONTH,
    )
    assert format_context([raw], "zh") == ["[2024-10-26 21:26 周六] 用户爱好是吉他。"]
    assert format_context([raw], "en") == ["[2024-10-26 21:26 Sat] 用户爱好是吉他。"]
    assert format_context([day, month], "en") == [
        "[2024-10-21 Mon] The user went hiking.",
        "[2024-05] x",
    ]


def said(mid: str, speaker: str) -> Memory:
    """A raw turn by ``speaker``, stored as raw mode stores it."""
    memory = mem(mid, MemoryKind.RAW, metadata={"speaker": speaker})
    return memory.replace(content=f"{speaker}: text {mid}")


def test_named_speaker_is_the_one_participant_the_question_names() -> None:
    """Whole-word, case-insensitive for Latin names; none when zero or two are named."""
    turns = [said("a", "Caroline"), said("b", "Melanie"), said("c", "小明")]
    assert named_speaker("What did caroline's kids paint?", turns) == "Caroline"
    assert named_speaker("What did Carol say?", turns) is None
    assert named_speaker("Did Caroline and Melanie meet?", turns) is None
    assert named_speaker("小明上周去哪儿了?", turns) == "小明"
    observation = mem("o").replace(content="Caroline likes tea", metadata={"speaker": "Caroline"})
    assert named_speaker("Caroline?", [observation]) is None  # raw turns only


def test_raw_turns_of_the_named_speaker_get_the_speaker_boost() -> None:
    """+speaker_boost to the named participant's raw turns, recorded; others unchanged."""
    cfg = RetrievalSettings(importance_weight=0, recency_weight=0)
    hits = [SearchHit(said("m", "Melanie"), 1.0, 1, 1), SearchHit(said("c", "Caroline"), 0.9, 2, 2)]
    results = rank(hits, cfg, NOW, query="When did Caroline go to the lake?")
    assert [r.memory.id for r in results] == ["c", "m"]
    assert results[0].explanation.boosts == {"speaker": cfg.speaker_boost}
    assert results[1].explanation.boosts == {}
    off = rank(hits, cfg.model_copy(update={"speaker_boost": 0.0}), NOW, query="Caroline?")
    assert [r.memory.id for r in off] == ["m", "c"]
