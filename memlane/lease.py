"""Per-user leases in Redis: SET NX PX with a fencing token from a counter.

A lease keeps consolidation, reflection and forgetting of one user from running at once. The
token is unique per grant; every commit checks it, so a worker that lost its lease (paused,
partitioned) cannot overwrite the work of the worker that took over.
"""

from __future__ import annotations

import redis

from memlane import buffer_lua
from memlane.errors import BufferUnavailable
from memlane.keys import Keys


class Leases:
    """Acquire, renew and release per-user leases."""

    def __init__(self, client: redis.Redis, keys: Keys, ttl_s: float) -> None:
        self._r = client
        self._keys = keys
        self._ttl_ms = int(ttl_s * 1000)
        self._renew = client.register_script(buffer_lua.RENEW)
        self._release = client.register_script(buffer_lua.RELEASE)

    def acquire(self, user_id: str) -> str | None:
        """A fresh fencing token if the user's lease was free, else None."""
        try:
            token = str(self._r.incr(self._keys.fence))
            ok = self._r.set(self._keys.lease(user_id), token, nx=True, px=self._ttl_ms)
        except redis.RedisError as e:
            raise BufferUnavailable(f"lease acquire failed: {e}") from e
        return token if ok else None

    def renew(self, user_id: str, token: str) -> bool:
        """Extend our lease (or retake it if it lapsed). False if someone else holds it."""
        try:
            return bool(self._renew(keys=[self._keys.lease(user_id)], args=[token, self._ttl_ms]))
        except redis.RedisError as e:
            raise BufferUnavailable(f"lease renew failed: {e}") from e

    def release(self, user_id: str, token: str) -> bool:
        """Give the lease back if it is still ours."""
        try:
            return bool(self._release(keys=[self._keys.lease(user_id)], args=[token]))
        except redis.RedisError as e:
            raise BufferUnavailable(f"lease release failed: {e}") from e

    def holder(self, user_id: str) -> str | None:
        """The token currently holding the user's lease, if any."""
        value = self._r.get(self._keys.lease(user_id))
        return value.decode() if isinstance(value, bytes) else None
