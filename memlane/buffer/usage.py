"""Token usage counters in Redis: per day, per user and model, for ``memlane stats``.

Each call adds to one hash per day (``Keys.usage(day)``) under the fields
``user|model|prompt_tokens``, ``user|model|completion_tokens`` and ``user|model|calls``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import redis

from memlane.buffer.keys import Keys
from memlane.errors import RedisUnavailable
from memlane.llm.chat import Usage
from memlane.logging import get_logger

log = get_logger(__name__)
USAGE_TTL_S = 400 * 24 * 3600  # a bit more than a year of daily hashes
FIELDS = ("prompt_tokens", "completion_tokens", "calls")


def usage_fields(user_id: str, usage: Usage) -> dict[str, int]:
    """The hash fields one call adds to (pure)."""
    base = f"{user_id}|{usage.model}"
    return {
        f"{base}|prompt_tokens": usage.prompt_tokens,
        f"{base}|completion_tokens": usage.completion_tokens,
        f"{base}|calls": 1,
    }


def parse_usage(raw: dict[str, int]) -> dict[tuple[str, str], dict[str, int]]:
    """``{(user, model): {"prompt_tokens": n, ...}}`` from a day's hash (pure)."""
    out: dict[tuple[str, str], dict[str, int]] = {}
    for name, value in raw.items():
        user, model, field = name.rsplit("|", 2)
        out.setdefault((user, model), dict.fromkeys(FIELDS, 0))[field] = int(value)
    return out


class UsageRecorder:
    """Adds each LLM call's tokens to the day's counters."""

    def __init__(
        self,
        client: redis.Redis,
        keys: Keys,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._r = client
        self._keys = keys
        self._clock = clock

    def record(self, user_id: str, usage: Usage) -> None:
        """Count one call. A Redis failure is logged, never raised: it must not fail a batch."""
        key = self._keys.usage(self._clock().strftime("%Y-%m-%d"))
        pipe = self._r.pipeline(transaction=False)
        for field, amount in usage_fields(user_id, usage).items():
            pipe.hincrby(key, field, amount)
        pipe.expire(key, USAGE_TTL_S)
        try:
            pipe.execute()
        except redis.RedisError as e:
            log.warning("usage_record_failed", user_id=user_id, model=usage.model, error=str(e))

    def day(self, day: str) -> dict[tuple[str, str], dict[str, int]]:
        """The counters of one day (``YYYY-MM-DD``) by (user, model)."""
        raw: dict[Any, Any] = self._r.hgetall(self._keys.usage(day))  # type: ignore[assignment]
        return parse_usage({_s(k): int(v) for k, v in raw.items()})

    def days(self, days: list[str]) -> list[dict[tuple[str, str], dict[str, int]]]:
        """The counters of several days, in one round trip (same order as ``days``)."""
        pipe = self._r.pipeline(transaction=False)
        for day in days:
            pipe.hgetall(self._keys.usage(day))
        try:
            raws: list[Any] = pipe.execute()
        except redis.RedisError as e:
            raise RedisUnavailable(f"usage read failed: {e}") from e
        return [parse_usage({_s(k): int(v) for k, v in raw.items()}) for raw in raws]

    def forget(self, user_id: str) -> int:
        """Delete the user's counters from every day; returns how many fields went."""
        removed = 0
        for key in self._r.scan_iter(match=self._keys.usage("*"), count=500):
            names = [_s(f) for f in self._r.hkeys(key)]  # type: ignore[union-attr]
            # Field names are "user|model|field"; user ids may hold "|", so split from the right.
            fields = [f for f in names if f.rsplit("|", 2)[0] == user_id]
            if fields:
                removed += int(self._r.hdel(key, *fields))  # type: ignore[arg-type]
        return removed


def _s(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
