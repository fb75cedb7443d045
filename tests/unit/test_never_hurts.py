"""The never-hurts margins: defaults minus the better single component, per k."""

from __future__ import annotations

from benchmarks.never_hurts import margin_row, worst_margin


def test_margin_is_defaults_minus_the_better_component_and_worst_is_the_minimum() -> None:
    """Each k compares with its own best component; the worst margin spans rows and ks."""
    fine = margin_row(
        "LoCoMo",
        "raw turns",
        {
            "defaults": {"r@5": 60.0, "r@10": 70.0},
            "dense only": {"r@5": 61.0, "r@10": 60.0},
            "BM25 only": {"r@5": 50.0, "r@10": 65.5},
        },
    )
    assert (fine["margin r@5"], fine["margin r@10"]) == (-1.0, 4.5)
    bad = margin_row(
        "MADial-Bench zh",
        "last 3 lines",
        {
            "defaults": {"r@5": 50.0, "r@10": 60.0},
            "dense only": {"r@5": 50.0, "r@10": 62.5},
            "BM25 only": {"r@5": 40.0, "r@10": 50.0},
        },
    )
    assert worst_margin([fine, bad]) == -2.5
