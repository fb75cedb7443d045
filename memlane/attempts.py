"""Per-batch attempt counters in Redis, surviving worker crashes."""

from __future__ import annotations

import redis

from memlane.errors import BufferUnavailable
from memlane.keys import Keys


class RedisAttempts:
    """Counts consolidation attempts per batch id."""

    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self._r = client
        self._keys = keys

    def incr(self, batch_id: str) -> int:
        """One more attempt at ``batch_id``; returns the total."""
        try:
            return int(self._r.hincrby(self._keys.attempts, batch_id, 1))  # type: ignore[arg-type]
        except redis.RedisError as e:
            raise BufferUnavailable(f"attempt counter failed: {e}") from e

    def forgive(self, batch_id: str) -> None:
        """Take back one attempt that ended in a transient fault (never below zero)."""
        try:
            left = self._r.hincrby(self._keys.attempts, batch_id, -1)
            if int(left) <= 0:  # type: ignore[arg-type]
                self._r.hdel(self._keys.attempts, batch_id)
        except redis.RedisError as e:
            raise BufferUnavailable(f"attempt counter failed: {e}") from e

    def clear(self, batch_id: str) -> None:
        """Forget the count of a finished batch."""
        try:
            self._r.hdel(self._keys.attempts, batch_id)
        except redis.RedisError as e:
            raise BufferUnavailable(f"attempt counter failed: {e}") from e
