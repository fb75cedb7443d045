"""Maintenance: the long-term sweeps over one user's active memories, under the user's lease.

1. duplicates: clusters of near-identical memories keep one, which takes the union of their
   provenance; the others are superseded by it (``superseded_by`` = the kept id, reason
   ``duplicate``);
2. contradictions across weeks: the ambiguous pairs (see :mod:`.rules`) go to the LLM,
   at most ``max_llm_calls`` calls; the newer fact stays active, the older is superseded with
   ``valid_to`` = the newer one's time (reason ``contradiction``);
3. forgetting (``maintenance.forgetting_enabled``, off by default): observations and raw turns
   older than ``forgetting_max_age_days`` whose importance x recency decay fell under the bar are
   archived: superseded by nothing (``superseded_by="archived"``, reason ``archived``,
   ``metadata.archived=true``);
4. expiry (``maintenance.expire_covered_raw``, off by default): raw memories whose turns are all
   covered by observations are superseded by the covering observation (reason ``expired``).

Insights are left alone: reflection keeps one per subject. Everything is computed first and
written last (keepers, then supersessions, then archives); every step is idempotent, so a retry
after a crash reaches the same state.

:func:`housekeep` is the hourly job around it: it repairs the pending-users index and, in the
hour of ``maintenance.cron_hour``, fans ``maintain(user)`` out to every known user once a night.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from typing import Protocol

from memlane.buffer.forgetting import WriteGuard, unguarded
from memlane.config_sections import MaintenanceSettings
from memlane.errors import LLMBadOutput
from memlane.logging import get_logger
from memlane.models import Memory, MemoryFilter, MemoryKind, SupersedeReason
from memlane.store.base import MemoryStore, list_all
from memlane.text.tokens import detect_language
from pipelines.fanout import Night, Senders, send_wave
from pipelines.maintenance.rules import (
    SweepOptions,
    SweepPlan,
    archived,
    classify_pairs,
    covered_raw,
    is_sweep_hour,
    plan_sweep,
    to_forget,
)
from pipelines.pairs import Pair, Relation, parse_decisions
from pipelines.ports import JsonChat, UsageSink
from pipelines.prompts import load_prompt, maintenance_messages

log = get_logger(__name__)
SWEPT_KINDS = (MemoryKind.OBSERVATION, MemoryKind.CUSTOM, MemoryKind.RAW)


@dataclass
class MaintenancePorts:
    """Everything maintenance talks to, injected; ``chat`` is None in raw mode."""

    store: MemoryStore
    tz: tzinfo
    chat: JsonChat | None = None
    usage: UsageSink | None = None
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))


@dataclass
class MaintenanceResult:
    """What one sweep of one user did."""

    memories: int = 0
    merged: int = 0
    contradicted: int = 0
    archived: int = 0
    expired: int = 0
    llm_calls: int = 0


class PendingIndex(Protocol):
    """What housekeeping needs of the turn buffer (``TurnBuffer``)."""

    def repair_pending(self) -> int:
        """Re-index users who have buffered turns but no pending entry; returns how many."""

    def known_users(self) -> list[str]:
        """Every user id ever pushed."""


@dataclass
class HousekeepingResult:
    """What one hourly housekeeping did."""

    repaired: int = 0
    swept: int = 0


def housekeep(
    buffer: PendingIndex, fan: Night, now: datetime, cron_hour: int, send: Senders
) -> HousekeepingResult:
    """Repair the pending-users index; in the sweep hour, fan the sweep out to every user."""
    result = HousekeepingResult(repaired=buffer.repair_pending())
    if result.repaired:
        log.warning("pending_index_repaired", users=result.repaired)
    if is_sweep_hour(now, cron_hour):
        night = now.strftime("%Y-%m-%d")
        if fan.start(night, sorted(buffer.known_users())):
            result.swept = len(send_wave(fan, night, 0, send))
    return result


def maintain_user(
    ports: MaintenancePorts,
    user_id: str,
    settings: MaintenanceSettings,
    options: SweepOptions | None = None,
    guard: WriteGuard = unguarded,
) -> MaintenanceResult:
    """Run the sweeps for one user (see the module docstring); the writes run inside ``guard``.

    A lost lease raises :class:`LeaseLost` with nothing written; see
    :func:`memlane.buffer.forgetting.guarded_write` for a user forgotten during the writes.
    """
    store = ports.store
    opts = options or SweepOptions.of(settings)
    memories = list_all(store, user_id, MemoryFilter(kinds=SWEPT_KINDS))
    result = MaintenanceResult(memories=len(memories))
    now = ports.clock()
    auto, ambiguous = classify_pairs(memories, opts)
    decided = _arbitrate(ports, user_id, memories, ambiguous, opts, result)
    duplicates = auto + [p for p, r in decided if r is Relation.DUPLICATE]
    contradictions = sorted(
        (p for p, r in decided if r is Relation.CONTRADICTION), key=lambda p: (p.old, p.new)
    )
    plan = plan_sweep(memories, duplicates, contradictions, now)
    result.merged = plan.merged
    result.contradicted = len(plan.supersede) - plan.merged
    _optional_policies(memories, plan, settings, opts, now, result)
    if plan.changes:
        with guard([m.id for m in (*plan.keep, *plan.archive)]):
            _write(store, user_id, plan)
    log.info("user_maintained", user_id=user_id, **_counts(result))
    return result


def _write(store: MemoryStore, user_id: str, plan: SweepPlan) -> None:
    if plan.keep:
        store.upsert(plan.keep)
    for old_id, new_id, valid_to, reason in plan.supersede:
        store.supersede(user_id, [old_id], new_id, valid_to, reason)
    if plan.archive:
        store.upsert(plan.archive)


def _counts(result: MaintenanceResult) -> dict[str, int]:
    return {
        "memories": result.memories,
        "merged": result.merged,
        "contradicted": result.contradicted,
        "archived": result.archived,
        "expired": result.expired,
        "llm_calls": result.llm_calls,
    }


def _optional_policies(
    memories: Sequence[Memory],
    plan: SweepPlan,
    settings: MaintenanceSettings,
    opts: SweepOptions,
    now: datetime,
    result: MaintenanceResult,
) -> None:
    """Forgetting and raw expiry, both off by default, on what the sweep left active."""
    taken = {old for old, *_ in plan.supersede}
    left = [m for m in memories if m.id not in taken]
    if settings.expire_covered_raw:
        for raw_id, obs_id in covered_raw(left):
            plan.supersede.append((raw_id, obs_id, now, SupersedeReason.EXPIRED))
            taken.add(raw_id)
            result.expired += 1
    if settings.forgetting_enabled:
        kept = {m.id for m in plan.keep}
        candidates = [m for m in left if m.id not in taken and m.id not in kept]
        plan.archive = [archived(m, now) for m in to_forget(candidates, now, _age(settings), opts)]
        result.archived = len(plan.archive)


def _age(settings: MaintenanceSettings) -> float:
    return settings.forgetting_max_age_days


def _arbitrate(
    ports: MaintenancePorts,
    user_id: str,
    memories: Sequence[Memory],
    pairs: Sequence[Pair],
    opts: SweepOptions,
    result: MaintenanceResult,
) -> list[tuple[Pair, Relation]]:
    """The model's relation for each ambiguous pair, in calls of ``pairs_per_call``."""
    if ports.chat is None or not pairs:
        return []
    decided: list[tuple[Pair, Relation]] = []
    for start in range(0, len(pairs), opts.pairs_per_call):
        chunk = pairs[start : start + opts.pairs_per_call]
        language = detect_language(" ".join(memories[p.new].content for p in chunk))
        messages = maintenance_messages(
            load_prompt("maintain", language), memories, chunk, ports.tz
        )
        raw, usage = ports.chat.complete_json(messages, "maintain")
        result.llm_calls += 1
        if ports.usage is not None:
            ports.usage.record(user_id, usage)
        try:
            found = parse_decisions(raw, len(chunk), "maintenance")
        except LLMBadOutput as e:  # a sweep can wait: skip the chunk, keep every memory
            log.warning("maintenance_output_refused", user_id=user_id, error=str(e))
            continue
        decided.extend((chunk[n], relation) for n, relation in sorted(found.items()))
    return decided
