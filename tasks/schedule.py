"""Beat-driven tasks besides dispatch: reflection (nightly and early) and maintenance.

All are safe when two beat processes fire them at once: a night's fan-out claims a marker and
a snapshot of the users in one atomic step (:class:`memlane.buffer.nightly.NightlyFanOut`) and hands
them out in waves; per-user work takes the per-user lease and is idempotent.
"""

from __future__ import annotations

import dataclasses
import os
import threading
from datetime import datetime
from typing import Any

from celery import shared_task
from celery.app.task import Task

from memlane.backoff import backoff_delay
from memlane.buffer.forgetting import WriteGuard, guarded_write
from memlane.buffer.nightly import NightlyFanOut
from memlane.buffer.status import TaskStatus
from memlane.buffer.unreflected import UnreflectedCounter
from memlane.buffer.usage import UsageRecorder
from memlane.constants import QUEUE_MAINTENANCE, QUEUE_REFLECT
from memlane.errors import LeaseLost, LLMBadOutput, LLMNotConfigured, Retryable
from memlane.llm.chat import ChatModel
from memlane.logging import get_logger
from memlane.services import Services
from pipelines.maintain import MaintenancePorts, maintain_user
from pipelines.reflect import ReflectionPorts, ReflectOptions, reflect_user
from tasks import runtime

log = get_logger(__name__)
MAX_RETRIES = 8
BAD_OUTPUT_RETRIES = 2  # a model that keeps answering badly waits for the next night
WAVE_SIZE = 50
WAVE_SPACING_S = 60.0
EARLY_MARKER_TTL_S = 600
_lock = threading.Lock()
_chats: dict[tuple[int, int], ChatModel] = {}


def chat_model(svc: Services) -> ChatModel | None:
    """This process's chat model for ``svc`` (None in raw mode); rebuilt after a fork."""
    if not svc.settings.llm.configured:
        return None
    key = (os.getpid(), id(svc))
    with _lock:
        if key not in _chats:
            _chats[key] = ChatModel(svc.settings.llm)
        return _chats[key]


def reflection_ports(svc: Services) -> ReflectionPorts:
    """The ports of the reflection pipeline (needs a configured chat model)."""
    chat = chat_model(svc)
    if chat is None:
        raise LLMNotConfigured("reflection needs a chat model; none is configured (raw mode)")
    return ReflectionPorts(
        store=svc.store,
        chat=chat,
        embedder=svc.embedder,
        tz=svc.settings.tz,
        usage=UsageRecorder(svc.redis, svc.keys),
        counter=UnreflectedCounter(svc.redis, svc.keys),
    )


def maintenance_ports(svc: Services) -> MaintenancePorts:
    """The ports of the maintenance sweeps (the LLM part is skipped in raw mode)."""
    return MaintenancePorts(
        store=svc.store,
        tz=svc.settings.tz,
        chat=chat_model(svc),
        usage=UsageRecorder(svc.redis, svc.keys),
    )


def note_observations(svc: Services, user_id: str, observations: int) -> bool:
    """Count observations consolidation wrote; past the threshold, reflect the user early.

    Returns True when an early reflection was enqueued. A marker with a TTL keeps a burst of
    batches from enqueueing it more than once.
    """
    if observations <= 0 or not svc.settings.llm.configured:
        return False
    total = UnreflectedCounter(svc.redis, svc.keys).add(user_id, observations)
    if total < svc.settings.reflection.early_threshold:
        return False
    if not UnreflectedCounter(svc.redis, svc.keys).claim_early(user_id, EARLY_MARKER_TTL_S):
        return False
    reflect.apply_async((user_id,), queue=QUEUE_REFLECT)
    log.info("reflect_early", user_id=user_id, unreflected=total)
    return True


def write_guard(svc: Services, user_id: str, token: str) -> WriteGuard:
    """Store writes under this lease: refused, or undone, if the user is forgotten meanwhile."""
    return lambda ids: guarded_write(svc.leases, svc.store, user_id, token, ids)


def _done(svc: Services, task: Task, result: dict[str, Any]) -> dict[str, Any]:
    """Leave the result where ``memlane reflect --wait`` looks (there is no result backend)."""
    if task.request.id:
        TaskStatus(svc.redis, svc.keys).record(task.request.id, result)
    return result


def _retry_delay(svc: Services, retries: int) -> float:
    cfg = svc.settings.batching
    return backoff_delay(retries, cfg.backoff_base_s, cfg.backoff_max_s)


@shared_task(bind=True, name="memlane.reflect", max_retries=MAX_RETRIES, ignore_result=True)
def reflect(self: Task, user_id: str) -> dict[str, Any]:
    """Reflect one user's unreflected observations into insights, under the user's lease."""
    svc = runtime.services()
    if not svc.settings.llm.configured:
        log.info("reflect_skipped_raw_mode", user_id=user_id)
        return _done(svc, self, {"skipped": "raw mode"})
    token = svc.leases.acquire(user_id)
    if token is None:  # consolidation (or another reflection) is on this user: come back
        raise self.retry(countdown=_retry_delay(svc, self.request.retries))
    try:
        options = ReflectOptions(max_llm_calls=svc.settings.reflection.max_llm_calls)
        with svc.leases.heartbeat(user_id, token):
            result = reflect_user(
                reflection_ports(svc), user_id, options, guard=write_guard(svc, user_id, token)
            )
    except LeaseLost:
        log.warning("lease_lost", user_id=user_id)
        return _done(svc, self, {"lease_lost": True})
    except Retryable as e:
        delay = _retry_delay(svc, self.request.retries)
        log.warning("reflect_retry", user_id=user_id, error=str(e), delay_s=round(delay, 2))
        raise self.retry(exc=e, countdown=delay) from e
    except LLMBadOutput as e:
        if self.request.retries >= BAD_OUTPUT_RETRIES:
            log.error("reflect_bad_output", user_id=user_id, error=str(e))
            return _done(svc, self, {"error": str(e)})
        raise self.retry(exc=e, countdown=_retry_delay(svc, self.request.retries)) from e
    finally:
        svc.leases.release(user_id, token)
    UnreflectedCounter(svc.redis, svc.keys).end_early(user_id)
    return _done(svc, self, dataclasses.asdict(result))


@shared_task(name="memlane.reflect_nightly", ignore_result=True)
def reflect_nightly() -> list[str]:
    """Beat entry: once per night, fan out ``reflect(user)`` to users with new observations."""
    svc = runtime.services()
    night = datetime.now(svc.settings.tz).strftime("%Y-%m-%d")
    fan = NightlyFanOut(svc.redis, svc.keys, "reflect", WAVE_SIZE)
    users = UnreflectedCounter(svc.redis, svc.keys).due()
    if not fan.start(night, users):
        log.info("reflect_nightly_already_ran", night=night)
        return []
    log.info("reflect_nightly_started", night=night, users=len(users))
    return _wave(svc, fan, night, 0)


@shared_task(name="memlane.nightly_wave", ignore_result=True)
def nightly_wave(name: str, night: str, offset: int) -> list[str]:
    """One wave of a night's fan-out (``reflect`` or ``maintain``); chains the next wave."""
    svc = runtime.services()
    return _wave(svc, NightlyFanOut(svc.redis, svc.keys, name, WAVE_SIZE), night, offset)


def _wave(svc: Services, fan: NightlyFanOut, night: str, offset: int) -> list[str]:
    users = fan.wave(night, offset)
    if users is None:
        return []
    task, queue = (
        (reflect, QUEUE_REFLECT) if fan.job == "reflect" else (maintain, QUEUE_MAINTENANCE)
    )
    for user_id in users:
        task.apply_async((user_id,), queue=queue)
    if len(users) == fan.wave_size:
        nightly_wave.apply_async(
            (fan.job, night, offset + fan.wave_size), queue=queue, countdown=WAVE_SPACING_S
        )
    return users


@shared_task(bind=True, name="memlane.maintain", max_retries=MAX_RETRIES, ignore_result=True)
def maintain(self: Task, user_id: str | None = None) -> dict[str, Any]:
    """Sweep one user's memories; without a user, the hourly housekeeping.

    The hourly run repairs the pending-users index and, in the hour of ``maintenance.cron_hour``,
    fans the per-user sweep out to every known user once per night.
    """
    svc = runtime.services()
    if user_id is None:
        return _done(svc, self, _housekeeping(svc))
    token = svc.leases.acquire(user_id)
    if token is None:
        raise self.retry(countdown=_retry_delay(svc, self.request.retries))
    try:
        with svc.leases.heartbeat(user_id, token):
            result = maintain_user(
                maintenance_ports(svc),
                user_id,
                svc.settings.maintenance,
                guard=write_guard(svc, user_id, token),
            )
    except LeaseLost:
        log.warning("lease_lost", user_id=user_id)
        return _done(svc, self, {"lease_lost": True})
    except Retryable as e:
        delay = _retry_delay(svc, self.request.retries)
        log.warning("maintain_retry", user_id=user_id, error=str(e), delay_s=round(delay, 2))
        raise self.retry(exc=e, countdown=delay) from e
    finally:
        svc.leases.release(user_id, token)
    return _done(svc, self, dataclasses.asdict(result))


def _housekeeping(svc: Services) -> dict[str, Any]:
    repaired = svc.buffer.repair_pending()
    if repaired:
        log.warning("pending_index_repaired", users=repaired)
    now = datetime.now(svc.settings.tz)
    swept: list[str] = []
    if now.hour == svc.settings.maintenance.cron_hour:
        fan = NightlyFanOut(svc.redis, svc.keys, "maintain", WAVE_SIZE)
        users = sorted(svc.buffer.known_users())
        if fan.start(now.strftime("%Y-%m-%d"), users):
            swept = _wave(svc, fan, now.strftime("%Y-%m-%d"), 0)
    return {"repaired": repaired, "swept": len(swept)}
