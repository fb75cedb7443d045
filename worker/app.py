"""The Celery app factory: queues, routing, reliability settings and the beat schedule."""

from __future__ import annotations

from typing import Any

from celery import Celery, signals
from celery.schedules import crontab
from kombu import Queue  # type: ignore[attr-defined]

from memlane.buffer.connection import celery_broker_url, redis_password, redis_url
from memlane.config import Settings
from memlane.constants import (
    ALL_QUEUES,
    QUEUE_CONSOLIDATE,
    QUEUE_CONTROL,
    QUEUE_MAINTENANCE,
    QUEUE_REFLECT,
    TASK_CONSOLIDATE,
    TASK_DISPATCH,
    TASK_HOUSEKEEP,
    TASK_MAINTAIN,
    TASK_NIGHTLY_WAVE,
    TASK_REFLECT,
    TASK_REFLECT_NIGHTLY,
    TASK_REPLAY,
)
from memlane.logging import configure_logging
from memlane.redaction import Redactor
from tasks.app import attach

TASK_MODULES = ["tasks.consolidation", "tasks.reflection", "tasks.maintenance", "tasks.fanout"]


def create_app(settings: Settings) -> Celery:
    """A Celery app for these settings; nothing is read from the environment here.

    The app carries the process's wiring (:func:`tasks.app.attach`), built from these settings:
    that is how its tasks get their ports. ``redis.password`` reaches kombu as
    ``broker_password``, outside the broker URL, so no URL Celery prints or logs carries it.
    Results are ignored: there is no result backend to authenticate (tasks that someone may
    wait for leave a status record, :mod:`memlane.buffer.status`).
    """
    password = redis_password(settings)
    broker = celery_broker_url(redis_url(settings), password)
    app = Celery("memlane", broker=broker, include=TASK_MODULES, set_as_current=True)
    attach(app, settings)
    _keep_memlane_logging(settings)
    w, timing = settings.worker, settings.timing
    app.conf.update(
        task_serializer="json",
        accept_content=["json"],
        result_serializer="json",
        task_ignore_result=True,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_soft_time_limit=timing.soft_time_limit_s,
        task_time_limit=timing.time_limit_s,
        # A reflection run may make reflection.max_llm_calls calls, not a batch's two.
        task_annotations={
            TASK_REFLECT: {
                "soft_time_limit": timing.reflect_soft_time_limit_s,
                "time_limit": timing.reflect_time_limit_s,
            }
        },
        broker_transport_options={"visibility_timeout": w.visibility_timeout_s},
        broker_connection_retry_on_startup=True,
        broker_password=password,
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
        task_default_queue=QUEUE_CONSOLIDATE,
        task_queues=[Queue(q) for q in ALL_QUEUES],  # type: ignore[no-untyped-call]
        # Dispatch and the nightly fan-out go to the control queue, which a worker of its own
        # consumes (memlane up runs one): a tick never waits behind a long consolidation.
        task_routes={
            TASK_CONSOLIDATE: {"queue": QUEUE_CONSOLIDATE},
            TASK_REPLAY: {"queue": QUEUE_CONSOLIDATE},
            TASK_DISPATCH: {"queue": QUEUE_CONTROL},
            TASK_REFLECT: {"queue": QUEUE_REFLECT},
            TASK_REFLECT_NIGHTLY: {"queue": QUEUE_CONTROL},
            TASK_NIGHTLY_WAVE: {"queue": QUEUE_CONTROL},
            TASK_MAINTAIN: {"queue": QUEUE_MAINTENANCE},
            TASK_HOUSEKEEP: {"queue": QUEUE_MAINTENANCE},
        },
        timezone=settings.timezone,
        enable_utc=True,
        beat_schedule=beat_schedule(settings),
    )
    return app


def _keep_memlane_logging(settings: Settings) -> None:
    """Answer Celery's ``setup_logging`` signal, so Celery installs no handler of its own.

    Celery's records then reach the root handler of :func:`memlane.logging.configure_logging`,
    which redacts secrets, and stdout is not redirected through Celery's logger.
    """

    def setup(**_kwargs: Any) -> None:
        configure_logging(settings.log, redactor=Redactor.from_settings(settings))

    signals.setup_logging.connect(setup, weak=False, dispatch_uid="memlane-logging")


def beat_schedule(settings: Settings) -> dict[str, dict[str, object]]:
    """Dispatch every few seconds, reflection nightly, housekeeping (and the sweeps) hourly."""
    interval = settings.batching.dispatch_interval_s
    r = settings.reflection
    return {
        "dispatch": {
            "task": TASK_DISPATCH,
            "schedule": interval,
            "options": {"expires": max(interval * 2, 1.0)},  # never let dispatches pile up
        },
        "reflect-nightly": {
            "task": TASK_REFLECT_NIGHTLY,
            "schedule": crontab(hour=r.cron_hour, minute=r.cron_minute),
        },
        "housekeep": {"task": TASK_HOUSEKEEP, "schedule": crontab(minute=17)},
    }
