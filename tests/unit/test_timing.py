"""One per-call budget: the LLM timeout, the time limits and the queue lease follow it."""

from __future__ import annotations

from typing import Any

import pytest

from memlane.config import Settings, load_settings
from memlane.errors import ConfigError
from memlane.timing import CALLS_PER_BATCH

LLM = {"base_url": "http://127.0.0.1:8080/v1", "model": "qwen"}


def _settings(environ: dict[str, str] | None = None, **tree: Any) -> Settings:
    return load_settings(environ=environ or {}, **tree)


def test_a_100_second_local_call_hits_no_limit_with_the_defaults() -> None:
    """Defaults: a 100 s call is under the timeout, a batch of two fits the soft limit twice."""
    t = _settings(llm=LLM).timing
    slow_batch = CALLS_PER_BATCH * 100 + _settings().worker.batch_overhead_s
    assert t.llm_timeout_s > 100
    assert t.run_window_s + slow_batch <= t.soft_time_limit_s  # the last batch started fits
    assert t.soft_time_limit_s < t.time_limit_s < t.lease_ttl_s
    assert (t.llm_timeout_s, t.soft_time_limit_s, t.time_limit_s, t.lease_ttl_s) == (
        120,
        600,
        660,
        720,
    )


def test_every_limit_follows_the_budget() -> None:
    """Doubling the budget raises the timeout, both limits, the lease and the run window."""
    base = _settings(llm=LLM).timing
    slow = _settings({"MEMLANE_LLM__CALL_BUDGET_S": "240"}, llm=LLM).timing
    assert slow.llm_timeout_s == 240
    for name in ("soft_time_limit_s", "time_limit_s", "lease_ttl_s", "run_window_s"):
        assert getattr(slow, name) > getattr(base, name), name
    assert slow.batch_s == 2 * 240 + 60 and slow.soft_time_limit_s == 2 * slow.batch_s


def test_reflection_gets_room_for_its_own_calls() -> None:
    """A reflection run may make max_llm_calls calls: its limits count them."""
    t = _settings(llm=LLM, reflection={"max_llm_calls": 6}).timing
    assert t.reflect_soft_time_limit_s >= 6 * t.llm_timeout_s
    assert t.reflect_time_limit_s > t.reflect_soft_time_limit_s


def test_consistent_explicit_values_are_kept() -> None:
    """A lower timeout, and explicit limits and lease that agree with it, are used as given."""
    s = _settings(
        llm={**LLM, "timeout_s": 30},
        worker={"soft_time_limit_s": 200, "time_limit_s": 220},
        batching={"lease_ttl_s": 45},
    )
    t = s.timing
    assert (t.llm_timeout_s, t.soft_time_limit_s, t.time_limit_s, t.lease_ttl_s) == (
        30,
        200,
        220,
        45,
    )
    assert t.run_window_s == 200 - (2 * 30 + 60)


@pytest.mark.parametrize(
    ("tree", "field"),
    [
        ({"llm": {**LLM, "timeout_s": 200}}, "llm.timeout_s"),
        ({"llm": LLM, "worker": {"soft_time_limit_s": 240}}, "worker.soft_time_limit_s"),
        ({"worker": {"soft_time_limit_s": 300, "time_limit_s": 300}}, "worker.time_limit_s"),
        ({"worker": {"time_limit_s": 5000}}, "worker.visibility_timeout_s"),
        ({"llm": LLM, "worker": {"visibility_timeout_s": 600}}, "worker.visibility_timeout_s"),
    ],
)
def test_inconsistent_explicit_values_are_refused_by_name(tree: dict[str, Any], field: str) -> None:
    """A timeout over budget, a soft limit under two calls, a hard limit not above it, or a
    visibility timeout under the longest task: refused, naming the field to change."""
    with pytest.raises(ConfigError) as caught:
        _settings(**tree)
    assert field in str(caught.value)


def test_raw_mode_needs_no_room_for_llm_calls() -> None:
    """Without a model a small soft limit is fine (no LLM call to fit)."""
    t = _settings(worker={"soft_time_limit_s": 15, "time_limit_s": 20}).timing
    assert (t.soft_time_limit_s, t.time_limit_s) == (15, 20)
    with pytest.raises(ConfigError, match=r"worker\.soft_time_limit_s"):
        _settings(llm=LLM, worker={"soft_time_limit_s": 15, "time_limit_s": 20})


def test_raw_mode_runs_count_batches_without_llm_calls() -> None:
    """Raw mode keeps LLM mode's limits but fills the run window with call-free batches."""
    raw, llm = _settings().timing, _settings(llm=LLM).timing
    assert raw.soft_time_limit_s == llm.soft_time_limit_s
    assert raw.batch_s == _settings().worker.batch_overhead_s < llm.batch_s
    assert raw.run_window_s > llm.run_window_s
