"""Beat-driven tasks besides dispatch: nightly reflection fan-out and maintenance.

Both are safe when two beat processes fire them at once: the fan-out takes a once-per-night
marker in Redis (SET NX), and per-user work takes the per-user lease.
"""

from __future__ import annotations

from datetime import datetime

from celery import shared_task

from memlane.constants import QUEUE_REFLECT
from memlane.logging import get_logger
from tasks import runtime

log = get_logger(__name__)


@shared_task(name="memlane.reflect_nightly", ignore_result=True)
def reflect_nightly() -> list[str]:
    """Fan out ``reflect(user)`` once per night to users with unreflected observations."""
    svc = runtime.services()
    night = datetime.now(svc.settings.tz).strftime("%Y-%m-%d")
    marker = svc.keys.schedule_lock(f"reflect:{night}")
    if not svc.redis.set(marker, "1", nx=True, ex=36 * 3600):
        log.info("reflect_nightly_already_ran", night=night)
        return []
    found: list[bytes] = svc.redis.zrangebyscore(svc.keys.unreflected, 1, "+inf")  # type: ignore[assignment]
    users = [u.decode() for u in found]
    for user_id in users:
        reflect.apply_async((user_id,), queue=QUEUE_REFLECT)
    log.info("reflect_nightly_fanned_out", night=night, users=len(users))
    return users


@shared_task(name="memlane.reflect", ignore_result=True)
def reflect(user_id: str) -> None:
    """Reflect one user's observations into insights (reflection pipeline not built yet)."""
    log.warning("reflection_not_built", user_id=user_id)


@shared_task(name="memlane.maintain", ignore_result=True)
def maintain() -> int:
    """Repair the pending-users index: users with buffered turns but no index entry."""
    svc = runtime.services()
    repaired = svc.buffer.repair_pending()
    if repaired:
        log.warning("pending_index_repaired", users=repaired)
    return repaired
