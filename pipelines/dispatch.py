"""Dispatching: find users whose buffered turns are ready and hand each to one worker."""

from __future__ import annotations

import time
from collections.abc import Callable

from memlane.buffer.lease import Leases
from memlane.buffer.turns import TurnBuffer, ready_users
from memlane.config_sections import BatchingSettings
from memlane.logging import get_logger

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
