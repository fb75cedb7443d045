"""The shape of ``api_bench.json`` (the HTTP API next to the in-process client)."""

from __future__ import annotations

from typing import NotRequired, TypedDict

from benchmarks.report.schema import Envelope, Latency


class Measured(Latency):
    """Latency percentiles plus calls per second (and, for searches, CPU per call)."""

    per_s: float
    cpu_ms_per_call: NotRequired[float]
    server_cpu_ms_per_call: NotRequired[float]


class ApiLevel(TypedDict):
    """One concurrency level: push and search, in-process and over HTTP."""

    clients: int
    push_inproc: Measured
    push_http: Measured
    search_inproc: Measured
    search_http: Measured
    errors: int


class BatchedPush(TypedDict):
    """Clients pushing many turns per request."""

    clients: int
    turns_per_request: int
    turns: int
    seconds: float
    turns_per_s: float
    errors: int


class ApiGoals(TypedDict):
    """The goals the issue set."""

    push_p99_ms_at_8: float
    batched_turns_per_s: float
    search_p95_over_inproc_ms: float


class ApiResults(TypedDict):
    """api_bench's ``results``."""

    goals: ApiGoals
    levels: list[ApiLevel]
    batched_push: BatchedPush
    server_rss_mib: float | None
    errors: int
    loadavg_at_start: list[float]
    loadavg_at_end: list[float]


class ApiDoc(Envelope):
    """``api_bench.json``."""

    results: ApiResults
