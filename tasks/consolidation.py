"""Consolidation's task shells: dispatch (beat), consolidate one user, replay a dead letter."""

from __future__ import annotations

import dataclasses
from typing import Any

from celery import shared_task
from celery.app.task import Task

from memlane import tracing
from memlane.backoff import backoff_delay
from memlane.buffer.lease import Outcome, run_leased
from memlane.constants import QUEUE_CONSOLIDATE, TASK_CONSOLIDATE, TASK_DISPATCH, TASK_REPLAY
from memlane.errors import Retryable
from memlane.logging import get_logger
from pipelines.consolidation.dispatch import dispatch as dispatch_users
from pipelines.consolidation.replay import find_dead_letter, replay_dead_letter
from pipelines.consolidation.run import ConsolidationResult, consolidate_user
from pipelines.reflection.run import note_observations
from tasks.app import retry_delay, send, senders, wiring_of

log = get_logger(__name__)
MAX_RETRIES = 12


@shared_task(bind=True, name=TASK_CONSOLIDATE, max_retries=MAX_RETRIES)
def consolidate(self: Task, user_id: str, token: str) -> dict[str, Any]:
    """Consolidate one user's buffered turns under the lease ``token`` (granted by dispatch)."""
    w = wiring_of(self.app)
    cfg = w.settings.batching

    def work(lease: str) -> ConsolidationResult:
        return consolidate_user(
            w.consolidation_ports(),
            user_id,
            lease,
            cfg.batch_max_turns,
            cfg.max_attempts,
            batch_max_chars=cfg.batch_max_chars,
            # The soft limit less one whole batch: the batch under way when the window closes
            # must still fit (memlane.timing).
            time_budget_s=w.settings.timing.run_window_s,
        )

    try:  # a transient fault keeps the lease for the retry
        # The trace of the dispatch that sent this task, from the message headers.
        with tracing.span("memlane.consolidate", parent=tracing.from_headers(self.request)):
            run = run_leased(w.services.leases, user_id, work, token=token, hold_on=(Retryable,))
    except Retryable as e:
        if self.request.retries >= MAX_RETRIES:
            w.services.leases.release(user_id, token)  # the dispatcher will try again later
            raise
        delay = retry_delay(w.settings, self.request.retries, e)
        log.warning("consolidate_retry", user_id=user_id, error=str(e), delay_s=round(delay, 2))
        raise self.retry(exc=e, countdown=delay) from e
    if run.value is None:
        return run.report()
    note_observations(
        w.early_reflection(senders(self.app).reflect), user_id, run.value.observations
    )
    return dataclasses.asdict(run.value)


@shared_task(bind=True, name=TASK_DISPATCH, ignore_result=True)
def dispatch(self: Task) -> list[str]:
    """Beat entry: lease and enqueue every user whose turns are ready; sweep forgotten users."""
    w = wiring_of(self.app)
    svc = w.services

    def enqueue(user_id: str, token: str) -> None:
        # One span per dispatched user (an idle tick makes none); its context rides along.
        with tracing.span("memlane.dispatch"):
            headers = tracing.headers()
        send(self.app, TASK_CONSOLIDATE, (user_id, token), QUEUE_CONSOLIDATE, headers=headers)

    return dispatch_users(svc.buffer, svc.leases, lambda: svc.store, svc.settings.batching, enqueue)


@shared_task(bind=True, name=TASK_REPLAY, max_retries=MAX_RETRIES)
def replay(self: Task, batch_id: str) -> int:
    """Consolidate one dead-lettered batch again (``memlane replay``)."""
    w = wiring_of(self.app)
    letter = find_dead_letter(w.services.buffer, batch_id)
    if letter is None:
        return 0
    try:
        run = run_leased(
            w.services.leases,
            letter["user_id"],
            lambda token: replay_dead_letter(w.consolidation_ports(), letter, token),
        )
    except Retryable as e:
        raise self.retry(exc=e, countdown=backoff_delay(self.request.retries, 1, 60)) from e
    if run.outcome is Outcome.BUSY:
        raise self.retry(countdown=2)
    return run.value or 0
