"""``memlane replay``: consolidate a dead-lettered batch again, from its dead letter.

The batch is built, guarded and written exactly as consolidation does (:mod:`.run`); only the
source differs (the letter keeps the turns) and success drops the letter instead of committing.
A letter whose batch still fails for good is replayed turn by turn: the turns that store are
dropped from it, and the letter keeps only those that still fail, with their reasons.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from memlane.buffer.forgetting import guarded_write
from memlane.buffer.turns import BufferedTurn, TurnBuffer
from memlane.errors import LeaseLost, MemlaneError, Retryable, UserForgotten
from memlane.ids import batch_id as derive_batch_id
from memlane.logging import get_logger
from pipelines.consolidation.rules import written_ids
from pipelines.consolidation.run import (
    ConsolidationPorts,
    apply_batch_plan,
    plan_batch,
    run_after_commit,
)
from pipelines.plan import ExtractionPlan

log = get_logger(__name__)


def find_dead_letter(buffer: TurnBuffer, batch_id: str) -> dict[str, Any] | None:
    """The dead letter of ``batch_id``, while it is still parked."""
    return next((d for d in buffer.dead_letters() if d["batch_id"] == batch_id), None)


def replay_dead_letter(ports: ConsolidationPorts, letter: dict[str, Any], token: str) -> int:
    """Consolidate a parked batch from its dead letter; drop the letter on success.

    A letter whose batch still fails for good is replayed turn by turn: the turns that store
    are dropped from it, and the letter keeps only those that still fail, with their reasons.
    """
    user_id, batch = letter["user_id"], letter["batch_id"]
    entries = ports.buffer.dead_letter_entries(letter)
    try:
        plan = _replay_batch(ports, user_id, token, batch, entries)
    except (LeaseLost, Retryable):
        raise
    except MemlaneError as e:
        if len(entries) == 1:
            raise
        log.warning("dead_letter_split", user_id=user_id, batch_id=batch, reason=str(e))
        return _replay_one_by_one(ports, user_id, token, batch, entries)
    ports.buffer.drop_dead_letter(batch)
    run_after_commit(plan)
    log.info("dead_letter_replayed", user_id=user_id, batch_id=batch, memories=len(plan.memories))
    return len(plan.memories)


def _replay_batch(
    ports: ConsolidationPorts,
    user_id: str,
    token: str,
    batch: str,
    entries: Sequence[BufferedTurn],
) -> ExtractionPlan:
    plan = plan_batch(ports, user_id, batch, entries)
    try:
        with guarded_write(ports.leases, ports.store, user_id, token, written_ids(plan)):
            apply_batch_plan(ports, user_id, plan)
    except UserForgotten:
        run_after_commit(plan)
        raise
    return plan


def _replay_one_by_one(
    ports: ConsolidationPorts,
    user_id: str,
    token: str,
    batch: str,
    entries: Sequence[BufferedTurn],
) -> int:
    written = 0
    hooks: list[Callable[[], None]] = []
    failed: list[BufferedTurn] = []
    reasons: list[str] = []
    for entry in entries:
        single = derive_batch_id(user_id, entry.entry_id, entry.entry_id)
        try:
            plan = _replay_batch(ports, user_id, token, single, [entry])
        except (LeaseLost, Retryable):
            raise
        except MemlaneError as e:
            failed.append(entry)
            reasons.append(f"turn {entry.turn.turn_id}: {type(e).__name__}: {e}")
            continue
        written += len(plan.memories)
        hooks += plan.after_commit
    if failed:  # the same letter, now holding only the turns that still fail
        reason = ports.redactor.text("; ".join(reasons))
        ports.buffer.dead_letter(user_id, token, batch, failed, reason)
    else:
        ports.buffer.drop_dead_letter(batch)
    for hook in hooks:
        hook()
    log.info(
        "dead_letter_replayed",
        user_id=user_id,
        batch_id=batch,
        memories=written,
        still_failing=len(failed),
    )
    return written
