"""Reading the results documents (and the guard's baseline) the report is built from."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from benchmarks.report.drain import DrainDoc
from benchmarks.report.schema import Baseline, ModesDoc, NeverHurtsDoc, RecallDoc
from benchmarks.report.schema_api import ApiDoc
from benchmarks.report.schema_llm import LlmDoc
from benchmarks.report.schema_system import CostDoc, IngestDoc, RetrievalDoc, StoreDoc, SweepDoc
from benchmarks.report.throughput import ThroughputDoc


@dataclass(frozen=True)
class Results:
    """Every document the report reads; ``None`` where the benchmark has not run yet."""

    recall: RecallDoc | None = None
    modes: ModesDoc | None = None
    store: StoreDoc | None = None
    retrieval: RetrievalDoc | None = None
    ingest: IngestDoc | None = None
    drain: DrainDoc | None = None
    throughput: ThroughputDoc | None = None  # N worker processes behind one HTTP embedder
    cost: CostDoc | None = None
    sweep: SweepDoc | None = None
    api: ApiDoc | None = None
    never_hurts: NeverHurtsDoc | None = None
    llm: LlmDoc | None = None  # the test server answering with the expected observations
    llm_local_before: LlmDoc | None = None  # a small local model, before the output checks
    llm_local_after: LlmDoc | None = None  # the same model, after them
    baseline: Baseline | None = None
    # Other CPU models' baselines, by file name under benchmarks/baselines/.
    cpu_baselines: dict[str, Baseline] = field(default_factory=dict)


def read_json(path: Path) -> Any:
    """The parsed JSON at ``path``, or ``None`` when there is no such file."""
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None


def load_results(results_dir: Path, baseline: Path) -> Results:
    """The documents under ``results_dir`` (``<benchmark>.json``) and the guard's baseline.

    The documents are taken as the benchmarks wrote them: the ``TypedDict``s name the keys
    the report reads, and a figure reaches the page exactly as it was recorded.
    """

    def doc(name: str) -> Any:
        return read_json(results_dir / f"{name}.json")

    return Results(
        recall=cast(RecallDoc | None, doc("recall_bench")),
        modes=cast(ModesDoc | None, doc("recall_modes")),
        store=cast(StoreDoc | None, doc("store_bench")),
        retrieval=cast(RetrievalDoc | None, doc("retrieval_bench")),
        ingest=cast(IngestDoc | None, doc("ingest_bench")),
        drain=cast(DrainDoc | None, doc("drain_bench")),
        throughput=cast(ThroughputDoc | None, doc("throughput_bench")),
        cost=cast(CostDoc | None, doc("cost_bench")),
        sweep=cast(SweepDoc | None, doc("cost_sweep")),
        api=cast(ApiDoc | None, doc("api_bench")),
        never_hurts=cast(NeverHurtsDoc | None, doc("never_hurts")),
        llm=cast(LlmDoc | None, doc("llm_bench")),
        llm_local_before=cast(LlmDoc | None, doc("llm_bench_local_before")),
        llm_local_after=cast(LlmDoc | None, doc("llm_bench_local_after")),
        baseline=cast(Baseline | None, read_json(baseline)),
        cpu_baselines={
            p.name: cast(Baseline, read_json(p))
            for p in sorted(baseline.parent.glob("baselines/*.json"))
        },
    )
