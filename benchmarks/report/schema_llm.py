"""The shape of the LLM quality bench's results (``llm_bench*.json``, ``benchmarks/llm_bench.py``).

Like ``schema``, these ``TypedDict``s name only the keys the report reads. One document per run:
``llm_bench.json`` (the test server answering with the expected observations, in CI) and
``llm_bench_local_before.json`` / ``llm_bench_local_after.json`` (a real small local model,
before and after memlane checks what the model says).
"""

from __future__ import annotations

from typing import TypedDict

from benchmarks.report.schema import Envelope


class LlmTime(TypedDict):
    """Event times: expected dates, how many were matched and right; lasting facts given a date."""

    expected: int
    matched: int
    correct: int
    accuracy: float | None
    recall: float | None
    lasting_matched: int
    lasting_with_time: int


class LlmSupersede(TypedDict):
    """Expected supersessions made right, and supersessions that should not have happened."""

    expected: int
    correct: int
    wrong: int
    accuracy: float | None


class LlmEmpty(TypedDict):
    """Batches with nothing to remember, and how many of them stored nothing."""

    batches: int
    clean: int


class LlmOutputs(TypedDict):
    """What became of the model's replies."""

    accepted: int
    rejected: int
    failed: int
    repaired: int


class LlmCost(TypedDict):
    """Means per batch (seconds also p50 and max)."""

    llm_calls: float
    prompt_tokens: float
    completion_tokens: float
    seconds_mean: float
    seconds_p50: float
    seconds_max: float


class LlmFigures(TypedDict):
    """The figures of a set of batches."""

    batches: int
    expected: int
    produced: int
    tp: int
    fp: int
    optional: int
    precision: float | None
    recall: float | None
    f1: float | None
    strict_recall: float | None
    event_time: LlmTime
    supersede: LlmSupersede
    merges_unexpected: int
    nothing_to_remember: LlmEmpty
    forbidden: dict[str, int]
    copies: int
    outputs: LlmOutputs
    repairs: dict[str, int]
    warnings: dict[str, int]
    per_batch: LlmCost


class LlmHeadline(TypedDict):
    """A baseline's main figures."""

    precision: float | None
    recall: float | None
    f1: float | None
    strict_recall: float | None
    event_time_recall: float | None
    supersede_accuracy: float | None


class LlmCalibration(TypedDict):
    """How the match threshold separates accepted wordings from unrelated facts, per language."""

    alternatives: int
    alternative_cosine_min: float
    alternative_cosine_p50: float
    alternatives_accepted: float | None
    unrelated_pairs: int
    unrelated_cosine_p50: float
    unrelated_at_or_above_threshold: float | None


class LlmBatch(TypedDict):
    """One scored batch (only what the report reads)."""

    id: str


class LlmResults(TypedDict):
    """llm_bench's ``results``."""

    complete: bool
    overall: LlmFigures
    by_language: dict[str, LlmFigures]
    by_category: dict[str, LlmFigures]
    baselines: dict[str, dict[str, LlmHeadline]]
    calibration: dict[str, LlmCalibration]
    batches: list[LlmBatch]


class LlmParams(TypedDict):
    """What produced the figures."""

    mode: str
    model: str
    base_url: str | None
    json_mode: bool
    timeout_s: float
    cases: int
    languages: dict[str, int]
    threshold: float
    copy_threshold: float


class LlmDoc(Envelope):
    """``llm_bench*.json``."""

    params: LlmParams
    results: LlmResults
