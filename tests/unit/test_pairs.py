"""The one pair classifier: verdicts, model decisions, consolidation's pairs and plans (pure)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from memlane.buffer.usage import parse_usage, usage_fields
from memlane.errors import LLMBadOutput
from memlane.llm.chat import Usage
from memlane.models import Memory, MemoryKind, TimeGranularity
from pipelines.extraction.rules import PairLimits, arbitration_links, classify
from pipelines.pairs import (
    Pair,
    PairRules,
    Relation,
    Subjects,
    Verdict,
    judge,
    parse_decisions,
    subjects,
)
from pipelines.plan import Link, Merge, Supersession, build_plan, merged

T = datetime(2024, 10, 26, 13, 0, tzinfo=UTC)


def mem(mid: str, vec: list[float], subject: str | None = "hobby", **kw: object) -> Memory:
    """A memory with an embedding."""
    return Memory(mid, "u", MemoryKind.OBSERVATION, mid, T, embedding=vec, subject=subject, **kw)  # type: ignore[arg-type]


def test_judge_follows_the_rules_of_each_caller() -> None:
    """One verdict function: consolidation's stricter rules and maintenance's subject floor."""
    strict = PairRules(0.98, 0.94, duplicate_needs_same_subject=True)
    sweep = PairRules(0.97, 0.85, subject_floor=0.80)
    assert judge(0.99, Subjects.SAME, strict) is Verdict.DUPLICATE
    assert judge(0.99, Subjects.UNKNOWN, strict) is Verdict.ASK  # no subject: ask, never merge
    assert judge(0.99, Subjects.UNKNOWN, sweep) is Verdict.DUPLICATE
    assert judge(0.99, Subjects.DIFFERENT, sweep) is Verdict.NONE
    assert judge(0.82, Subjects.SAME, sweep) is Verdict.ASK  # the same subject, lower bar
    assert judge(0.82, Subjects.UNKNOWN, sweep) is Verdict.NONE
    assert judge(0.93, Subjects.SAME, strict) is Verdict.NONE
    assert (strict.floor, sweep.floor) == (0.94, 0.80)


def test_subjects_compare_names_and_optionally_persons() -> None:
    """Both named and equal: same; one missing: unknown; other person only when asked."""
    a, b = mem("a", [1.0]), mem("b", [1.0], metadata={"about": "sister"})
    assert subjects(a, b) is Subjects.SAME
    assert subjects(a, b, same_person=True) is Subjects.DIFFERENT
    assert subjects(a, mem("c", [1.0], subject=None)) is Subjects.UNKNOWN
    assert subjects(a, mem("d", [1.0], subject="job")) is Subjects.DIFFERENT


def test_decisions_are_parsed_once_for_every_caller() -> None:
    """Numbers in range with a known relation are kept (a later answer wins); the rest skipped."""
    raw = {
        "decisions": [
            {"pair": 0, "relation": "Duplicate"},
            {"pair": 1, "relation": "distinct"},
            {"pair": 1, "relation": "contradiction"},
            {"pair": 2, "relation": "merge"},
            {"pair": "0", "relation": "duplicate"},
            {"pair": 3, "relation": "duplicate"},
        ]
    }
    found = parse_decisions(raw, 3, "maintenance")
    assert found == {0: Relation.DUPLICATE, 1: Relation.CONTRADICTION}
    with pytest.raises(LLMBadOutput, match=r"^maintenance\.decisions"):
        parse_decisions({"decisions": None}, 3, "maintenance")


def test_a_very_close_memory_with_the_same_subject_is_a_duplicate() -> None:
    """Cosine over the duplicate threshold and the same subject: linked without the LLM."""
    links, pairs = classify(
        [mem("new", [1.0, 0.0])], [mem("old", [0.99, 0.01])], set(), PairLimits()
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
    links, pairs = classify(new, old, set(), PairLimits())
    assert links == []
    assert [old[p.old].id for p in pairs] == ["mid", "unknown-subject"]  # best cosine first


def test_facts_about_different_people_never_pair() -> None:
    """Identical wording about someone else is neither a duplicate nor a pair."""
    new = [mem("new", [1.0, 0.0])]
    old = [mem("sister", [1.0, 0.0], metadata={"about": "sister"})]
    assert classify(new, old, set(), PairLimits()) == ([], [])


def test_linked_observations_are_skipped_and_pairs_are_capped() -> None:
    """The model's own links win; at most max_pairs go to arbitration."""
    new = [mem(f"n{i}", [1.0, 0.0]) for i in range(5)]
    old = [mem(f"o{i}", [0.96, 0.28]) for i in range(3)]
    limits = PairLimits(max_pairs=4, pairs_per_observation=2)
    _, pairs = classify(new, old, {0}, limits)
    assert len(pairs) == 4 and all(p.new != 0 for p in pairs)


def test_arbitration_answers_become_links() -> None:
    """Decisions map back to pairs; distinct and out-of-range answers are dropped."""
    candidates = [mem(m, [1.0]) for m in ("a", "b", "c")]
    pairs = [Pair(0, 0, 0.9), Pair(1, 1, 0.9), Pair(2, 2, 0.9)]
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
    assert arbitration_links(raw, pairs, candidates) == [
        Link(0, "a", "contradiction"),
        Link(2, "c", "duplicate"),
    ]


@pytest.mark.parametrize("raw", [{}, {"decisions": "all"}, {"decisions": [1]}, []])
def test_a_malformed_arbitration_is_bad_output(raw: object) -> None:
    """Wrong shapes raise LLMBadOutput."""
    with pytest.raises(LLMBadOutput):
        arbitration_links(raw, [Pair(0, 0, 0.9)], [mem("a", [1.0])])


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
