"""Near-duplicate classification, arbitration answers and plans (pure)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from memlane.buffer.usage import parse_usage, usage_fields
from memlane.errors import LLMBadOutput
from memlane.llm.chat import Usage
from memlane.models import Memory, MemoryKind, TimeGranularity
from pipelines.arbitrate import Pair, Thresholds, build_plan, classify, parse_arbitration
from pipelines.extract import Link
from pipelines.plan import Merge, Supersession, merged

T = datetime(2024, 10, 26, 13, 0, tzinfo=UTC)


def mem(mid: str, vec: list[float], subject: str | None = "hobby", **kw: object) -> Memory:
    """A memory with an embedding."""
    return Memory(mid, "u", MemoryKind.OBSERVATION, mid, T, embedding=vec, subject=subject, **kw)  # type: ignore[arg-type]


def test_a_very_close_memory_with_the_same_subject_is_a_duplicate() -> None:
    """Cosine over the duplicate threshold and the same subject: linked without the LLM."""
    links, pairs = classify(
        [mem("new", [1.0, 0.0])], [mem("old", [0.99, 0.01])], set(), Thresholds()
    )
    assert links == [Link(0, "old", "duplicate")] and pairs == []


def test_the_band_below_is_ambiguous_and_other_subjects_are_ignored() -> None:
    """Mid cosines become pairs; a different subject never pairs; low cosines are distinct."""
    new = [mem("new", [1.0, 0.0])]
    old = [
        mem("mid", [0.96, 0.28]),  # cosine 0.96
        mem("low", [0.9, 0.436]),  # cosine 0.90: distinct
        mem("other-subject", [1.0, 0.0], subject="job"),
        mem("unknown-subject", [0.95, 0.31], subject=None),
        mem("far", [0.0, 1.0]),
    ]
    links, pairs = classify(new, old, set(), Thresholds())
    assert links == []
    assert [p.memory_id for p in pairs] == ["mid", "unknown-subject"]  # best cosine first


def test_facts_about_different_people_never_pair() -> None:
    """Identical wording about someone else is neither a duplicate nor a pair."""
    new = [mem("new", [1.0, 0.0])]
    old = [mem("sister", [1.0, 0.0], metadata={"about": "sister"})]
    assert classify(new, old, set(), Thresholds()) == ([], [])


def test_linked_observations_are_skipped_and_pairs_are_capped() -> None:
    """The model's own links win; at most max_pairs go to arbitration."""
    new = [mem(f"n{i}", [1.0, 0.0]) for i in range(5)]
    old = [mem(f"o{i}", [0.96, 0.28]) for i in range(3)]
    limits = Thresholds(max_pairs=4, pairs_per_observation=2)
    _, pairs = classify(new, old, {0}, limits)
    assert len(pairs) == 4 and all(p.observation != 0 for p in pairs)


def test_arbitration_answers_become_links() -> None:
    """Decisions map back to pairs; distinct and out-of-range answers are dropped."""
    pairs = [Pair(0, "a", 0.9), Pair(1, "b", 0.9), Pair(2, "c", 0.9)]
    raw = {
        "decisions": [
            {"pair": 0, "relation": "contradiction"},
            {"pair": 1, "relation": "distinct"},
            {"pair": 2, "relation": "DUPLICATE"},
            {"pair": 7, "relation": "duplicate"},
            {"pair": True, "relation": "duplicate"},
            {"pair": 1, "relation": "delete"},
        ]
    }
    assert parse_arbitration(raw, pairs) == [
        Link(0, "a", "contradiction"),
        Link(2, "c", "duplicate"),
    ]


@pytest.mark.parametrize("raw", [{}, {"decisions": "all"}, {"decisions": [1]}, []])
def test_a_malformed_arbitration_is_bad_output(raw: object) -> None:
    """Wrong shapes raise LLMBadOutput."""
    with pytest.raises(LLMBadOutput):
        parse_arbitration(raw, [Pair(0, "a", 0.9)])


def test_the_plan_writes_new_supersedes_contradicted_and_merges_duplicates() -> None:
    """Duplicates are not written; contradictions supersede at the new memory's time."""
    event = datetime(2024, 9, 1, tzinfo=UTC)
    new = [
        mem("n0", [1.0], source_turn_ids=["t1"], importance=0.9),
        mem("n1", [1.0], event_time=event, time_granularity=TimeGranularity.MONTH),
        mem("n2", [1.0]),
    ]
    old = [mem("o-dup", [1.0]), mem("o-old", [1.0])]
    links = [
        Link(0, "o-dup", "duplicate"),
        Link(0, "o-old", "contradiction"),  # ignored: n0 is not written
        Link(1, "o-old", "contradiction"),
        Link(2, "o-foreign", "contradiction"),  # not a candidate: ignored
    ]
    plan = build_plan(new, links, old)
    assert [m.id for m in plan.memories] == ["n1", "n2"]
    assert plan.supersede == [Supersession("o-old", "n1", event)]
    assert plan.merge == [Merge("o-dup", ("t1",), 0.9)]
    assert plan.writes == 4


def test_merging_is_idempotent() -> None:
    """Merging the same provenance twice changes nothing the second time."""
    existing = mem("o", [1.0], source_turn_ids=["t0"], importance=0.5)
    once = merged(existing, Merge("o", ("t1", "t0"), 0.7), T)
    assert once is not None
    assert once.source_turn_ids == ["t0", "t1"] and once.importance == 0.7
    assert merged(once, Merge("o", ("t1",), 0.7), T) is None


def test_usage_fields_round_trip() -> None:
    """Usage counters are keyed user|model|field and read back per (user, model)."""
    fields = usage_fields("u|1", Usage("gpt-4o-mini", 120, 30))
    assert fields == {
        "u|1|gpt-4o-mini|prompt_tokens": 120,
        "u|1|gpt-4o-mini|completion_tokens": 30,
        "u|1|gpt-4o-mini|calls": 1,
    }
    assert parse_usage(fields) == {
        ("u|1", "gpt-4o-mini"): {"prompt_tokens": 120, "completion_tokens": 30, "calls": 1}
    }
