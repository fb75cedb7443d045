"""Z-score fusion: the one fusion module, scores in [0, 1], the two weights from the settings."""

from __future__ import annotations

import pytest

from memlane.config_sections import RetrievalSettings
from memlane.models import Memory, MemoryKind
from memlane.store.base import SearchQuery
from memlane.store.fusion import MIN_SPAN, Fusion, fuse_hits, fuse_scores, standardise
from tests.contract.factories import make_memory


def test_standardise_gives_mean_zero_and_unit_spread() -> None:
    """z-scores: mean 0, population standard deviation 1; equal values all 0."""
    z = standardise([1.0, 2.0, 3.0])
    assert sum(z) == pytest.approx(0.0)
    assert z[2] == pytest.approx(1.224744871)
    assert standardise([5.0, 5.0]) == [0.0, 0.0]
    assert standardise([]) == []


def test_single_list_keeps_its_order_scaled_to_zero_one() -> None:
    """One long list fuses to itself: best 1.0, worst 0.0, linear in the score between."""
    fused = fuse_scores([[(str(i), 1.0 - i / 20) for i in range(20)]])
    assert [i for i, _ in fused] == [str(i) for i in range(20)]
    assert [s for _, s in fused] == pytest.approx([1.0 - i / 19 for i in range(20)])


def test_few_candidates_span_at_least_min_span() -> None:
    """Over few candidates a small gap stays small: the scale spans >= MIN_SPAN deviations.

    Two candidates always z-score to +-1, whatever their gap; without the floor the second
    would score 0.0 and no boost could lift it past the first.
    """
    fused = fuse_scores([[("a", 0.883), ("b", 0.880)]])
    assert fused == [("a", 1.0), ("b", pytest.approx(1.0 - 2.0 / MIN_SPAN))]
    three = fuse_scores([[("a", 0.9), ("b", 0.8), ("c", 0.5)]])
    assert [i for i, _ in three] == ["a", "b", "c"]
    assert three[2][1] > 0.0


def test_score_gaps_matter_not_only_ranks() -> None:
    """A BM25 hit far ahead of the rest beats a kNN first place that is barely ahead.

    Under rank fusion a and b (first and second in each list) would tie; scores keep how
    decisive each list is.
    """
    knn = [("a", 0.82), ("b", 0.81), ("c", 0.80)]
    bm25 = [("b", 12.0), ("a", 1.0), ("c", 1.0)]
    assert [i for i, _ in fuse_scores([knn, bm25])] == ["b", "a", "c"]


def test_missing_from_a_list_takes_its_minimum() -> None:
    """An id a list did not return scores as that list's worst, not as zero or as absent."""
    # b is missing from BM25: it takes 3.0, the list's minimum, so BM25 cannot separate a and b
    # and the mix is kNN's z-scores (+-1) at half weight.
    fused = dict(fuse_scores([[("a", 0.9), ("b", 0.5)], [("a", 3.0)]]))
    assert fused == {"a": 1.0, "b": pytest.approx(1.0 - 1.0 / MIN_SPAN)}
    # kNN returned only a: b and c take its score, so kNN separates nobody; BM25 decides.
    fused = dict(fuse_scores([[("a", 0.9)], [("b", 9.0), ("c", 1.0)]]))
    assert fused["b"] == 1.0
    assert fused["a"] == pytest.approx(fused["c"])


def test_id_in_both_lists_beats_ids_in_one() -> None:
    """Agreement between the lists wins over a single first place."""
    knn = [("a", 0.9), ("b", 0.88), ("d", 0.5), ("e", 0.4)]
    bm25 = [("c", 5.0), ("b", 4.8), ("f", 1.0), ("g", 0.5)]
    assert fuse_scores([knn, bm25])[0] == ("b", pytest.approx(1.0))


def test_weights_scale_each_list() -> None:
    """A heavier list decides which of two first places wins."""
    lists = [[("a", 0.9), ("x", 0.1)], [("b", 9.0), ("x", 1.0)]]
    assert fuse_scores(lists, [1.0, 2.0])[0][0] == "b"
    assert fuse_scores(lists, [2.0, 1.0])[0][0] == "a"


def test_zero_weight_list_does_not_reorder() -> None:
    """Weight 0 ignores a list's scores; its ids stay, at the other list's minimum."""
    fused = fuse_scores([[("a", 0.9), ("b", 0.2)], [("b", 9.0), ("c", 8.0)]], [1.0, 0.0])
    assert [i for i, _ in fused] == ["a", "b", "c"]
    assert dict(fused)["b"] == pytest.approx(dict(fused)["c"])


def test_all_weights_zero_score_everything_zero() -> None:
    """No weight at all: every id is kept with score 0 (no division by zero)."""
    assert fuse_scores([[("a", 1.0)], [("b", 1.0)]], [0.0, 0.0]) == [("a", 0.0), ("b", 0.0)]


def test_a_single_candidate_scores_one() -> None:
    """With nothing to compare against, the only candidate is the best: 1.0."""
    assert fuse_scores([[("a", 0.3)], [("a", 2.0)]]) == [("a", 1.0)]


def test_ties_keep_order_of_first_appearance() -> None:
    """Equal fused scores are ordered by where the id first appeared."""
    fused = fuse_scores([[("x", 1.0), ("y", 0.0)], [("y", 1.0), ("x", 0.0)]])
    assert [i for i, _ in fused] == ["x", "y"]
    assert fused[0][1] == pytest.approx(fused[1][1])


def test_duplicates_within_a_list_count_once_at_first_score() -> None:
    """A repeated id is scored by its first entry only."""
    fused = dict(fuse_scores([[("a", 1.0), ("b", 0.5), ("a", 0.0)]]))
    assert fused == {"a": 1.0, "b": pytest.approx(1.0 - 2.0 / MIN_SPAN)}


def test_empty_inputs_fuse_to_nothing() -> None:
    """No lists, or only empty ones, give an empty result."""
    assert fuse_scores([]) == []
    assert fuse_scores([[], []]) == []


def test_bad_arguments_are_refused() -> None:
    """Weights must match the lists and be finite and non-negative."""
    with pytest.raises(ValueError, match="weights"):
        fuse_scores([[("a", 1.0)], [("b", 1.0)]], [1.0])
    with pytest.raises(ValueError, match="weights"):
        fuse_scores([[("a", 1.0)]], [-1.0])


def test_one_fusion_default_for_settings_queries_and_fusion() -> None:
    """The configured default, a search query's and fusion's own default are the same mix."""
    assert SearchQuery().fusion == Fusion() == Fusion.of(RetrievalSettings())
    custom = RetrievalSettings(knn_weight=0.5, bm25_weight=2.0)
    assert Fusion.of(custom) == Fusion(0.5, 2.0)


def _memory(mem_id: str) -> Memory:
    return make_memory(f"text {mem_id}", user_id="u", mem_id=mem_id, kind=MemoryKind.OBSERVATION)


def test_fused_hits_explain_their_components_and_stop_at_the_limit() -> None:
    """Hits carry each component's rank and score; unknown ids are skipped; limit applies."""
    memories = {m: _memory(m) for m in ("a", "b", "c")}
    knn = [("a", 0.9), ("ghost", 0.8), ("b", 0.7)]
    bm25 = [("b", 3.0), ("c", 1.0)]
    hits = fuse_hits(knn, bm25, memories, Fusion())
    assert [h.memory.id for h in hits] == ["a", "b", "c"]
    b = hits[1]
    assert (b.knn_rank, b.knn_score, b.bm25_rank, b.bm25_score) == (3, 0.7, 1, 3.0)
    assert hits[0].bm25_rank is None and hits[0].bm25_score is None
    assert [h.memory.id for h in fuse_hits(knn, bm25, memories, Fusion(), limit=2)] == ["a", "b"]


def test_two_candidates_first_in_one_list_each_tie() -> None:
    """Each first in one list: an exact tie (1.0 both), not a rounding error stretched to 0..1."""
    fused = fuse_scores([[("a", 0.91), ("b", 0.90)], [("b", 2.3), ("a", 2.2)]])
    assert [s for _, s in fused] == [1.0, 1.0]
