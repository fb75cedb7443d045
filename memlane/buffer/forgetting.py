"""Forget wins, even over store writes that were already under way.

``forget_user`` fences the user first (:meth:`memlane.buffer.lease.Leases.seize_for_forget`):
from then on no write can *start* under a lease granted before the forget, because every write
goes through :meth:`~memlane.buffer.lease.Leases.guard`, which checks the lease and the
tombstone in one step right before it. A write that passed its guard before the forget can still
land after it: its worker was paused between guard and write (a VM freeze), or its request was
in flight. Two things undo such a write:

- its own worker: :func:`guarded_write` settles after writing and, if the user was forgotten
  meanwhile, deletes the memories it wrote (compensation) and raises :class:`UserForgotten`;
- a worker that died between its write and its compensation cannot; its guard left the memory
  ids in Redis, and :func:`sweep_forgotten` deletes them, when the forget runs and again every
  few seconds for ``STRAY_WRITE_GRACE_S`` after it, longer than a dead worker's last request can
  take to land. Dispatch runs the sweeps that are due (:func:`sweep_due`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Protocol

from memlane.buffer.lease import Leases
from memlane.constants import STRAY_WRITE_GRACE_S, STRAY_WRITE_SWEEP_S
from memlane.errors import LeaseLost, UserForgotten
from memlane.logging import get_logger

log = get_logger(__name__)


class MemoryDeleter(Protocol):
    """The one store operation undoing a write needs (any ``MemoryStore`` has it).

    A protocol, not the store itself, so this module stays beside the leases in
    :mod:`memlane.buffer` without depending on :mod:`memlane.store`.
    """

    def delete(self, user_id: str, ids: Sequence[str]) -> int:
        """Delete some of the user's memories; returns how many were deleted."""


# What pipelines receive to wrap their store writes: called with the ids about to be written.
WriteGuard = Callable[[Sequence[str]], AbstractContextManager[None]]


def unguarded(ids: Sequence[str]) -> AbstractContextManager[None]:
    """A guard that checks nothing (tests and callers that hold no lease)."""
    return nullcontext()


@contextmanager
def guarded_write(
    leases: Leases, store: MemoryDeleter, user_id: str, token: str, ids: Sequence[str]
) -> Iterator[None]:
    """Run the store writes of ``ids`` under the lease ``token``; forget wins over them.

    Before: :meth:`Leases.guard` (raises :class:`LeaseLost`/:class:`UserForgotten`, nothing
    written). After: if the user was forgotten meanwhile, or the block raised
    :class:`LeaseLost` (a commit found the lease gone) because of a forget, the ids are deleted
    again and :class:`UserForgotten` is raised. Any other error keeps the record of the write,
    so a later forget sweeps what part of it landed.
    """
    leases.guard(user_id, token, ids)
    try:
        yield
    except LeaseLost as e:
        if _forgotten_since(leases, user_id, token):
            compensate(leases, store, user_id, token, ids)
            raise UserForgotten(f"user {user_id!r} was forgotten during a write; undone") from e
        leases.drop_intent(user_id, token)  # another worker took over; it writes the same ids
        raise
    if not leases.settle(user_id, token):
        compensate(leases, store, user_id, token, ids)
        raise UserForgotten(f"user {user_id!r} was forgotten during a write; undone")


def _forgotten_since(leases: Leases, user_id: str, token: str) -> bool:
    tomb = leases.tombstone(user_id)
    return tomb is not None and tomb.token > int(token)


def compensate(
    leases: Leases, store: MemoryDeleter, user_id: str, token: str, ids: Sequence[str]
) -> int:
    """Delete what a write of a since-forgotten user put in the store; drop its record."""
    deleted = store.delete(user_id, list(ids)) if ids else 0
    leases.drop_intent(user_id, token)
    # No user id in the log line: the user asked to be forgotten.
    log.warning("forgotten_user_write_undone", memories=deleted)
    return deleted


def start_sweeping(leases: Leases, user_id: str, forget_token: str) -> bool:
    """At a forget: if writes granted earlier are in flight, schedule sweeps of them."""
    if any(i.token < int(forget_token) for i in leases.intents(user_id)):
        leases.schedule_sweep(user_id, _now_ms())
        return True
    return False


def sweep_forgotten(leases: Leases, store: MemoryDeleter, user_id: str) -> bool:
    """Delete what writes granted before the user's forget left; True when done watching.

    Only writes recorded before the forget can be stray (a later one fails its guard), so once
    none is left, or the grace period after the forget has passed, nothing more can land.
    """
    tomb = leases.tombstone(user_id)
    if tomb is None:
        return True
    stray = [i for i in leases.intents(user_id) if i.token < tomb.token]
    deleted = sum(store.delete(user_id, list(i.ids)) for i in stray if i.ids)
    if deleted:
        log.warning("forgotten_user_writes_swept", memories=deleted)
    done = _now_ms() >= tomb.at_ms + STRAY_WRITE_GRACE_S * 1000
    if done:
        for intent in stray:
            leases.drop_intent(user_id, intent.token)
    return done or not stray


def sweep_due(leases: Leases, store: Callable[[], MemoryDeleter]) -> int:
    """Run the due sweeps of forgotten users (``store`` is built only if one is due)."""
    users = leases.due_sweeps()
    for user_id in users:
        if sweep_forgotten(leases, store(), user_id):
            leases.end_sweep(user_id)
        else:
            leases.schedule_sweep(user_id, _now_ms() + int(STRAY_WRITE_SWEEP_S * 1000))
    return len(users)


def _now_ms() -> int:
    return int(time.time() * 1000)
