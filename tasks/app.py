"""What every task shell reaches through its Celery app: the wiring, sending, status records.

``worker.app.create_app`` builds a :class:`pipelines.wiring.Wiring` from the settings and
attaches it to the app (:func:`attach`); a task gets it from its own app (:func:`wiring_of`).
An app without one is a setup error, raised as such: nothing builds itself from the environment.
Tasks send each other by name (:func:`send`, :func:`senders`), so no task module imports
another; this is the one module of ``tasks/`` the others import.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from celery import Celery
from celery.app.task import Task

from memlane.backoff import backoff_delay
from memlane.config import Settings
from memlane.constants import (
    QUEUE_CONTROL,
    QUEUE_MAINTENANCE,
    QUEUE_REFLECT,
    TASK_MAINTAIN,
    TASK_NIGHTLY_WAVE,
    TASK_REFLECT,
)
from memlane.errors import ConfigError
from pipelines.fanout import NightlyJob, Senders
from pipelines.wiring import Wiring

_ATTR = "memlane_wiring"


def attach(app: Celery, settings: Settings) -> Wiring:
    """Build the process's wiring from ``settings`` and attach it to ``app``."""
    built = Wiring(settings)
    setattr(app, _ATTR, built)
    return built


def wiring_of(app: Celery) -> Wiring:
    """The wiring attached to ``app``; :class:`ConfigError` when there is none."""
    found = getattr(app, _ATTR, None)
    if not isinstance(found, Wiring):
        raise ConfigError(
            "this Celery app has no memlane wiring: build it with worker.app.create_app(settings)"
        )
    return found


def send(
    app: Celery,
    name: str,
    args: Sequence[Any],
    queue: str,
    countdown: float | None = None,
    headers: dict[str, str] | None = None,
) -> None:
    """Enqueue the task called ``name`` on ``queue`` (after ``countdown`` seconds), with extra
    message ``headers`` (the trace context, :func:`memlane.tracing.headers`)."""
    app.send_task(name, args=list(args), queue=queue, countdown=countdown, headers=headers or None)


def senders(app: Celery) -> Senders:
    """The pipelines' sending port, over ``app``."""

    def wave(job: NightlyJob, night: str, offset: int, delay_s: float) -> None:
        # Waves hand work out; like dispatch they must not wait behind the work itself.
        send(app, TASK_NIGHTLY_WAVE, (job.value, night, offset), QUEUE_CONTROL, delay_s)

    return Senders(
        reflect=lambda user_id: send(app, TASK_REFLECT, (user_id,), QUEUE_REFLECT),
        maintain=lambda user_id: send(app, TASK_MAINTAIN, (user_id,), QUEUE_MAINTENANCE),
        wave=wave,
    )


def record_status(task: Task, result: dict[str, Any]) -> dict[str, Any]:
    """Leave ``result`` as the task's status record (``memlane reflect --wait`` reads it)."""
    if task.request.id:
        wiring_of(task.app).task_status().record(task.request.id, result)
    return result


def retry_delay(settings: Settings, retries: int, error: BaseException | None = None) -> float:
    """The backoff before retry number ``retries + 1`` (``batching.backoff_*``).

    Never sooner than a provider's ``Retry-After`` (or the limits' wait) that ``error`` carries,
    which arrives already capped by the call budget.
    """
    cfg = settings.batching
    delay = backoff_delay(retries, cfg.backoff_base_s, cfg.backoff_max_s)
    return max(delay, getattr(error, "retry_after_s", None) or 0.0)
