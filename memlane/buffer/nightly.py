"""Once-per-night fan-out in bounded waves, safe when several beats fire at once.

The first firing of a night claims a marker and snapshots the users due, in one atomic step; a
second beat firing the same entry finds the marker and does nothing. The snapshot is then
handed out in waves of ``wave_size`` users, each wave claimed by its own marker, so a wave that
is delivered twice (a redelivered task) is still sent once.
"""

from __future__ import annotations

from collections.abc import Sequence

import redis

from memlane.buffer import lua
from memlane.buffer.keys import Keys
from memlane.errors import RedisUnavailable

NIGHT_TTL_S = 36 * 3600


class NightlyFanOut:
    """The markers and user snapshot of one nightly ``job`` (named by the pipelines' jobs)."""

    def __init__(self, client: redis.Redis, keys: Keys, job: str, wave_size: int = 50) -> None:
        self._r = client
        self._keys = keys
        self.job = job
        self.wave_size = wave_size
        self._start = client.register_script(lua.NIGHT_START)

    def start(self, night: str, users: Sequence[str]) -> bool:
        """Claim the night and snapshot ``users``; False if this night was already claimed."""
        keys = [self._keys.night_claim(self.job, night), self._keys.night_users(self.job, night)]
        try:
            return bool(self._start(keys=keys, args=[NIGHT_TTL_S, *users]))
        except redis.RedisError as e:
            raise RedisUnavailable(f"nightly claim failed: {e}") from e

    def wave(self, night: str, offset: int) -> list[str] | None:
        """The users of the wave at ``offset``, or None if that wave was already handed out."""
        marker = self._keys.night_wave(self.job, night, offset)
        try:
            if not self._r.set(marker, "1", nx=True, ex=NIGHT_TTL_S):
                return None
            found: list[bytes] = self._r.lrange(  # type: ignore[assignment]
                self._keys.night_users(self.job, night), offset, offset + self.wave_size - 1
            )
        except redis.RedisError as e:
            raise RedisUnavailable(f"nightly wave failed: {e}") from e
        return [u.decode() for u in found]
