"""Thin Celery shells around consolidation: load ids, build ports, call, decide on retry."""

from __future__ import annotations

import dataclasses
from typing import Any

from celery import shared_task
from celery.app.task import Task

from memlane.backoff import backoff_delay
from memlane.buffer.forgetting import sweep_due
from memlane.constants import QUEUE_CONSOLIDATE
from memlane.errors import LeaseLost, RedisUnavailable, Retryable, UserForgotten
from memlane.logging import get_logger
from memlane.services import Services
from pipelines.consolidate import consolidate_user, replay_dead_letter
from pipelines.dispatch import dispatch_ready
from tasks import runtime, schedule

log = get_logger(__name__)
MAX_RETRIES = 12


@shared_task(bind=True, name="memlane.consolidate", max_retries=MAX_RETRIES)
def consolidate(self: Task, user_id: str, token: str) -> dict[str, Any]:
    """Consolidate one user's buffered turns under the lease ``token`` (kept alive meanwhile)."""
    svc = runtime.services()
    cfg = svc.settings.batching
    try:
        with svc.leases.heartbeat(user_id, token):
            result = consolidate_user(
                runtime.consolidation_ports(svc),
                user_id,
                token,
                cfg.batch_max_turns,
                cfg.max_attempts,
                batch_max_chars=cfg.batch_max_chars,
                # Half the soft limit: the batch under way when the budget runs out must still fit.
                time_budget_s=svc.settings.worker.soft_time_limit_s / 2,
            )
    except UserForgotten:
        log.warning("user_forgotten_during_task")  # no user id: the user asked to be forgotten
        return {"lease_lost": True, "forgotten": True}
    except LeaseLost:
        log.warning("lease_lost", user_id=user_id)
        return {"lease_lost": True}
    except Retryable as e:
        retries = self.request.retries
        if retries >= MAX_RETRIES:
            svc.leases.release(user_id, token)  # the dispatcher will try again later
            raise
        delay = backoff_delay(retries, cfg.backoff_base_s, cfg.backoff_max_s)
        log.warning("consolidate_retry", user_id=user_id, error=str(e), delay_s=round(delay, 2))
        _hold(svc, user_id, token)
        raise self.retry(exc=e, countdown=delay) from e
    svc.leases.release(user_id, token)
    try:  # the count only triggers reflection; a lost increment waits for the next batch
        schedule.note_observations(svc, user_id, result.memories)
    except Retryable as e:
        log.warning("unreflected_count_failed", user_id=user_id, error=str(e))
    return dataclasses.asdict(result)


def _hold(svc: Services, user_id: str, token: str) -> None:
    """Keep the user for the retry: the heartbeat stopped, and the running TTL is short."""
    try:
        svc.leases.hold_for_retry(user_id, token)
    except RedisUnavailable as e:  # the lease lapses; dispatch hands the user out again
        log.warning("lease_hold_failed", user_id=user_id, error=str(e))


@shared_task(name="memlane.dispatch", ignore_result=True)
def dispatch() -> list[str]:
    """Beat entry: lease and enqueue every user whose turns are ready; sweep forgotten users."""
    svc = runtime.services()

    def enqueue(user_id: str, token: str) -> None:
        consolidate.apply_async((user_id, token), queue=QUEUE_CONSOLIDATE)

    sent = dispatch_ready(svc.buffer, svc.leases, svc.settings.batching, enqueue)
    try:  # rare: only after forgetting a user while a write of theirs was under way
        sweep_due(svc.leases, lambda: svc.store)
    except Retryable as e:
        log.warning("forget_sweep_failed", error=str(e))
    return sent


@shared_task(bind=True, name="memlane.replay", max_retries=MAX_RETRIES)
def replay(self: Task, batch_id: str) -> int:
    """Consolidate one dead-lettered batch again (``memlane replay``)."""
    svc = runtime.services()
    letters = {d["batch_id"]: d for d in svc.buffer.dead_letters()}
    if batch_id not in letters:
        return 0
    user_id = letters[batch_id]["user_id"]
    token = svc.leases.acquire(user_id)
    if token is None:
        raise self.retry(countdown=2)
    try:
        with svc.leases.heartbeat(user_id, token):
            return replay_dead_letter(runtime.consolidation_ports(svc), letters[batch_id], token)
    except UserForgotten:
        return 0
    except Retryable as e:
        raise self.retry(exc=e, countdown=backoff_delay(self.request.retries, 1, 60)) from e
    finally:
        svc.leases.release(user_id, token)
