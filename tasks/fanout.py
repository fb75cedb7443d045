"""The task shell that hands out one wave of a night's fan-out (reflection or maintenance)."""

from __future__ import annotations

from celery import shared_task
from celery.app.task import Task

from memlane.constants import TASK_NIGHTLY_WAVE
from pipelines.fanout import NightlyJob, send_wave
from tasks.app import senders, wiring_of


@shared_task(bind=True, name=TASK_NIGHTLY_WAVE, ignore_result=True)
def nightly_wave(self: Task, job: str, night: str, offset: int) -> list[str]:
    """One wave of a night's fan-out of ``job``; it schedules the next wave itself."""
    w = wiring_of(self.app)
    return send_wave(w.night(NightlyJob(job)), night, offset, senders(self.app))
