"""Provider limits: requests and tokens per minute, shared by every worker, and 429 Retry-After.

A call to a model endpoint (chat or embeddings) goes through a :class:`ProviderGate`:

1. it takes a place in the provider's sliding window (:class:`ProviderLimiter`; in a worker a
   Lua script in Redis, :mod:`memlane.buffer.provider_limits`, so every process shares it),
   reserving an estimate of the call's tokens, and waits while the window is full;
2. it sends the request with what is left of the call's budget as its timeout;
3. a 429 carrying ``Retry-After`` (seconds, an HTTP date, or OpenAI's ``retry-after-ms``) is
   slept off and the request sent again, as long as the budget allows;
4. the reservation is corrected to the tokens the provider reports.

One call never takes longer than its budget, waits included: for the chat model the LLM timeout
(``llm.timeout_s``, by default ``llm.call_budget_s``), at which :mod:`memlane.timing` counts
every call, so the derived time limits hold; for embeddings ``embedding.call_budget_s``. A wait
is only started if it ends early enough to leave the request ``min(timeout, budget / 2)``; a
longer wait raises
:class:`LimitWaitTooLong` (an :class:`LLMRateLimited`, so Retryable) carrying how long to wait,
and the task retries no sooner than that. The ``openai`` clients run with ``max_retries=0``, so
nothing else waits on a 429 (no double wait) and the header is never ignored.

The logic here is pure apart from the injected clock, sleep and limiter. :func:`limit_stats` is
the hook for metrics: per-process counters of waits, by provider key.
"""

from __future__ import annotations

import math
import random
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Protocol, TypeVar

from memlane.errors import LimitWaitTooLong, LLMRateLimited
from memlane.logging import get_logger

log = get_logger(__name__)
T = TypeVar("T")

# What a chat call is assumed to answer before the provider says (corrected after the call).
COMPLETION_ESTIMATE = 256
TOKENS_PER_MESSAGE = 4


@dataclass(frozen=True, slots=True)
class RateLimits:
    """Requests and tokens per minute (0 = unlimited), enforced over any ``window_s`` seconds.

    Over a window shorter than a minute the allowance is scaled down (rpm 600 over 1 s: 10
    requests in any second), which spreads a burst out; 60 s is the provider's own minute.
    """

    rpm: int = 0
    tpm: int = 0
    window_s: float = 60.0

    @property
    def unlimited(self) -> bool:
        """True when neither requests nor tokens are limited."""
        return self.rpm <= 0 and self.tpm <= 0

    @property
    def requests_per_window(self) -> int:
        """How many requests any window may hold (0 = unlimited)."""
        return _per_window(self.rpm, self.window_s)

    @property
    def tokens_per_window(self) -> int:
        """How many tokens any window may hold (0 = unlimited)."""
        return _per_window(self.tpm, self.window_s)

    def reservable(self, tokens: int) -> int:
        """``tokens``, but never more than a whole window holds (else it could never go)."""
        cap = self.tokens_per_window
        return max(0, min(tokens, cap) if cap else tokens)


def _per_window(per_minute: int, window_s: float) -> int:
    if per_minute <= 0:
        return 0
    return max(1, math.floor(per_minute * window_s / 60.0))


@dataclass(frozen=True, slots=True)
class Grant:
    """The limiter's answer: admitted (``wait_s`` 0), or how long until a place may be free."""

    admitted: bool
    wait_s: float = 0.0


class ProviderLimiter(Protocol):
    """A sliding window of requests and tokens per provider key, shared between processes."""

    def acquire(self, key: str, grant_id: str, limits: RateLimits, tokens: int) -> Grant:
        """Take a place for ``grant_id`` reserving ``tokens`` if the window has room."""

    def settle(self, key: str, grant_id: str, tokens: int, limits: RateLimits) -> None:
        """Correct ``grant_id``'s reservation to the ``tokens`` really spent."""


# -- pure helpers ------------------------------------------------------------------------------


def parse_retry_after(headers: Mapping[str, str], now: datetime | None = None) -> float | None:
    """Seconds to wait from a 429's headers (pure): ``retry-after-ms``, else ``retry-after``.

    ``retry-after`` is seconds or an HTTP date (RFC 9110); a date in the past is 0. None when
    neither header is there or readable. Header names are matched case-insensitively.
    """
    lower = {k.lower(): v for k, v in headers.items()}
    ms = _number(lower.get("retry-after-ms"))
    if ms is not None:
        return max(0.0, ms / 1000.0)
    raw = lower.get("retry-after")
    if raw is None:
        return None
    seconds = _number(raw)
    if seconds is not None:
        return max(0.0, seconds)
    try:
        when = parsedate_to_datetime(raw.strip())
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def _number(raw: str | None) -> float | None:
    if raw is None:
        return None
    try:
        value = float(raw.strip())
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def chunked(items: Sequence[T], size: int) -> list[list[T]]:
    """``items`` in consecutive chunks of at most ``size``, order kept (pure)."""
    if size < 1:
        raise ValueError("size: must be >= 1")
    return [list(items[i : i + size]) for i in range(0, len(items), size)]


def estimate_tokens(texts: Iterable[str]) -> int:
    """A deliberately high token estimate of ``texts`` (pure; corrected after the call).

    About 4 ASCII characters a token, and one token for every other character (Chinese takes
    about 0.7-1.5 tokens a character depending on the tokenizer).
    """
    total = 0.0
    for text in texts:
        ascii_chars = sum(1 for ch in text if ord(ch) < 128)
        total += ascii_chars / 4 + (len(text) - ascii_chars)
    return math.ceil(total)


def estimate_chat_tokens(contents: Sequence[str]) -> int:
    """A chat call's token estimate: its messages, their overhead, and an answer (pure)."""
    return estimate_tokens(contents) + TOKENS_PER_MESSAGE * len(contents) + COMPLETION_ESTIMATE


def capped_retry_after(retry_after_s: float | None, budget_s: float) -> float | None:
    """A provider's ``Retry-After`` capped by the call budget (pure): a task never waits longer."""
    return None if retry_after_s is None else min(max(0.0, retry_after_s), budget_s)


# -- counters for metrics ----------------------------------------------------------------------


class LimitStats:
    """Per-process counters of what the limits cost, by provider key (thread-safe).

    ``waits``/``wait_s``: waits for the shared window; ``retry_after``/``retry_after_s``: 429s
    slept off in the call; ``refused``: calls that gave up because the wait exceeded the budget.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[tuple[str, str], float] = {}

    def add(self, key: str, name: str, amount: float = 1.0) -> None:
        """Add ``amount`` to counter ``name`` of provider ``key``."""
        with self._lock:
            self._counts[(key, name)] = self._counts.get((key, name), 0.0) + amount

    def snapshot(self) -> dict[str, dict[str, float]]:
        """``{key: {counter: value}}`` as of now."""
        out: dict[str, dict[str, float]] = {}
        with self._lock:
            for (key, name), value in self._counts.items():
                out.setdefault(key, {})[name] = value
        return out


# Process-wide like any metrics registry: every gate of the process adds to it.
_STATS = LimitStats()


def limit_stats() -> dict[str, dict[str, float]]:
    """This process's limiter counters by provider key (the hook for a metrics exporter).

    Keys are ``"chat|<provider id>"`` / ``"embeddings|<provider id>"``; counters ``waits``,
    ``wait_s``, ``retry_after``, ``retry_after_s`` and ``refused``.
    """
    return _STATS.snapshot()


# -- the gate ----------------------------------------------------------------------------------


class ProviderGate:
    """Runs one provider's calls inside its limits and budget (see the module docstring)."""

    def __init__(
        self,
        key: str,
        limits: RateLimits,
        limiter: ProviderLimiter | None,
        budget_s: float,
        timeout_s: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.key = key
        self.limits = limits
        self._limiter = limiter if not limits.unlimited else None
        self._budget_s = budget_s
        self._timeout_s = min(timeout_s, budget_s)
        self._clock = clock
        self._sleep = sleep

    @property
    def max_wait_s(self) -> float:
        """The longest wait a call starts: the budget less the request's reserve."""
        return self._budget_s - min(self._timeout_s, self._budget_s / 2)

    def call(
        self, send: Callable[[float], T], estimate: int, spent: Callable[[T], int | None]
    ) -> T:
        """``send(timeout_s)`` within the limits; ``spent(result)`` is the real token count."""
        start = self._clock()
        deadline, last_start = start + self._budget_s, start + self.max_wait_s
        tokens = self.limits.reservable(estimate)
        while True:
            grant_id = self._admit(last_start, tokens)
            try:
                result = send(max(0.001, min(self._timeout_s, deadline - self._clock())))
            except LLMRateLimited as e:
                wait = e.retry_after_s
                if wait is None or self._clock() + wait > last_start:
                    e.retry_after_s = capped_retry_after(wait, self._budget_s)
                    raise
                _STATS.add(self.key, "retry_after")
                _STATS.add(self.key, "retry_after_s", wait)
                log.warning("llm_retry_after", provider=self.key, wait_s=round(wait, 3))
                self._sleep(wait)
                continue
            self._settle(grant_id, tokens, spent(result))
            return result

    def _admit(self, last_start: float, tokens: int) -> str | None:
        """Take a place in the window, waiting while it is full; None when unlimited."""
        if self._limiter is None:
            return None
        grant_id = uuid.uuid4().hex
        while True:
            grant = self._limiter.acquire(self.key, grant_id, self.limits, tokens)
            if grant.admitted:
                return grant_id
            # A little jitter, so the workers woken by one expiry do not all ask at once.
            wait = grant.wait_s * (1 + random.uniform(0, 0.05))
            if self._clock() + wait > last_start:
                _STATS.add(self.key, "refused")
                raise LimitWaitTooLong(
                    f"{self.key}: the provider's limits need a {wait:.1f} s wait, more than the "
                    f"call may wait ({self.max_wait_s:.1f} s of its budget)",
                    retry_after_s=capped_retry_after(wait, self._budget_s),
                )
            _STATS.add(self.key, "waits")
            _STATS.add(self.key, "wait_s", wait)
            self._sleep(wait)

    def _settle(self, grant_id: str | None, reserved: int, real: int | None) -> None:
        if self._limiter is None or grant_id is None or self.limits.tpm <= 0 or real is None:
            return
        if real != reserved:
            self._limiter.settle(self.key, grant_id, max(0, real), self.limits)
