"""Counts of observations written since a user's last reflection (``Keys.unreflected``), and
the marker of an early reflection on its way (``Keys.early_reflection``).

Consolidation adds the observations it wrote; reflection settles the count by what it covered.
Each is one atomic Redis step. The count is a trigger, not the truth: reflection finds its work
by the ``reflected`` tag on observations, and re-sets the count to what it left behind.
"""

from __future__ import annotations

from typing import Any

import redis

from memlane.buffer import lua
from memlane.buffer.keys import Keys
from memlane.errors import RedisUnavailable

EARLY_MARKER_TTL_S = 600  # a burst of batches enqueues at most one early reflection per 10 min


class UnreflectedCounter:
    """The per-user unreflected-observation counts in one Redis sorted set."""

    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self._r = client
        self._keys = keys
        self._key = keys.unreflected
        self._settle = client.register_script(lua.SETTLE_UNREFLECTED)

    def add(self, user_id: str, observations: int) -> int:
        """Count newly written observations; returns the user's new total."""
        try:
            return int(self._r.zincrby(self._key, observations, user_id))  # type: ignore[arg-type]
        except redis.RedisError as e:
            raise RedisUnavailable(f"unreflected count failed: {e}") from e

    def settle(self, user_id: str, covered: int, remaining: int) -> int:
        """After a reflection: subtract ``covered``; keep at least ``remaining``; 0 drops."""
        try:
            return int(self._settle(keys=[self._key], args=[user_id, covered, remaining]))
        except redis.RedisError as e:
            raise RedisUnavailable(f"unreflected settle failed: {e}") from e

    def count(self, user_id: str) -> int:
        """The user's current count (0 when absent)."""
        try:
            score: Any = self._r.zscore(self._key, user_id)
        except redis.RedisError as e:
            raise RedisUnavailable(f"unreflected read failed: {e}") from e
        return int(score or 0)

    def due(self) -> list[str]:
        """Every user with at least one unreflected observation, most behind first."""
        try:
            found: list[bytes] = self._r.zrevrangebyscore(self._key, "+inf", 1)  # type: ignore[assignment]
        except redis.RedisError as e:
            raise RedisUnavailable(f"unreflected read failed: {e}") from e
        return [u.decode() if isinstance(u, bytes) else str(u) for u in found]

    def claim_early(self, user_id: str, ttl_s: int = EARLY_MARKER_TTL_S) -> bool:
        """Mark an early reflection of the user as on its way; False if one already is."""
        try:
            marker = self._keys.early_reflection(user_id)
            return bool(self._r.set(marker, "1", nx=True, ex=ttl_s))
        except redis.RedisError as e:
            raise RedisUnavailable(f"early reflection marker failed: {e}") from e

    def end_early(self, user_id: str) -> None:
        """A reflection of the user ran: the next burst may trigger an early one again."""
        try:
            self._r.delete(self._keys.early_reflection(user_id))
        except redis.RedisError as e:
            raise RedisUnavailable(f"early reflection marker failed: {e}") from e
