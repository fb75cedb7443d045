"""Dispatching, every few seconds: hand each user whose turns are ready to one worker, and sweep
what writes of forgotten users may have left (:func:`memlane.buffer.forgetting.sweep_due`)."""

from __future__ import annotations

import time
from collections.abc import Callable

from memlane.buffer.forgetting import MemoryDeleter, sweep_due
from memlane.buffer.lease import Leases
from memlane.buffer.turns import TurnBuffer
from memlane.config_sections import BatchingSettings
from memlane.errors import Retryable
from memlane.logging import get_logger
from pipelines.consolidation.rules import ready_users

log = get_logger(__name__)


def dispatch_ready(
    buffer: TurnBuffer,
    leases: Leases,
    batching: BatchingSettings,
    enqueue: Callable[[str, str], None],
    now_ms: int | None = None,
) -> list[str]:
    """Lease every ready user and enqueue their consolidation; returns the users enqueued.

    A user whose lease is held (a worker is on it, or another beat got there first) is
    skipped, which is what keeps two beat processes from double-dispatching.
    """
    now = now_ms if now_ms is not None else int(time.time() * 1000)
    users = ready_users(
        buffer.pending_users(),
        now,
        batching.batch_max_turns,
        batching.max_wait_s,
        batching.idle_s,
    )
    sent = []
    for user_id in users:
        token = leases.acquire(user_id)
        if token is None:
            continue
        try:
            enqueue(user_id, token)
        except Exception:
            leases.release(user_id, token)  # let the next dispatch try again
            log.exception("enqueue_failed", user_id=user_id)
            raise
        sent.append(user_id)
    return sent


def dispatch(
    buffer: TurnBuffer,
    leases: Leases,
    store: Callable[[], MemoryDeleter],
    batching: BatchingSettings,
    enqueue: Callable[[str, str], None],
) -> list[str]:
    """One beat of dispatch: :func:`dispatch_ready`, then the due sweeps of forgotten users.

    The store is built only if a sweep is due. A sweep that fails is logged and retried at the
    next beat (it is rare: only after a forget that found a write of the user under way).
    """
    sent = dispatch_ready(buffer, leases, batching, enqueue)
    try:
        sweep_due(leases, store)
    except Retryable as e:
        log.warning("forget_sweep_failed", error=str(e))
    return sent
