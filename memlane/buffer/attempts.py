"""Per-batch attempt counters in Redis, surviving worker crashes, not charged for shutdowns.

An attempt is counted when a batch starts (a crash cannot count itself afterwards), together
with the worker that started it: the *holder*, one id per worker main process and its pool.
A worker that is stopped on purpose first records its id in a "stopped workers" set
(:meth:`RedisAttempts.mark_stopping`). When the batch starts again and its last attempt was
held by a worker in that set, and never ended (a success, a park or a transient fault clears
the holder), that attempt was cut short by the shutdown: it is given back. So ``memlane up``
restarted many times during a slow batch never dead-letters it, while a batch that keeps
killing its worker still runs out of attempts.

The hash value is ``"<count>|<holder>"``; a bare count (written by older versions) reads as
an attempt with no holder.
"""

from __future__ import annotations

import time

import redis

from memlane.buffer import lua
from memlane.buffer.keys import Keys
from memlane.errors import RedisUnavailable

STOPPED_KEEP_S = 30 * 24 * 3600  # a stopped worker is remembered this long


class RedisAttempts:
    """Counts consolidation attempts per batch id, on behalf of one worker (``holder``)."""

    def __init__(self, client: redis.Redis, keys: Keys, holder: str = "") -> None:
        self._r = client
        self._keys = keys
        self.holder = holder  # "" for callers outside a worker: nothing to give back

    def incr(self, batch_id: str) -> int:
        """One more attempt at ``batch_id``; returns the total (see the module docstring)."""
        keys = [self._keys.attempts, self._keys.stopped_workers]
        return int(self._eval(lua.ATTEMPT_START, keys, batch_id, self.holder))

    def forgive(self, batch_id: str) -> None:
        """Take back one attempt that ended in a transient fault (never below zero)."""
        self._eval(lua.ATTEMPT_FORGIVE, [self._keys.attempts], batch_id)

    def clear(self, batch_id: str) -> None:
        """Forget the count of a finished batch."""
        try:
            self._r.hdel(self._keys.attempts, batch_id)
        except redis.RedisError as e:
            raise RedisUnavailable(f"attempt counter failed: {e}") from e

    def mark_stopping(self) -> None:
        """Record that this worker is being stopped on purpose (called once, at shutdown)."""
        if not self.holder:
            return
        now = time.time()
        try:
            pipe = self._r.pipeline(transaction=True)
            pipe.zadd(self._keys.stopped_workers, {self.holder: now})
            pipe.zremrangebyscore(self._keys.stopped_workers, "-inf", now - STOPPED_KEEP_S)
            pipe.execute()
        except redis.RedisError as e:
            raise RedisUnavailable(f"could not record the worker's shutdown: {e}") from e

    def stop_requested(self) -> bool:
        """Whether this worker is being stopped: consolidation then starts no new batch."""
        if not self.holder:
            return False
        try:
            return self._r.zscore(self._keys.stopped_workers, self.holder) is not None
        except redis.RedisError as e:
            raise RedisUnavailable(f"attempt counter failed: {e}") from e

    def _eval(self, script: str, keys: list[str], *args: str) -> int:
        try:
            return int(self._r.eval(script, len(keys), *keys, *args))  # type: ignore[arg-type]
        except redis.RedisError as e:
            raise RedisUnavailable(f"attempt counter failed: {e}") from e
