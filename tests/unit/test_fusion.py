"""Reciprocal rank fusion: the one fusion module, with normalised scores and one k default."""

from __future__ import annotations

import pytest

from memlane.config_sections import RetrievalSettings
from memlane.constants import RRF_K
from memlane.models import Memory, MemoryKind
from memlane.store.base import SearchQuery
from memlane.store.fusion import Fusion, fuse_hits, fuse_rankings
from tests.contract.factories import make_memory


def test_single_ranking_keeps_its_order_with_normalised_rrf_scores() -> None:
    """One list fuses to itself; rank r scores (1 / (k + r)) / (1 / (k + 1))."""
    fused = fuse_rankings([["a", "b", "c"]], k=60)
    assert [i for i, _ in fused] == ["a", "b", "c"]
    assert fused[0][1] == pytest.approx(1.0)
    assert fused[2][1] == pytest.approx(61 / 63)


def test_first_in_every_ranking_scores_one() -> None:
    """The best possible score is 1.0 whatever the weights and k."""
    for weights, k in (([1.0, 1.0], 10), ([0.3, 2.0], 60), ([1.0, 0.0], 1)):
        fused = fuse_rankings([["a", "b"], ["a", "c"]], weights, k)
        assert fused[0] == ("a", pytest.approx(1.0))
        assert all(0.0 <= score <= 1.0 + 1e-12 for _, score in fused)  # up to rounding


def test_id_in_both_lists_beats_ids_in_one() -> None:
    """Agreement between the lists wins over a single first place."""
    fused = fuse_rankings([["a", "b"], ["c", "b"]])
    assert fused[0][0] == "b"
    assert fused[0][1] == pytest.approx((2 / (RRF_K + 2)) / (2 / (RRF_K + 1)))


def test_weights_scale_each_list() -> None:
    """A heavier list decides which of two first places wins."""
    fused = fuse_rankings([["a"], ["b"]], weights=[1.0, 2.0])
    assert [i for i, _ in fused] == ["b", "a"]
    assert fused[0][1] == pytest.approx(2 / 3)


def test_zero_weight_list_contributes_nothing() -> None:
    """A zero weight keeps the ids but scores them 0, below everything else."""
    fused = dict(fuse_rankings([["a"], ["b"]], weights=[1.0, 0.0]))
    assert fused["a"] > 0
    assert fused["b"] == 0


def test_all_weights_zero_score_everything_zero() -> None:
    """No weight at all: every id is kept with score 0 (no division by zero)."""
    assert fuse_rankings([["a"], ["b"]], weights=[0.0, 0.0]) == [("a", 0.0), ("b", 0.0)]


def test_ties_keep_order_of_first_appearance() -> None:
    """Equal scores are ordered by where the id first appeared."""
    fused = fuse_rankings([["x", "y"], ["y", "x"]])
    assert [i for i, _ in fused] == ["x", "y"]
    assert fused[0][1] == pytest.approx(fused[1][1])


def test_duplicates_within_a_list_count_once_at_first_rank() -> None:
    """A repeated id is scored at its first rank only, and later ids are not pushed down."""
    fused = dict(fuse_rankings([["a", "a", "b"]], k=10))
    assert fused["a"] == pytest.approx(1.0)
    assert fused["b"] == pytest.approx(11 / 12)


def test_smaller_k_sharpens_the_gap_between_ranks() -> None:
    """k controls how much rank 1 beats rank 2."""
    gap = {}
    for k in (1, 60):
        scores = dict(fuse_rankings([["a", "b"]], k=k))
        gap[k] = scores["a"] / scores["b"]
    assert gap[1] > gap[60] > 1


def test_empty_inputs_fuse_to_nothing() -> None:
    """No rankings, or only empty ones, give an empty result."""
    assert fuse_rankings([]) == []
    assert fuse_rankings([[], []]) == []


def test_bad_arguments_are_refused() -> None:
    """Weights must match the rankings and k must be positive."""
    with pytest.raises(ValueError, match="weights"):
        fuse_rankings([["a"], ["b"]], weights=[1.0])
    with pytest.raises(ValueError, match="k"):
        fuse_rankings([["a"]], k=0)


def test_one_rrf_k_default_for_settings_queries_and_fusion() -> None:
    """The configured default, a search query's and fusion's own default are the same k."""
    assert RetrievalSettings().rrf_k == RRF_K
    assert SearchQuery().fusion.rrf_k == RRF_K
    assert Fusion() == Fusion.of(RetrievalSettings())
    custom = RetrievalSettings(knn_weight=0.5, bm25_weight=2.0, rrf_k=30)
    assert Fusion.of(custom) == Fusion(0.5, 2.0, 30)


def _memory(mem_id: str) -> Memory:
    return make_memory(f"text {mem_id}", user_id="u", mem_id=mem_id, kind=MemoryKind.OBSERVATION)


def test_fused_hits_explain_their_components_and_stop_at_the_limit() -> None:
    """Hits carry each component's rank and score; unknown ids are skipped; limit applies."""
    memories = {m: _memory(m) for m in ("a", "b", "c")}
    knn = [("a", 0.9), ("ghost", 0.8), ("b", 0.7)]
    bm25 = [("b", 3.0), ("c", 1.0)]
    hits = fuse_hits(knn, bm25, memories, Fusion(rrf_k=10))
    assert [h.memory.id for h in hits] == ["b", "a", "c"]
    b = hits[0]
    assert (b.knn_rank, b.knn_score, b.bm25_rank, b.bm25_score) == (3, 0.7, 1, 3.0)
    assert hits[1].bm25_rank is None and hits[1].bm25_score is None
    assert [h.memory.id for h in fuse_hits(knn, bm25, memories, Fusion(), limit=2)] == ["b", "a"]
