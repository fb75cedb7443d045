"""Maintenance's task shells: sweep one user, and the hourly housekeeping (beat)."""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any

from celery import shared_task
from celery.app.task import Task

from memlane.buffer.lease import Outcome, run_leased
from memlane.constants import TASK_HOUSEKEEP, TASK_MAINTAIN
from memlane.errors import Retryable
from memlane.logging import get_logger
from pipelines.fanout import NightlyJob
from pipelines.maintenance.run import MaintenanceResult, housekeep, maintain_user
from tasks.app import record_status, retry_delay, senders, wiring_of

log = get_logger(__name__)
MAX_RETRIES = 8


@shared_task(bind=True, name=TASK_MAINTAIN, max_retries=MAX_RETRIES, ignore_result=True)
def maintain(self: Task, user_id: str) -> dict[str, Any]:
    """Sweep one user's memories (duplicates, contradictions, optional policies), under lease."""
    w = wiring_of(self.app)

    def work(token: str) -> MaintenanceResult:
        guard = w.write_guard(user_id, token)
        return maintain_user(w.maintenance_ports(), user_id, w.settings.maintenance, guard=guard)

    try:
        run = run_leased(w.services.leases, user_id, work)
    except Retryable as e:
        delay = retry_delay(w.settings, self.request.retries, e)
        log.warning("maintain_retry", user_id=user_id, error=str(e), delay_s=round(delay, 2))
        raise self.retry(exc=e, countdown=delay) from e
    if run.outcome is Outcome.BUSY:
        raise self.retry(countdown=retry_delay(w.settings, self.request.retries))
    if run.value is None:
        return record_status(self, run.report())
    return record_status(self, dataclasses.asdict(run.value))


@shared_task(bind=True, name=TASK_HOUSEKEEP, ignore_result=True)
def housekeeping(self: Task) -> dict[str, Any]:
    """Beat entry, hourly: repair the pending-users index; nightly, fan the sweep out."""
    w = wiring_of(self.app)
    cfg = w.settings
    result = housekeep(
        w.services.buffer,
        w.night(NightlyJob.MAINTAIN),
        datetime.now(cfg.tz),
        cfg.maintenance.cron_hour,
        senders(self.app),
    )
    return record_status(self, dataclasses.asdict(result))
