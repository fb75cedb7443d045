"""Worker and beat process life cycle: a deliberate stop recorded so it costs no batch an
attempt, and beat logs that stay quiet during a Redis outage.

(Celery's prefork pool already ties each pool process to the worker with PR_SET_PDEATHSIG,
SIGKILL; ``tests/fault/test_warm_stop.py`` checks that a busy one dies with its worker.)
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any

from celery import signals
from celery.beat import PersistentScheduler, ScheduleEntry

from memlane.buffer.attempts import RedisAttempts
from memlane.buffer.connection import connect_redis
from memlane.buffer.keys import Keys
from memlane.config import Settings
from memlane.errors import MemlaneError
from memlane.llm.core_slots import borrow_idle_cores
from memlane.logging import get_logger

log = get_logger(__name__)


def connect_worker_signals(settings: Settings, worker_id: str) -> None:
    """Wire the worker's signal handlers (call in the worker's main process, before the pool).

    ``worker_id`` is the wiring's (``tasks.app.wiring_of(app).worker_id``): the holder its
    attempts are recorded under.
    """
    main_pid = os.getpid()
    recorded: list[bool] = []

    def on_shutting_down(**_: Any) -> None:
        # Fired for the warm stop and again for the cold one; one record is enough.
        if os.getpid() == main_pid and not recorded:
            recorded.append(True)
            record_stop(settings, worker_id)

    signals.worker_shutting_down.connect(on_shutting_down, weak=False)


def hold_a_core_per_task(settings: Settings) -> None:
    """Let a consolidating worker borrow idle cores to embed, holding its own core per task.

    Call in the worker's main process, before the pool: the policy is inherited by the pool
    processes, where each task holds its core from ``task_prerun`` to ``task_postrun``
    (:mod:`memlane.llm.core_slots`).
    """
    emb = settings.embedding
    policy = borrow_idle_cores(emb.worker_threads, emb.worker_max_threads)
    if policy is None or emb.base_url:
        return

    def on_prerun(**_: Any) -> None:
        policy.begin_task()

    def on_postrun(**_: Any) -> None:
        policy.end_task()

    signals.task_prerun.connect(on_prerun, weak=False)
    signals.task_postrun.connect(on_postrun, weak=False)


def record_stop(settings: Settings, worker_id: str) -> None:
    """Mark this worker as stopped on purpose, so its interrupted batches get their attempt back.

    Called from Celery's signal handler for SIGTERM/SIGINT/SIGQUIT in the main process, so it
    uses a connection of its own. If Redis is unreachable the stop is not recorded and an
    interrupted batch is charged as if it had crashed: at most one attempt, never a lost turn.
    """
    client = connect_redis(settings)
    try:
        RedisAttempts(client, Keys(settings.redis.key_prefix), holder=worker_id).mark_stopping()
        log.info("worker_stopping", worker=worker_id)
    except MemlaneError as e:
        log.warning("worker_stop_not_recorded", worker=worker_id, error=str(e))
    finally:
        client.close()


@dataclass
class OutageLog:
    """Decides which failures of a repeating action are worth a log line (pure, clock given).

    The first failure is logged, then one summary every ``every_s`` while it keeps failing,
    and one line when it works again: a Redis outage costs beat a handful of lines, not a
    traceback every dispatch interval.
    """

    every_s: float = 60.0
    failing_since: float | None = None
    suppressed: int = 0
    last_logged: float = 0.0

    def failed(self, now: float) -> int | None:
        """Record a failure: the number of failures left unlogged since the last line when this
        one should be logged, None when it should not."""
        if self.failing_since is None:
            self.failing_since = self.last_logged = now
            self.suppressed = 0
            return 0
        if now - self.last_logged >= self.every_s:
            quiet, self.suppressed, self.last_logged = self.suppressed, 0, now
            return quiet
        self.suppressed += 1
        return None

    def succeeded(self) -> float | None:
        """Record a success; returns how long the outage lasted when one just ended."""
        if self.failing_since is None:
            return None
        since, self.failing_since = self.failing_since, None
        return since


class QuietScheduler(PersistentScheduler):  # type: ignore[misc]
    """Celery's file-backed scheduler, but a failed send logs one short line, rate-limited."""

    outage_log_every_s = 60.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._outage = OutageLog(self.outage_log_every_s)
        super().__init__(*args, **kwargs)

    def apply_entry(self, entry: ScheduleEntry, producer: Any = None) -> None:
        """Send one due task; on failure log at most once a minute (no stack trace)."""
        try:
            self.apply_async(entry, producer=producer, advance=False)
        except Exception as e:  # noqa: BLE001 - Celery's own scheduler catches all here too
            quiet = self._outage.failed(time.monotonic())
            if quiet is not None:
                log.warning(
                    "beat_send_failed",
                    task=entry.task,
                    error=(str(e).splitlines() or [type(e).__name__])[0][:300],
                    not_logged_since_last=quiet,
                    next_report_in_s=self._outage.every_s,
                )
            return
        since = self._outage.succeeded()
        if since is not None:
            outage_s = round(time.monotonic() - since)
            log.info("beat_send_recovered", task=entry.task, after_s=outage_s)
