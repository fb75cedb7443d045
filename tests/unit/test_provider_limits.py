"""Provider limits, pure logic: Retry-After parsing, chunking, estimates, the gate's decisions.

The gate is driven with a fake clock and an in-memory window (the :class:`ProviderLimiter`
seam); the Redis window itself is tested for real in tests/integration/test_llm_limits.py.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from memlane.config import load_settings
from memlane.errors import ConfigError, LimitWaitTooLong, LLMRateLimited, Retryable
from memlane.llm.limits import (
    COMPLETION_ESTIMATE,
    Grant,
    ProviderGate,
    RateLimits,
    capped_retry_after,
    chunked,
    estimate_chat_tokens,
    estimate_tokens,
    limit_stats,
    parse_retry_after,
)
from tasks.app import retry_delay

NOW = datetime(2026, 12, 2, 5, 0, 0, tzinfo=UTC)


# -- Retry-After -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"Retry-After": "2"}, 2.0),
        ({"retry-after": " 1.5 "}, 1.5),
        ({"retry-after-ms": "250", "retry-after": "9"}, 0.25),
        ({"Retry-After": "-3"}, 0.0),
        ({"Retry-After": "soon"}, None),
        ({"Retry-After": "nan"}, None),
        ({}, None),
        ({"x-ratelimit-reset": "3"}, None),
    ],
)
def test_retry_after_seconds(headers: dict[str, str], expected: float | None) -> None:
    """Seconds (or OpenAI's retry-after-ms, which wins), any case; garbage or absence is None."""
    assert parse_retry_after(headers, NOW) == expected


def test_retry_after_http_date_is_seconds_from_now() -> None:
    """An HTTP date gives the seconds until then; a date in the past gives 0."""
    later = format_datetime(NOW + timedelta(seconds=7), usegmt=True)
    earlier = format_datetime(NOW - timedelta(seconds=30), usegmt=True)
    assert parse_retry_after({"Retry-After": later}, NOW) == pytest.approx(7.0)
    assert parse_retry_after({"Retry-After": earlier}, NOW) == 0.0


def test_retry_after_is_capped_by_the_budget() -> None:
    """An hour's Retry-After becomes the call budget; None stays None."""
    assert capped_retry_after(3600.0, 120.0) == 120.0
    assert capped_retry_after(2.0, 120.0) == 2.0
    assert capped_retry_after(None, 120.0) is None


def test_task_retry_waits_at_least_the_retry_after() -> None:
    """A task's countdown is never shorter than the error's retry_after_s (else the backoff)."""
    settings = load_settings(environ={})
    assert retry_delay(settings, 0, LLMRateLimited("429", retry_after_s=9.0)) >= 9.0
    assert retry_delay(settings, 0, LLMRateLimited("429")) <= settings.batching.backoff_base_s


# -- chunking and estimates --------------------------------------------------------------------


@pytest.mark.parametrize(("n", "size"), [(0, 10), (1, 10), (10, 10), (11, 10), (53, 25)])
def test_chunks_keep_order_and_never_exceed_the_size(n: int, size: int) -> None:
    """Concatenated chunks are the input in order; every chunk holds 1..size items."""
    items = [f"t{i}" for i in range(n)]
    chunks = chunked(items, size)
    assert [x for c in chunks for x in c] == items
    assert all(1 <= len(c) <= size for c in chunks)
    assert len(chunks) == -(-n // size)


def test_chunk_size_must_be_positive() -> None:
    """A chunk size below 1 is refused."""
    with pytest.raises(ValueError, match="size"):
        chunked(["a"], 0)


def test_estimates_count_cjk_higher_than_ascii() -> None:
    """Four ASCII characters make a token, every CJK character one; chat adds an answer."""
    assert estimate_tokens(["abcdefgh"]) == 2
    assert estimate_tokens(["我的爱好"]) == 4
    assert estimate_chat_tokens(["abcd"]) == 1 + 4 + COMPLETION_ESTIMATE


def test_limits_scale_to_the_window_and_clamp_reservations() -> None:
    """rpm over a 1 s window is rpm/60 (at least 1); a reservation never exceeds a window."""
    limits = RateLimits(rpm=600, tpm=6000, window_s=1.0)
    assert (limits.requests_per_window, limits.tokens_per_window) == (10, 100)
    assert RateLimits(rpm=1, window_s=1.0).requests_per_window == 1
    assert limits.reservable(5000) == 100
    assert RateLimits(rpm=5).reservable(5000) == 5000
    assert RateLimits().unlimited and not RateLimits(tpm=1).unlimited


# -- settings ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("env", "field"),
    [
        ({"MEMLANE_LLM__RPM": "-1"}, "llm.rpm"),
        ({"MEMLANE_LLM__TPM": "lots"}, "llm.tpm"),
        ({"MEMLANE_LLM__LIMIT_WINDOW_S": "120"}, "llm.limit_window_s"),
        ({"MEMLANE_EMBEDDING__RPM": "-5"}, "embedding.rpm"),
        ({"MEMLANE_EMBEDDING__MAX_BATCH": "0"}, "embedding.max_batch"),
        ({"MEMLANE_EMBEDDING__CALL_BUDGET_S": "0"}, "embedding.call_budget_s"),
    ],
)
def test_bad_limits_name_the_field(env: dict[str, str], field: str) -> None:
    """A bad limit fails at start-up naming its dotted field."""
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        load_settings(environ=env)


def test_limits_default_to_unlimited_and_max_batch_caps_the_batch() -> None:
    """No limit by default; max_batch lowers batch_size, never raises it."""
    s = load_settings(environ={"MEMLANE_EMBEDDING__MAX_BATCH": "10"})
    assert (s.llm.rpm, s.llm.tpm, s.embedding.rpm, s.embedding.tpm) == (None,) * 4
    assert s.embedding.request_batch == 10
    big = load_settings(environ={"MEMLANE_EMBEDDING__MAX_BATCH": "500"})
    assert big.embedding.request_batch == big.embedding.batch_size


# -- the gate ----------------------------------------------------------------------------------


class Clock:
    """A fake monotonic clock that sleeping advances."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


class Window:
    """An in-memory sliding window with the limiter's contract, on the fake clock."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.grants: dict[str, tuple[float, int]] = {}

    def acquire(self, key: str, grant_id: str, limits: RateLimits, tokens: int) -> Grant:
        now, w = self.clock(), limits.window_s
        live = sorted((at, n) for at, n in self.grants.values() if at > now - w)
        if limits.rpm and len(live) >= limits.requests_per_window:
            return Grant(False, live[len(live) - limits.requests_per_window][0] + w - now)
        self.grants[grant_id] = (now, tokens)
        return Grant(True)

    def settle(self, key: str, grant_id: str, tokens: int, limits: RateLimits) -> None:
        self.grants[grant_id] = (self.grants[grant_id][0], tokens)


def gate(clock: Clock, limits: RateLimits, budget: float = 10.0, timeout: float = 4.0) -> tuple:
    window = Window(clock)
    g = ProviderGate("test|p", limits, window, budget, timeout, clock, clock.sleep)
    return g, window


def test_gate_waits_for_a_place_then_sends() -> None:
    """With the window full, the call sleeps until a place frees, then sends once."""
    clock = Clock()
    g, _ = gate(clock, RateLimits(rpm=60, window_s=2.0))  # 2 per 2 s
    sent: list[float] = []
    for _ in range(3):
        g.call(lambda t: sent.append(clock()), 10, lambda _: None)
    assert sent[2] - sent[0] >= 2.0
    assert len(clock.sleeps) == 1


def test_gate_refuses_a_wait_beyond_the_budget_without_sending() -> None:
    """A wait that leaves less than the request's reserve raises Retryable, nothing sent."""
    clock = Clock()
    g, _ = gate(clock, RateLimits(rpm=1, window_s=60.0), budget=10.0, timeout=4.0)
    g.call(lambda t: None, 1, lambda _: None)
    sent: list[float] = []
    with pytest.raises(LimitWaitTooLong) as caught:
        g.call(lambda t: sent.append(t), 1, lambda _: None)
    assert isinstance(caught.value, Retryable) and sent == []
    assert caught.value.retry_after_s == 10.0  # ~60 s wait, capped by the budget
    assert limit_stats()["test|p"]["refused"] >= 1


def test_gate_sleeps_off_retry_after_once_and_sends_again() -> None:
    """A 429 with Retry-After 2 within the budget: one 2 s sleep, then the request again."""
    clock = Clock()
    g, _ = gate(clock, RateLimits())
    attempts: list[float] = []

    def send(timeout: float) -> str:
        attempts.append(clock())
        if len(attempts) == 1:
            raise LLMRateLimited("429", retry_after_s=2.0)
        return "ok"

    assert g.call(send, 1, lambda _: None) == "ok"
    assert clock.sleeps == [2.0] and attempts[1] - attempts[0] == 2.0


def test_gate_raises_a_long_retry_after_capped_and_without_sleeping() -> None:
    """A Retry-After beyond the budget is not slept: raised, capped by the budget."""
    clock = Clock()
    g, _ = gate(clock, RateLimits(), budget=10.0)

    def send(timeout: float) -> str:
        raise LLMRateLimited("429", retry_after_s=3600.0)

    with pytest.raises(LLMRateLimited) as caught:
        g.call(send, 1, lambda _: None)
    assert caught.value.retry_after_s == 10.0 and clock.sleeps == []


def test_gate_gives_the_request_what_is_left_of_the_budget() -> None:
    """After a wait the request's timeout shrinks so the whole call stays within the budget."""
    clock = Clock()
    g, _ = gate(clock, RateLimits(rpm=60, window_s=4.0), budget=10.0, timeout=8.0)
    timeouts: list[float] = []
    for _ in range(5):  # 4 per 4 s window: the fifth waits about 4 s
        g.call(lambda t: timeouts.append(t), 1, lambda _: None)
    assert timeouts[0] == 8.0
    assert clock.sleeps[0] >= 4.0
    assert timeouts[4] == pytest.approx(10.0 - clock.sleeps[0])


def test_gate_corrects_the_reservation_to_the_real_spend() -> None:
    """With tpm set, the estimate is replaced by the tokens the provider reported."""
    clock = Clock()
    g, window = gate(clock, RateLimits(tpm=10_000))
    g.call(lambda t: "r", 500, lambda _: 123)
    assert [n for _, n in window.grants.values()] == [123]
