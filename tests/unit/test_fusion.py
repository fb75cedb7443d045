"""Reciprocal rank fusion: the pure function every store backend fuses with."""

from __future__ import annotations

import pytest

from memlane.store.fusion import DEFAULT_RRF_K, fuse_rankings


def test_single_ranking_keeps_its_order_with_rrf_scores() -> None:
    """One list fuses to itself, each id scoring 1 / (k + rank)."""
    fused = fuse_rankings([["a", "b", "c"]], k=60)
    assert [i for i, _ in fused] == ["a", "b", "c"]
    assert fused[0][1] == pytest.approx(1 / 61)
    assert fused[2][1] == pytest.approx(1 / 63)


def test_id_in_both_lists_beats_ids_in_one() -> None:
    """Agreement between the lists wins over a single first place."""
    fused = fuse_rankings([["a", "b"], ["c", "b"]])
    assert fused[0][0] == "b"
    assert fused[0][1] == pytest.approx(2 / (DEFAULT_RRF_K + 2))


def test_weights_scale_each_list() -> None:
    """A heavier list decides which of two first places wins."""
    fused = fuse_rankings([["a"], ["b"]], weights=[1.0, 2.0])
    assert [i for i, _ in fused] == ["b", "a"]
    assert fused[0][1] == pytest.approx(2 / 61)


def test_zero_weight_list_contributes_nothing() -> None:
    """A zero weight keeps the ids but scores them 0, below everything else."""
    fused = dict(fuse_rankings([["a"], ["b"]], weights=[1.0, 0.0]))
    assert fused["a"] > 0
    assert fused["b"] == 0


def test_ties_keep_order_of_first_appearance() -> None:
    """Equal scores are ordered by where the id first appeared."""
    fused = fuse_rankings([["x", "y"], ["y", "x"]])
    assert [i for i, _ in fused] == ["x", "y"]
    assert fused[0][1] == pytest.approx(fused[1][1])


def test_duplicates_within_a_list_count_once_at_first_rank() -> None:
    """A repeated id is scored at its first rank only, and later ids are not pushed down."""
    fused = dict(fuse_rankings([["a", "a", "b"]], k=10))
    assert fused["a"] == pytest.approx(1 / 11)
    assert fused["b"] == pytest.approx(1 / 12)


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
