"""Prometheus metrics: every name memlane exports, and the small calls that move them.

The pipelines and clients call the functions here (``count_batch``, ``stage``, ``count_llm_call``
...); nothing else touches ``prometheus_client``. What is computed from Redis at scrape time
(buffered turns and users, the oldest pending age, parked dead letters, the extraction checks
per model) is :mod:`memlane.buffer.gauges`; serving them is :mod:`memlane.exporter`.

**Labels never hold a user id or any content** (tenant isolation, and one series per user would
grow without bound): only names from a fixed set (``stage``, ``kind``, ``purpose``, ``task``,
``error`` class names) and the configured model names.

**Built on first use, not at import.** A counter is process-wide by nature in Prometheus, so
the metrics are one per process; they are made by the first call, after the process has
decided whether it runs in multiprocess mode: ``prometheus_client`` picks its value class from
``PROMETHEUS_MULTIPROC_DIR`` when it is first imported, so a worker sets that variable before
anything here runs (:mod:`worker.metrics`).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from prometheus_client import Counter, Histogram

PREFIX = "memlane"
# Seconds: from a cached embedding (~1 ms) to a slow LLM call (minutes, llm.call_budget_s).
LATENCY_BUCKETS = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    120.0,
    300.0,
)
# A retrieve is meant to take milliseconds: finer buckets at the low end.
RETRIEVE_BUCKETS = (0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 1.0, 2.5, 5.0)


class Stage(StrEnum):
    """The steps of one batch whose latency is measured (``memlane_batch_stage_seconds``)."""

    EXTRACT = "extract"  # the LLM extractor (its own near-duplicate lookups included)
    EMBED = "embed"  # the batch's passages
    STORE = "store"  # upsert, supersede, merge and the buffer commit, under the write guard


@dataclass(frozen=True, slots=True)
class Metrics:
    """The process's metric objects (see :func:`metrics`)."""

    batches: Counter
    turns: Counter
    batch_seconds: Histogram
    stage_seconds: Histogram
    dead_letters: Counter
    lease_losses: Counter
    retries: Counter
    llm_calls: Counter
    llm_tokens: Counter
    llm_errors: Counter
    llm_seconds: Histogram
    embedding_calls: Counter
    embedding_texts: Counter
    retrieve_seconds: Histogram


@functools.cache
def metrics() -> Metrics:
    """This process's metrics, registered in ``prometheus_client``'s default registry once."""
    from prometheus_client import Counter, Histogram

    def counter(name: str, doc: str, labels: tuple[str, ...] = ()) -> Counter:
        return Counter(f"{PREFIX}_{name}", doc, labels)

    def histogram(
        name: str, doc: str, labels: tuple[str, ...] = (), buckets: tuple[float, ...] = ()
    ) -> Histogram:
        return Histogram(f"{PREFIX}_{name}", doc, labels, buckets=buckets or LATENCY_BUCKETS)

    return Metrics(
        batches=counter("batches_consolidated", "Batches stored and committed"),
        turns=counter("turns_consolidated", "Turns stored and removed from the buffer"),
        batch_seconds=histogram("batch_seconds", "Latency of one consolidated batch"),
        stage_seconds=histogram(
            "batch_stage_seconds", "Latency of one stage of a batch", ("stage",)
        ),
        dead_letters=counter("dead_letters", "Batches parked as dead letters"),
        lease_losses=counter("lease_losses", "Runs that lost their user's lease mid-way"),
        retries=counter("task_retries", "Task retries after a transient fault", ("task",)),
        llm_calls=counter("llm_calls", "Chat model calls answered", ("model", "purpose")),
        llm_tokens=counter("llm_tokens", "Tokens the provider reported", ("model", "kind")),
        llm_errors=counter("llm_errors", "Chat model calls that failed", ("model", "error")),
        llm_seconds=histogram("llm_call_seconds", "Latency of one chat model call", ("model",)),
        embedding_calls=counter("embedding_calls", "Calls to the embedding model", ("kind",)),
        embedding_texts=counter("embedding_texts", "Texts sent to the embedding model", ("kind",)),
        retrieve_seconds=histogram(
            "retrieve_seconds",
            "Latency of MemoryClient.retrieve",
            ("pending",),
            buckets=RETRIEVE_BUCKETS,
        ),
    )


def count_batch(turns: int, seconds: float) -> None:
    """One batch was stored and committed."""
    m = metrics()
    m.batches.inc()
    m.turns.inc(turns)
    m.batch_seconds.observe(seconds)


@contextmanager
def stage(name: Stage) -> Iterator[None]:
    """Time one stage of a batch (observed only when the stage succeeds)."""
    started = time.perf_counter()
    yield
    metrics().stage_seconds.labels(name.value).observe(time.perf_counter() - started)


def count_dead_letter() -> None:
    """One batch (or single turn) was parked."""
    metrics().dead_letters.inc()


def count_lease_loss() -> None:
    """A run lost its user's lease."""
    metrics().lease_losses.inc()


def count_retry(task: str) -> None:
    """A task (by its registered name) is retried."""
    metrics().retries.labels(task).inc()


def count_llm_call(
    model: str, purpose: str, prompt_tokens: int, completion_tokens: int, seconds: float
) -> None:
    """One answered chat call and the tokens it used."""
    m = metrics()
    m.llm_calls.labels(model, purpose).inc()
    m.llm_tokens.labels(model, "prompt").inc(prompt_tokens)
    m.llm_tokens.labels(model, "completion").inc(completion_tokens)
    m.llm_seconds.labels(model).observe(seconds)


def count_llm_error(model: str, error: BaseException) -> None:
    """One failed chat call, labelled by memlane's error class (a fixed set)."""
    metrics().llm_errors.labels(model, type(error).__name__).inc()


def count_embedding(kind: str, texts: int) -> None:
    """One call to the embedding model (``passage`` or ``query``) with ``texts`` texts."""
    m = metrics()
    m.embedding_calls.labels(kind).inc()
    m.embedding_texts.labels(kind).inc(texts)


def observe_retrieve(seconds: float, pending: bool) -> None:
    """One ``retrieve`` answered."""
    metrics().retrieve_seconds.labels("true" if pending else "false").observe(seconds)
