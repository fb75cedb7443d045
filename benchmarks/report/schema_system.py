"""The shapes of the system benchmarks' results: store, retrieval, ingest and LLM cost.

Like ``schema``, these ``TypedDict``s name only the keys the report reads.
"""

from __future__ import annotations

from typing import NotRequired, TypedDict

from benchmarks.report.schema import Envelope, Latency

# -- store_bench ----------------------------------------------------------------------------


class StoreStep(TypedDict):
    """The store at one corpus size: load rate, search latency, memory."""

    size: int
    users: int
    load_rate_per_s: float
    search: Latency
    bench_rss_mib: float
    es_jvm_rss_mib: NotRequired[float | None]
    sqlite_file_mib: NotRequired[float | None]


class StoreBackend(TypedDict):
    """store_bench's figures for one backend."""

    steps: list[StoreStep]
    final: StoreStep
    variant_no_vectors_in_source: NotRequired[Latency | None]


class StoreResults(TypedDict):
    """store_bench's ``results``."""

    goal_p95_ms: float
    backends: dict[str, StoreBackend]


class StoreParams(TypedDict):
    """store_bench's ``params`` the report quotes."""

    chunk: int
    queries: int


class StoreDoc(Envelope):
    """``store_bench.json``."""

    params: StoreParams
    results: StoreResults


# -- retrieval_bench ------------------------------------------------------------------------


class RetrievalBackend(TypedDict):
    """retrieval_bench's figures for one backend."""

    n: int
    store_only: Latency
    embed_query_only: Latency
    end_to_end_cold: Latency
    end_to_end_cached: Latency
    end_to_end_loaded: NotRequired[Latency]
    load_workers: NotRequired[int]
    loadavg_1m: NotRequired[list[float]]
    loaded_over_idle_p95: NotRequired[float | None]
    goal_loaded_ratio: NotRequired[float]


class Mem0Anchor(TypedDict):
    """mem0's published search latency."""

    p50_ms: float
    p95_ms: float


class MemoryScopeAnchor(TypedDict):
    """MemoryScope's claimed retrieve latency."""

    approx_ms: float


class RetrievalAnchors(TypedDict):
    """Other systems' latencies to compare with."""

    mem0: Mem0Anchor
    memoryscope: MemoryScopeAnchor


class RetrievalResults(TypedDict):
    """retrieval_bench's ``results``."""

    goal_p95_ms: float
    anchors: RetrievalAnchors
    backends: dict[str, RetrievalBackend]


class RetrievalDoc(Envelope):
    """``retrieval_bench.json``."""

    results: RetrievalResults


# -- ingest_bench ---------------------------------------------------------------------------


class Throughput(TypedDict):
    """Raw-mode ingest with N worker processes."""

    concurrency: int
    turns: int
    users: int
    drain_s: float
    turns_per_s: float
    first_turn_searchable_s: float
    batches: NotRequired[int]
    cores: NotRequired[int]
    cores_used_by_workers: NotRequired[float]
    machine_cores_busy: NotRequired[float | None]
    worker_cpu_s_per_1000_turns: NotRequired[float]
    timer_wait_s: NotRequired[float]


class PushToSearchable(Latency):
    """Delay from a push until the turn is searchable."""

    timed_out: int
    concurrency: int


class BatchingDefaults(TypedDict):
    """The batching settings the delay was measured with."""

    idle_s: float
    dispatch_interval_s: float
    max_wait_s: float


class IngestResults(TypedDict):
    """ingest_bench's ``results``."""

    redis: str
    redis_server_installed: bool
    add_turns_unix: NotRequired[dict[str, Latency] | None]
    add_turns_tcp: NotRequired[dict[str, Latency] | None]
    throughput: list[Throughput]
    push_to_searchable: NotRequired[PushToSearchable | None]
    batching_defaults: NotRequired[BatchingDefaults]


class IngestDoc(Envelope):
    """``ingest_bench.json``."""

    results: IngestResults


# -- cost_bench and its sweep ---------------------------------------------------------------


class CostResults(TypedDict):
    """cost_bench's ``results``."""

    turns: int
    batches: int
    extraction_calls: int
    arbitration_calls: int
    llm_calls_per_100_turns: float
    full_context_llm_calls_per_100_turns: float
    prompt_tokens_per_turn: float
    full_context_prompt_tokens_per_turn: float
    savings_factor: float


class CostParams(TypedDict):
    """cost_bench's ``params`` the report quotes."""

    conversations: int
    batch_max_turns: int
    encoding: str


class CostDoc(Envelope):
    """``cost_bench.json``."""

    params: CostParams
    results: CostResults


class SweepRow(TypedDict):
    """The replay at one ``batch_max_turns``."""

    batch_max_turns: int
    turns: int
    batches: int
    mean_turns_per_batch: float
    llm_calls_per_1000_turns: float
    extraction_calls: int
    arbitration_calls: int
    prompt_tokens_per_1000_turns: int
    prompt_tokens_per_call: float
    seconds: float


class SessionTurns(TypedDict):
    """Session lengths in turns."""

    min: int
    median: int
    max: int


class SweepResults(TypedDict):
    """cost_sweep's ``results``."""

    note: str
    sessions: int
    session_turns: SessionTurns
    rows: list[SweepRow]


class SweepDoc(Envelope):
    """``cost_sweep.json``."""

    results: SweepResults
