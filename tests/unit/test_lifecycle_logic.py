"""Pure reflection and maintenance logic: parsing, versions, plans, clusters, forgetting."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from memlane.errors import LLMBadOutput
from memlane.models import Memory, MemoryKind, MemoryStatus, SupersedeReason
from pipelines.maintenance.rules import (
    SweepOptions,
    classify_pairs,
    clusters,
    covered_raw,
    plan_sweep,
    to_forget,
)
from pipelines.pairs import Pair, parse_decisions
from pipelines.prompts import load_prompt
from pipelines.reflection.rules import (
    TAG_REFLECTED,
    TAG_SUBJECT,
    SubjectState,
    apply_drafts,
    evidence_key,
    parse_reflection,
    plan_reflection,
    subject_states,
)

SH = ZoneInfo("Asia/Shanghai")
T = datetime(2024, 10, 26, 21, 0, tzinfo=SH)


def mem(i: int, kind: MemoryKind = MemoryKind.OBSERVATION, **changes: object) -> Memory:
    """A small memory ``m{i}`` recorded ``i`` days after T."""
    base = Memory(f"m{i}", "u", kind, f"fact {i}", T + timedelta(days=i), source_turn_ids=[f"t{i}"])
    return base.replace(**changes)


@pytest.mark.parametrize("name", ["reflect", "maintain"])
@pytest.mark.parametrize("language", ["zh", "en"])
def test_lifecycle_prompts_are_versioned_and_their_examples_parse(name: str, language: str) -> None:
    """Each prompt loads; its few-shot answers pass our own validation."""
    prompt = load_prompt(name, language)
    assert prompt.version >= 1 and prompt.examples
    for example_input, output in prompt.examples:
        raw = json.loads(output)
        if name == "reflect":
            shown = example_input.count("[#")
            assert parse_reflection(raw, shown)
        else:
            assert parse_decisions(raw, example_input.count("A"), "maintenance")
        assert "delete" not in output.lower()


def test_parse_reflection_keeps_valid_evidence_and_merges_subjects() -> None:
    """Out-of-range numbers are dropped; an insight without evidence is dropped; subjects fold."""
    raw = {
        "insights": [
            {"subject": " Hobby ", "content": "用户弹吉他。", "observations": [1, 9, "#2", True]},
            {"subject": "hobby", "content": "用户弹吉他，也唱歌。", "observations": [3]},
            {"subject": "job", "content": "用户是工程师。", "observations": [42]},
        ]
    }
    drafts = parse_reflection(raw, 3)
    assert [(d.subject, d.content, d.observations) for d in drafts] == [
        ("hobby", "用户弹吉他，也唱歌。", (1, 2, 3))
    ]
    with pytest.raises(LLMBadOutput):
        parse_reflection({"memories": []}, 3)
    with pytest.raises(LLMBadOutput):
        parse_reflection({"insights": ["x"]}, 3)


def test_evidence_key_ignores_order_and_repeats() -> None:
    """The version key depends on the set only."""
    assert evidence_key(["b", "a", "a"]) == evidence_key(["a", "b"]) != evidence_key(["a"])


def test_plan_is_stable_for_the_same_evidence_and_versions_on_new_evidence() -> None:
    """Same evidence -> the existing id, nothing to write; more evidence -> supersede."""
    obs = [mem(i) for i in range(3)]
    drafts = parse_reflection(
        {"insights": [{"subject": "s", "content": "c", "observations": [1, 2]}]}, 3
    )
    states: dict[str, SubjectState] = {}
    assigned: dict[str, str] = {}
    apply_drafts(states, drafts, obs, assigned)
    by_id = {m.id: m for m in obs}
    first = plan_reflection("u", states, by_id, obs, assigned, T, {})
    assert len(first.insights) == 1 and first.supersede == []
    assert {m.id: m.metadata.get(TAG_SUBJECT) for m in first.observations} == {
        "m0": "s",
        "m1": "s",
        "m2": None,
    }
    assert all(m.metadata[TAG_REFLECTED] is True for m in first.observations)
    insight = first.insights[0].replace(embedding=None)
    tagged = first.observations
    states = subject_states([insight], tagged)
    assert states["s"].evidence == {"m0", "m1"}
    apply_drafts(states, drafts, obs, {})  # the same answer again (an interrupted run)
    again = plan_reflection("u", states, {m.id: m for m in tagged}, obs, {}, T, {})
    assert again.insights == [] and again.supersede == []

    more = parse_reflection(
        {"insights": [{"subject": "s", "content": "c2", "observations": [3]}]}, 3
    )
    states = subject_states([insight], tagged)
    apply_drafts(states, more, obs, {})
    grown = plan_reflection("u", states, {m.id: m for m in tagged}, obs, {}, T, {})
    assert len(grown.insights) == 1 and grown.supersede == [(insight.id, grown.insights[0].id)]
    assert grown.insights[0].metadata["evidence_count"] == 3


def test_clusters_join_transitively() -> None:
    """Union-find groups; singletons are left out."""
    assert sorted(sorted(g) for g in clusters(6, [(0, 1), (1, 2), (4, 5)])) == [[0, 1, 2], [4, 5]]


def test_classify_pairs_by_cosine_and_subject() -> None:
    """Near-identical: automatic; same subject and merely similar: ambiguous; other subject: no."""
    memories = [
        mem(0, subject="food", embedding=[1.0, 0.0, 0.0]),
        mem(1, subject="food", embedding=[0.999, 0.04, 0.0]),
        mem(2, subject="food", embedding=[0.83, 0.55, 0.0]),
        mem(3, subject="pet", embedding=[1.0, 0.0, 0.001]),
    ]
    auto, ambiguous = classify_pairs(memories, SweepOptions())
    assert [(p.old, p.new) for p in auto] == [(0, 1)]
    assert {(p.old, p.new) for p in ambiguous} == {(0, 2), (1, 2)}


def test_plan_sweep_merges_provenance_and_resolves_contradictions_to_keepers() -> None:
    """The keeper takes every turn; a contradiction supersedes the older with the newer's time."""
    memories = [mem(0, importance=0.9), mem(1), mem(2), mem(3)]
    duplicates = [Pair(new=1, old=0, cosine=0.99)]
    contradictions = [Pair(new=3, old=1, cosine=0.9), Pair(new=3, old=2, cosine=0.9)]
    plan = plan_sweep(memories, duplicates, contradictions, T)
    assert [m.id for m in plan.keep] == ["m0"] and plan.keep[0].source_turn_ids == ["t0", "t1"]
    assert plan.merged == 1
    assert plan.supersede == [
        ("m1", "m0", T, SupersedeReason.DUPLICATE),
        ("m0", "m3", memories[3].recorded_at, SupersedeReason.CONTRADICTION),
        ("m2", "m3", memories[3].recorded_at, SupersedeReason.CONTRADICTION),
    ]


def test_forgetting_spares_the_recent_and_the_important() -> None:
    """Only old, unimportant observations and raw turns qualify; insights never do."""
    now = T + timedelta(days=800)
    memories = [
        mem(0, importance=0.2),
        mem(1, importance=1.0),
        mem(700, importance=0.1),
        mem(2, MemoryKind.INSIGHT, importance=0.0),
        mem(3, status=MemoryStatus.SUPERSEDED, importance=0.0),
    ]
    assert [m.id for m in to_forget(memories, now, 365, SweepOptions())] == ["m0"]


def test_covered_raw_needs_every_turn_covered() -> None:
    """A raw memory expires only when observations cover all its turns."""
    memories = [
        mem(0, MemoryKind.RAW, source_turn_ids=["a"]),
        mem(1, MemoryKind.RAW, source_turn_ids=["a", "b"]),
        mem(2, source_turn_ids=["a", "c"]),
    ]
    assert covered_raw(memories) == [("m0", "m2")]
