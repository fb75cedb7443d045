"""Every time limit of a consolidation, derived from one per-call budget (pure).

A real model, a small local one above all, can take well over a minute per call (the issue that
brought this saw 40-110 s, 8 calls of 20 over the old 60 s timeout and a 230 s batch against a
240 s soft limit). So the limits are not set one by one: ``llm.call_budget_s`` says how long one
LLM call may take, ``worker.batch_overhead_s`` how long a batch spends outside its calls
(embedding, store write, Redis), and the rest follows (B = budget, O = overhead)::

    llm timeout           B            a call is cut at its budget
    one batch             2B + O       at most 2 LLM calls per batch (extraction + arbitration);
                                       O in raw mode (the limits stay those of LLM mode)
    run window            2B + O       a run starts no batch after this (the last must fit)
    soft time limit       4B + 2O      the run window plus one whole batch
    hard time limit       soft + O     room to wind down after the soft limit
    queue lease           hard + O     a dispatched task waiting behind one that runs to its
                                       hard limit still holds its user
    reflection soft       nB + O       n = reflection.max_llm_calls; hard = soft + O

With the defaults (B = 120 s, O = 60 s) a 100 s call, or a batch of two, hits no limit. Any of the
derived values may be set explicitly (``llm.timeout_s``, ``worker.soft_time_limit_s``,
``worker.time_limit_s``, ``batching.lease_ttl_s``); :func:`check` refuses explicit values that
contradict each other or the budget, naming the field.
"""

from __future__ import annotations

from dataclasses import dataclass

from memlane.config_sections import (
    BatchingSettings,
    LLMSettings,
    ReflectionSettings,
    WorkerSettings,
)

CALLS_PER_BATCH = 2  # extraction, plus the optional arbitration of near-duplicates (DESIGN 4)


@dataclass(frozen=True, slots=True)
class Timing:
    """The effective limits of one configuration (explicit values, else derived)."""

    call_budget_s: float
    llm_timeout_s: float
    batch_s: float
    run_window_s: float
    soft_time_limit_s: int
    time_limit_s: int
    lease_ttl_s: float
    reflect_soft_time_limit_s: int
    reflect_time_limit_s: int


def derive(
    llm: LLMSettings,
    worker: WorkerSettings,
    batching: BatchingSettings,
    reflection: ReflectionSettings,
) -> Timing:
    """The effective limits: each explicit setting, else its value derived from the budget."""
    budget, overhead = llm.call_budget_s, worker.batch_overhead_s
    timeout = llm.request_timeout_s
    # The limits assume a model (a worker may get one later without new limits); what a run
    # may start is counted by the batches it really makes (no LLM call in raw mode).
    soft = worker.soft_time_limit_s or _up(2 * (CALLS_PER_BATCH * timeout + overhead))
    hard = worker.time_limit_s or _up(soft + overhead)
    lease = batching.lease_ttl_s if batching.lease_ttl_s is not None else hard + overhead
    reflect_soft = _up(reflection.max_llm_calls * timeout + overhead)
    batch = (CALLS_PER_BATCH * timeout if llm.configured else 0.0) + overhead
    return Timing(
        call_budget_s=budget,
        llm_timeout_s=timeout,
        batch_s=batch,
        # An explicit soft limit shorter than two batches leaves a run one batch (the first).
        run_window_s=max(0.0, soft - batch),
        soft_time_limit_s=soft,
        time_limit_s=hard,
        lease_ttl_s=lease,
        reflect_soft_time_limit_s=reflect_soft,
        reflect_time_limit_s=_up(reflect_soft + overhead),
    )


def check(timing: Timing, llm_configured: bool, visibility_timeout_s: int) -> None:
    """Refuse limits that contradict each other; the message names the field to change.

    - ``llm.timeout_s`` may not exceed ``llm.call_budget_s`` (the limits are counted in budgets);
    - with a model, ``worker.soft_time_limit_s`` must exceed a batch's two calls at their timeout
      (else the soft limit fires in the middle of a batch that is within its budget);
    - ``worker.time_limit_s`` must exceed the soft limit (else the soft limit never fires);
    - ``worker.visibility_timeout_s`` must exceed the hard limits (else the broker hands a
      running task to a second worker).
    """
    t = timing
    if t.llm_timeout_s > t.call_budget_s:
        raise ValueError(
            f"llm.timeout_s ({t.llm_timeout_s:g}) exceeds llm.call_budget_s "
            f"({t.call_budget_s:g}): raise the budget instead, every limit follows it"
        )
    calls = CALLS_PER_BATCH * t.llm_timeout_s
    if llm_configured and t.soft_time_limit_s <= calls:
        raise ValueError(
            f"worker.soft_time_limit_s ({t.soft_time_limit_s}) must exceed {CALLS_PER_BATCH} LLM "
            f"calls of llm.timeout_s ({calls:g} s); leave it unset to derive it from "
            "llm.call_budget_s"
        )
    if t.time_limit_s <= t.soft_time_limit_s:
        raise ValueError(
            f"worker.time_limit_s ({t.time_limit_s}) must exceed worker.soft_time_limit_s "
            f"({t.soft_time_limit_s})"
        )
    longest = max(t.time_limit_s, t.reflect_time_limit_s)
    if visibility_timeout_s <= longest:
        raise ValueError(
            f"worker.visibility_timeout_s ({visibility_timeout_s}) must exceed the longest task "
            f"time limit ({longest} s)"
        )


def _up(seconds: float) -> int:
    """Whole seconds, rounded up (Celery's time limits are given in seconds)."""
    return int(-(-seconds // 1))
