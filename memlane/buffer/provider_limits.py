"""The provider limits' shared window in Redis: a :class:`memlane.llm.limits.ProviderLimiter`.

Every worker (and every client process that embeds through a remote endpoint) counts its calls
to a provider in one sliding window per provider key, kept by the Lua scripts ``LIMIT_ACQUIRE``
and ``LIMIT_SETTLE`` (:mod:`.lua`) on Redis's own clock. A Redis failure raises
:class:`RedisUnavailable` (Retryable): the call is not sent, the task retries, no batch is lost.
"""

from __future__ import annotations

from typing import Any

import redis

from memlane.buffer import lua
from memlane.buffer.keys import Keys
from memlane.errors import RedisUnavailable
from memlane.llm.limits import Grant, RateLimits


class RedisProviderLimiter:
    """Sliding windows of requests and tokens per provider key, shared through Redis."""

    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self._r = client
        self._keys = keys

    def acquire(self, key: str, grant_id: str, limits: RateLimits, tokens: int) -> Grant:
        """Record ``grant_id`` in ``key``'s window if it has room, else say how long to wait."""
        window_ms = max(1, round(limits.window_s * 1000))
        reply = self._eval(
            lua.LIMIT_ACQUIRE,
            key,
            grant_id,
            str(max(0, tokens)),
            str(limits.requests_per_window),
            str(limits.tokens_per_window),
            str(window_ms),
        )
        admitted, wait_ms = int(reply[0]), int(reply[1])
        return Grant(admitted=admitted == 1, wait_s=max(0, wait_ms) / 1000.0)

    def settle(self, key: str, grant_id: str, tokens: int, limits: RateLimits) -> None:
        """Correct ``grant_id``'s reserved tokens to those spent (no-op once it left the window)."""
        self._eval(lua.LIMIT_SETTLE, key, grant_id, str(max(0, tokens)))

    def _eval(self, script: str, key: str, *args: str) -> Any:
        keys = [self._keys.limit_window(key), self._keys.limit_tokens(key)]
        try:
            return self._r.eval(script, len(keys), *keys, *args)  # type: ignore[arg-type]
        except redis.RedisError as e:
            raise RedisUnavailable(f"provider limit {key}: Redis failed: {e}") from e
