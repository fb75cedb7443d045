"""What Redis holds, as Prometheus metrics computed at scrape time (a custom collector).

Buffered turns and users, the age of the oldest buffered turn, the dead letters parked now and
what the extraction checks refused or repaired per model (``memlane stats`` shows the same).
They are read when Prometheus scrapes, not counted in a process: every exporter (the HTTP
service, each worker's) reports the same values, so a dashboard takes ``max`` over them.

No user id reaches a label: the per-user figures are summed (:func:`summarise`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import redis

from memlane.buffer.rejections import RejectionCounter
from memlane.buffer.turns import PendingUser, TurnBuffer, entry_ms
from memlane.errors import MemlaneError
from memlane.logging import get_logger
from memlane.metrics import PREFIX

log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class BufferSummary:
    """The buffer at one moment, with no user named."""

    turns: int
    users: int
    oldest_age_s: float


def summarise(users: Sequence[PendingUser], oldest_ms: Sequence[int], now_ms: int) -> BufferSummary:
    """Totals over the pending users; ``oldest_ms`` is each user's oldest turn's arrival (pure)."""
    oldest = min(oldest_ms, default=now_ms)
    return BufferSummary(
        turns=sum(u.length for u in users),
        users=len(users),
        oldest_age_s=max(0.0, (now_ms - oldest) / 1000),
    )


class BufferCollector:
    """A ``prometheus_client`` collector reading the buffer at each scrape.

    When Redis does not answer, only ``memlane_redis_up 0`` is reported (the scrape itself
    still succeeds, so the outage shows on the dashboard instead of as a missing target).
    ``buffer`` and ``checks`` are called at each scrape: building the collector connects to
    nothing.
    """

    def __init__(
        self,
        buffer: Callable[[], TurnBuffer],
        checks: Callable[[], RejectionCounter],
        clock_ms: Callable[[], int] = lambda: int(time.time() * 1000),
    ) -> None:
        self._buffer = buffer
        self._checks = checks
        self._clock_ms = clock_ms

    def collect(self) -> Iterator[Any]:
        """The metric families, read from Redis now."""
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        try:
            summary, parked, checks = self._read()
        except MemlaneError as e:
            log.warning("metrics_redis_unavailable", error=str(e))
            yield GaugeMetricFamily(f"{PREFIX}_redis_up", "Redis answered this scrape", 0)
            return
        yield GaugeMetricFamily(f"{PREFIX}_redis_up", "Redis answered this scrape", 1)
        yield GaugeMetricFamily(
            f"{PREFIX}_buffered_turns", "Turns waiting for consolidation", summary.turns
        )
        yield GaugeMetricFamily(
            f"{PREFIX}_buffered_users", "Users with turns waiting", summary.users
        )
        yield GaugeMetricFamily(
            f"{PREFIX}_oldest_pending_age_seconds",
            "How long the oldest buffered turn has waited",
            summary.oldest_age_s,
        )
        yield GaugeMetricFamily(
            f"{PREFIX}_dead_letters_parked", "Dead letters waiting for replay", parked
        )
        family = CounterMetricFamily(
            f"{PREFIX}_llm_checks",
            "Extraction checks that refused or repaired a model's output",
            labels=("model", "check"),
        )
        for model, counts in sorted(checks.items()):
            for check, n in sorted(counts.items()):
                family.add_metric([model, check], n)
        yield family

    def _read(self) -> tuple[BufferSummary, int, dict[str, dict[str, int]]]:
        now = self._clock_ms()
        buffer = self._buffer()
        users = buffer.pending_users()
        # A flushed user is scored 0 in the pending index: read the real arrival of its turn.
        oldest = [u.oldest_ms if u.oldest_ms > 0 else _first_ms(buffer, u.user_id) for u in users]
        parked = buffer.dead_letter_count()
        try:
            checks = self._checks().by_model()
        except redis.RedisError as e:
            raise MemlaneError(f"reading the check counters failed: {e}") from e
        return summarise(users, [ms for ms in oldest if ms > 0], now), parked, checks


def _first_ms(buffer: TurnBuffer, user_id: str) -> int:
    first = buffer.read(user_id, 1)
    return entry_ms(first[0].entry_id) if first else 0
