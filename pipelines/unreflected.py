"""Counts of observations written since a user's last reflection (``Keys.unreflected``).

Consolidation adds the observations it wrote; reflection settles the count by what it covered.
Both hold the user's lease while they touch it, so the count of one user never races. The count
is a trigger, not the truth: reflection finds its work by the ``reflected`` tag on observations,
and re-sets the count to what it left behind.
"""

from __future__ import annotations

from typing import Any

import redis

from memlane.errors import RedisUnavailable
from memlane.keys import Keys

# Take off what reflection covered; drop the user when nothing is left, and never leave the
# count below the observations the run knowingly left for later.
_SETTLE = """
local v = tonumber(redis.call('ZINCRBY', KEYS[1], -tonumber(ARGV[2]), ARGV[1]))
local remaining = tonumber(ARGV[3])
if remaining <= 0 then
  redis.call('ZREM', KEYS[1], ARGV[1])
  return 0
end
if v < remaining then
  redis.call('ZADD', KEYS[1], remaining, ARGV[1])
  return remaining
end
return v
"""


class UnreflectedCounter:
    """The per-user unreflected-observation counts in one Redis sorted set."""

    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self._r = client
        self._key = keys.unreflected
        self._settle = client.register_script(_SETTLE)

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
