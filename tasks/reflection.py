"""Reflection's task shells: reflect one user, and the nightly fan-out (beat)."""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any

from celery import shared_task
from celery.app.task import Task

from memlane.buffer.lease import Outcome, run_leased
from memlane.constants import TASK_REFLECT, TASK_REFLECT_NIGHTLY
from memlane.errors import LLMBadOutput, Retryable
from memlane.logging import get_logger
from pipelines.fanout import NightlyJob
from pipelines.reflection.run import ReflectionResult, reflect_user, start_nightly_reflection
from tasks.app import record_status, retry_delay, senders, wiring_of

log = get_logger(__name__)
MAX_RETRIES = 8
BAD_OUTPUT_RETRIES = 2  # a model that keeps answering badly waits for the next night


@shared_task(bind=True, name=TASK_REFLECT, max_retries=MAX_RETRIES, ignore_result=True)
def reflect(self: Task, user_id: str) -> dict[str, Any]:
    """Reflect one user's unreflected observations into insights, under the user's lease."""
    w = wiring_of(self.app)
    if not w.settings.llm.configured:
        log.info("reflect_skipped_raw_mode", user_id=user_id)
        return record_status(self, {"skipped": "raw mode"})

    def work(token: str) -> ReflectionResult:
        guard = w.write_guard(user_id, token)
        return reflect_user(w.reflection_ports(), user_id, w.reflect_options(), guard=guard)

    try:
        run = run_leased(w.services.leases, user_id, work)
    except Retryable as e:
        delay = retry_delay(w.settings, self.request.retries, e)
        log.warning("reflect_retry", user_id=user_id, error=str(e), delay_s=round(delay, 2))
        raise self.retry(exc=e, countdown=delay) from e
    except LLMBadOutput as e:
        if self.request.retries >= BAD_OUTPUT_RETRIES:
            log.error("reflect_bad_output", user_id=user_id, error=str(e))
            return record_status(self, {"error": str(e)})
        raise self.retry(exc=e, countdown=retry_delay(w.settings, self.request.retries)) from e
    if run.outcome is Outcome.BUSY:  # consolidation (or another reflection) is on this user
        raise self.retry(countdown=retry_delay(w.settings, self.request.retries))
    if run.value is None:
        return record_status(self, run.report())
    return record_status(self, dataclasses.asdict(run.value))


@shared_task(bind=True, name=TASK_REFLECT_NIGHTLY, ignore_result=True)
def reflect_nightly(self: Task) -> list[str]:
    """Beat entry: once per night, fan ``reflect(user)`` out to users with new observations."""
    w = wiring_of(self.app)
    now = datetime.now(w.settings.tz)
    return start_nightly_reflection(
        w.night(NightlyJob.REFLECT), w.unreflected(), now, senders(self.app)
    )
