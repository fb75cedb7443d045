"""The scaling section: where each curve bends and why, and the 1M-memory extrapolation."""

from __future__ import annotations

import math

from benchmarks.report.cost import cost_bend
from benchmarks.report.ingest import ingest_bend
from benchmarks.report.markdown import table
from benchmarks.report.schema_system import IngestDoc, StoreDoc, StoreStep, SweepDoc
from benchmarks.report.store import store_bend

EXTRAPOLATION_HEADER = [
    "backend",
    "from the points",
    "search p50 ms at 1M",
    "p95 ms at 1M",
    "ES JVM RSS / SQLite file MiB at 1M",
]


def scaling_section(
    store: StoreDoc | None, ingest: IngestDoc | None, sweep: SweepDoc | None
) -> list[str]:
    """Where each curve bends and why, and the 1M-memory extrapolation."""
    out = ["## Scaling: where the curve bends and why", ""]
    if store:
        for name, b in store["results"]["backends"].items():
            growth = ", ".join(
                f"{s['search']['p50_ms']} / {s['search']['p95_ms']} ms at {s['size']:,}"
                for s in b["steps"]
            )
            out += [
                f"- **Store search, {name}** (p50 / p95): {growth} "
                "(`benchmarks/results/store_bench.json`). " + store_bend(name, b["steps"])
            ]
    if ingest:
        res = ingest["results"]
        tp = ", ".join(
            f"{r['turns_per_s']} turns/s with {r['concurrency']}"
            for r in res.get("throughput", [])
            if r.get("turns_per_s")
        )
        out += [
            f"- **Ingest throughput** (`benchmarks/results/ingest_bench.json`): {tp} worker "
            "process(es). " + ingest_bend(res)
        ]
    if sweep:
        out += [
            "- **LLM calls vs batch size** (`benchmarks/results/cost_sweep.json`): "
            + cost_bend(sweep["results"])
        ]
    out += [""]
    if store:
        out += extrapolation(store)
    out += [
        "How to choose between the embedded default and Redis + Elasticsearch + N workers, "
        "and what to change when one stops scaling: [Choosing a deployment](deployment.md).",
        "",
    ]
    return out


def extrapolation(store: StoreDoc) -> list[str]:
    """A power-law fit through the last two measured sizes, carried to 1M memories."""
    rows = [
        row
        for name, b in store["results"]["backends"].items()
        if (row := extrapolated_row(name, b["steps"]))
    ]
    if not rows:
        return []
    return [
        "### 1M memories (extrapolated, not measured)",
        "",
        "1M memories did not fit the 20-minute budget of `make bench`, so these figures are "
        "**extrapolated**: a power law through the two largest measured sizes of "
        "`benchmarks/results/store_bench.json` (the exponent from those two points), "
        "with users growing with the corpus (~100 memories each). Treat them as an order of "
        "magnitude.",
        "",
        *table(EXTRAPOLATION_HEADER, rows),
    ]


def extrapolated_row(name: str, all_steps: list[StoreStep]) -> list[object]:
    """One backend's row of the 1M table; empty when there is nothing to extrapolate from."""
    steps = [s for s in all_steps if s["search"].get("p50_ms")]
    if len(steps) < 2 or any(s["size"] >= 1_000_000 for s in steps):
        return []
    a, c = steps[-2], steps[-1]
    ratio = math.log(1_000_000 / c["size"]) / math.log(c["size"] / a["size"])
    return [
        name,
        f"{a['size']:,} and {c['size']:,}",
        power_law(a["search"]["p50_ms"], c["search"]["p50_ms"], ratio),
        power_law(a["search"]["p95_ms"], c["search"]["p95_ms"], ratio),
        power_law(size_mib(name, a), size_mib(name, c), ratio),
    ]


def size_mib(name: str, step: StoreStep) -> float | None:
    """The backend's footprint: the ES JVM's RSS or the SQLite file's size."""
    return step.get("es_jvm_rss_mib") if name == "elasticsearch" else step.get("sqlite_file_mib")


def power_law(va: float | None, vc: float | None, ratio: float) -> str:
    """``vc`` carried on by the growth from ``va`` to ``vc``, ``ratio`` times over."""
    if not va or not vc:
        return ""
    return f"{vc * (vc / va) ** ratio:.1f}"
