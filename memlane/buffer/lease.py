"""Per-user leases in Redis: SET NX PX with a fencing token from a counter, and tombstones.

A lease keeps consolidation, reflection and forgetting of one user from running at once. The
token is unique per grant and grows with every grant; every commit checks it, so a worker that
lost its lease (paused, partitioned) cannot overwrite the work of the worker that took over.

Two lifetimes. A lease granted by dispatch lives ``ttl_s``: the time its task may wait in the
queue. Once the task runs, a :class:`Heartbeat` renews it to ``running_ttl_s`` every third of
that, from a thread of its own (one LLM call may take minutes), so a worker killed mid-task frees
its users within seconds instead of after the queue allowance.

Forgetting wins. :meth:`Leases.seize_for_forget` takes the lease whoever holds it and leaves a
tombstone with its own token: every token granted before it is dead for good (renew and guard
refuse it), so a worker paused past the forget cannot write the user back. A store write made
under a lease goes through :meth:`Leases.guard` (lease and tombstone checked, and the memory ids
recorded, in one step) and :meth:`Leases.settle`; :mod:`memlane.buffer.forgetting` undoes what
slipped through between the two.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from types import TracebackType
from typing import Any, Generic, TypeVar

import redis

from memlane.buffer import lua
from memlane.buffer.keys import Keys
from memlane.constants import TOMBSTONE_TTL_S
from memlane.errors import LeaseLost, RedisUnavailable, UserBusy, UserForgotten
from memlane.logging import get_logger
from memlane.metrics import count_lease_loss

log = get_logger(__name__)
T = TypeVar("T")
# A recorded write older than this ended long ago (a store request times out in seconds); the
# next guard of the user prunes it.
INTENT_TTL_S = 3600
FORGOTTEN = -2


@dataclass(frozen=True, slots=True)
class Tombstone:
    """The user's last forget: its fencing token (every lower token is dead) and when (ms)."""

    token: int
    at_ms: int


@dataclass(frozen=True, slots=True)
class WriteIntent:
    """A store write recorded by :meth:`Leases.guard`: who (token), when (ms), which memories."""

    token: int
    at_ms: int
    ids: tuple[str, ...]


def _now_ms() -> int:
    return int(time.time() * 1000)


def _s(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class Leases:
    """Acquire, renew and release per-user leases; tombstones and guarded writes."""

    def __init__(
        self, client: redis.Redis, keys: Keys, ttl_s: float, running_ttl_s: float | None = None
    ) -> None:
        self._r = client
        self._keys = keys
        self._ttl_ms = int(ttl_s * 1000)
        self.running_ttl_s = running_ttl_s if running_ttl_s is not None else ttl_s
        self._renew = client.register_script(lua.RENEW)
        self._release = client.register_script(lua.RELEASE)
        self._guard = client.register_script(lua.GUARD)
        self._settle = client.register_script(lua.SETTLE_WRITE)
        self._forget = client.register_script(lua.FORGET)

    def acquire(self, user_id: str) -> str | None:
        """A fresh fencing token if the user's lease was free, else None."""
        try:
            token = str(self._r.incr(self._keys.fence))
            ok = self._r.set(self._keys.lease(user_id), token, nx=True, px=self._ttl_ms)
        except redis.RedisError as e:
            raise RedisUnavailable(f"lease acquire failed: {e}") from e
        return token if ok else None

    def renew(self, user_id: str, token: str, ttl_s: float | None = None) -> bool:
        """Extend our lease (or retake it if it lapsed) for ``ttl_s`` (default: the running TTL).

        False if someone else holds it, or if the user was forgotten after our grant.
        """
        return self._renew_status(user_id, token, ttl_s) > 0

    def check(self, user_id: str, token: str) -> None:
        """Renew, or raise :class:`UserForgotten` / :class:`LeaseLost` saying which."""
        status = self._renew_status(user_id, token, None)
        if status == FORGOTTEN:
            raise UserForgotten(f"user {user_id!r} was forgotten after lease {token} was granted")
        if status <= 0:
            raise LeaseLost(f"lease of user {user_id!r} is held by another worker")

    def hold_for_retry(self, user_id: str, token: str) -> bool:
        """Keep the lease for a task that will retry later (the queue allowance, ``ttl_s``)."""
        return self.renew(user_id, token, self._ttl_ms / 1000)

    def _renew_status(self, user_id: str, token: str, ttl_s: float | None) -> int:
        ttl_ms = int((ttl_s if ttl_s is not None else self.running_ttl_s) * 1000)
        keys = [self._keys.lease(user_id), self._keys.tombstone(user_id)]
        try:
            return int(self._renew(keys=keys, args=[token, ttl_ms]))
        except redis.RedisError as e:
            raise RedisUnavailable(f"lease renew failed: {e}") from e

    def release(self, user_id: str, token: str) -> bool:
        """Give the lease back if it is still ours."""
        try:
            return bool(self._release(keys=[self._keys.lease(user_id)], args=[token]))
        except redis.RedisError as e:
            raise RedisUnavailable(f"lease release failed: {e}") from e

    def holder(self, user_id: str) -> str | None:
        """The token currently holding the user's lease, if any."""
        value = self._r.get(self._keys.lease(user_id))
        return value.decode() if isinstance(value, bytes) else None

    def heartbeat(self, user_id: str, token: str) -> Heartbeat:
        """A context manager that keeps the lease alive while a task works."""
        return Heartbeat(self, user_id, token)

    # -- forgetting -------------------------------------------------------------------------

    def seize_for_forget(self, user_id: str) -> str:
        """Take the user's lease whoever holds it and leave a tombstone; returns our token."""
        keys = [self._keys.lease(user_id), self._keys.tombstone(user_id)]
        ttl_ms = int(self.running_ttl_s * 1000)
        try:
            token = str(self._r.incr(self._keys.fence))
            self._forget(keys=keys, args=[token, ttl_ms, TOMBSTONE_TTL_S, _now_ms()])
        except redis.RedisError as e:
            raise RedisUnavailable(f"forget could not fence the user: {e}") from e
        return token

    def tombstone(self, user_id: str) -> Tombstone | None:
        """The user's last forget, if it is recent enough to matter."""
        value = self._call(self._r.get, self._keys.tombstone(user_id))
        if value is None:
            return None
        token, _, at = _s(value).partition(" ")
        return Tombstone(int(token), int(at or 0))

    def guard(self, user_id: str, token: str, ids: Sequence[str]) -> None:
        """Right before a store write: renew, refuse a forgotten user, record the ids written.

        Raises :class:`UserForgotten` or :class:`LeaseLost` with nothing recorded.
        """
        k = self._keys
        keys = [k.lease(user_id), k.tombstone(user_id), k.writes(user_id)]
        ttl_ms = int(self.running_ttl_s * 1000)
        args: list[str | int] = [
            token,
            ttl_ms,
            _now_ms(),
            INTENT_TTL_S * 1000,
            json.dumps(list(ids)),
        ]
        try:
            status = int(self._guard(keys=keys, args=args))
        except redis.RedisError as e:
            raise RedisUnavailable(f"write guard failed: {e}") from e
        if status == FORGOTTEN:
            raise UserForgotten(f"user {user_id!r} was forgotten; nothing of lease {token} written")
        if status <= 0:
            raise LeaseLost(f"lease of user {user_id!r} lost before the store write")

    def settle(self, user_id: str, token: str) -> bool:
        """After a guarded write: drop its record; False (record kept) if the user was forgotten."""
        keys = [self._keys.tombstone(user_id), self._keys.writes(user_id)]
        try:
            return int(self._settle(keys=keys, args=[token])) > 0
        except redis.RedisError as e:
            raise RedisUnavailable(f"write settle failed: {e}") from e

    def intents(self, user_id: str) -> list[WriteIntent]:
        """The user's recorded writes that were not settled (in flight, or their worker died)."""
        found = []
        for token, value in self._call(self._r.hgetall, self._keys.writes(user_id)).items():
            at, _, ids = _s(value).partition(" ")
            found.append(WriteIntent(int(_s(token)), int(at), tuple(json.loads(ids or "[]"))))
        return sorted(found, key=lambda i: i.token)

    def drop_intent(self, user_id: str, token: int | str) -> None:
        """Forget a recorded write (it was settled or undone)."""
        self._call(self._r.hdel, self._keys.writes(user_id), str(token))

    def schedule_sweep(self, user_id: str, at_ms: int) -> None:
        """Sweep the forgotten user's stray writes again at ``at_ms``."""
        self._call(self._r.zadd, self._keys.sweeps, {user_id: at_ms})

    def due_sweeps(self, now_ms: int | None = None) -> list[str]:
        """Forgotten users whose stray writes are due for another sweep."""
        now = now_ms if now_ms is not None else _now_ms()
        return [_s(u) for u in self._call(self._r.zrangebyscore, self._keys.sweeps, "-inf", now)]

    def end_sweep(self, user_id: str) -> None:
        """Stop sweeping the user: whatever was in flight at the forget has landed."""
        self._call(self._r.zrem, self._keys.sweeps, user_id)

    def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except redis.RedisError as e:
            raise RedisUnavailable(f"redis call failed: {e}") from e


class Heartbeat:
    """Renews a lease to its running TTL every third of it, from a daemon thread, until closed.

    ``lost`` is set once renewing failed because another worker or a forget took the lease;
    writes are still checked by :meth:`Leases.guard`, so a missed beat costs no correctness.
    A Redis error skips one beat (the next one may succeed before the lease lapses).
    """

    def __init__(self, leases: Leases, user_id: str, token: str) -> None:
        self._leases = leases
        self._user_id = user_id
        self._token = token
        self.interval_s = leases.running_ttl_s / 3
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lease-heartbeat", daemon=True)

    def __enter__(self) -> Heartbeat:
        if self._beat():
            self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            if not self._beat():
                return

    def _beat(self) -> bool:
        try:
            if self._leases.renew(self._user_id, self._token):
                return True
        except RedisUnavailable as e:
            log.warning("lease_heartbeat_failed", user_id=self._user_id, error=str(e))
            return True
        self.lost.set()
        log.warning("lease_heartbeat_lost", user_id=self._user_id, token=self._token)
        return False


class Outcome(StrEnum):
    """How a run under a user's lease ended (:func:`run_leased`)."""

    DONE = "done"
    BUSY = "busy"  # another worker held the lease: nothing ran
    LOST = "lease_lost"  # the lease was lost while working: nothing more was written
    FORGOTTEN = "forgotten"  # the user was forgotten meanwhile: what was written is undone


@dataclass(frozen=True, slots=True)
class LeasedRun(Generic[T]):
    """The outcome of :func:`run_leased`, and the work's value when it is ``DONE``."""

    outcome: Outcome
    value: T | None = None

    def report(self) -> dict[str, bool]:
        """What a task reports when the work did not run to the end (empty when it did)."""
        if self.outcome is Outcome.LOST:
            return {"lease_lost": True}
        if self.outcome is Outcome.FORGOTTEN:
            return {"lease_lost": True, "forgotten": True}
        return {}


def run_leased(
    leases: Leases,
    user_id: str,
    work: Callable[[str], T],
    token: str | None = None,
    hold_on: tuple[type[BaseException], ...] = (),
) -> LeasedRun[T]:
    """Run ``work(token)`` under the user's lease; the one way a task works on a user.

    The lease is acquired (unless ``token`` was granted already, by dispatch), kept alive by a
    :class:`Heartbeat` while ``work`` runs, and released afterwards. A lost lease ends as
    ``LOST`` and a forgotten user as ``FORGOTTEN`` (logged without the user id). Any other
    error propagates; for one of ``hold_on`` (a task about to retry) the lease is kept for the
    queue allowance instead of released, so the retry finds the user still its own.
    """
    if token is None:
        token = leases.acquire(user_id)
        if token is None:
            return LeasedRun(Outcome.BUSY)
    release = True
    try:
        with leases.heartbeat(user_id, token):
            value = work(token)
    except UserForgotten:
        log.warning("user_forgotten_during_task")  # no user id: the user asked to be forgotten
        return LeasedRun(Outcome.FORGOTTEN)
    except LeaseLost:
        log.warning("lease_lost", user_id=user_id)
        count_lease_loss()
        return LeasedRun(Outcome.LOST)
    except hold_on:
        release = False
        _hold_for_retry(leases, user_id, token)
        raise
    finally:
        if release:
            leases.release(user_id, token)
    return LeasedRun(Outcome.DONE, value)


def run_leased_waiting(
    leases: Leases, user_id: str, work: Callable[[str], T], wait_s: float
) -> LeasedRun[T]:
    """:func:`run_leased` for a caller that waits (an edit or delete of the memory API).

    While a worker holds the user, try again with a growing pause, for at most ``wait_s``;
    past it :class:`~memlane.errors.UserBusy` says to retry. Never ``BUSY`` otherwise.
    """
    deadline = time.monotonic() + wait_s
    delay = 0.02
    while (run := run_leased(leases, user_id, work)).outcome is Outcome.BUSY:
        if time.monotonic() >= deadline:
            raise UserBusy(
                f"user_id: a worker has held this user's memories for over {wait_s:g} s; retry"
            )
        time.sleep(delay)
        delay = min(delay * 2, 0.25)
    return run


def _hold_for_retry(leases: Leases, user_id: str, token: str) -> None:
    """Keep the user for the retry: the heartbeat stopped, and the running TTL is short."""
    try:
        leases.hold_for_retry(user_id, token)
    except RedisUnavailable as e:  # the lease lapses; dispatch hands the user out again
        log.warning("lease_hold_failed", user_id=user_id, error=str(e))
