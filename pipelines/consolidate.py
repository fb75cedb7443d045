"""Consolidation: buffered turns -> memories in the store, effectively once.

The steps for one batch, in this order, are what make a killed worker harmless:

1. read the user's oldest turns; the batch id derives from their stream-id range;
2. build the memories (raw mode, or the LLM extractor, which caches its result under the batch
   id before returning); their ids derive from the batch, so a retry writes the same ids;
3. embed and apply the plan: upsert, then supersede contradicted memories, then merge the
   provenance of duplicates (each step idempotent);
4. only then commit: remove the turns from the buffer and advance the watermark, under the lease.

A crash anywhere before 4 leaves the turns buffered; the retry upserts the same ids. Steps 3 and
4 run inside :func:`memlane.buffer.forgetting.guarded_write`: a user forgotten after the lease was
granted gets nothing written, and a write that was already under way is undone.

A batch is bounded by turn count and by size (``batch_max_chars``, at least one turn), so a run
of maximum-size turns costs about what a batch of chat lines does. One bad turn never takes its
batch-mates down: a batch that fails for good, or keeps crashing its worker, is consolidated
again turn by turn, and only the turns that still fail are dead-lettered, each with its reason.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from memlane.buffer.forgetting import guarded_write
from memlane.buffer.lease import Leases
from memlane.buffer.raw import raw_content, raw_memories
from memlane.buffer.turns import BufferedTurn, TurnBuffer
from memlane.errors import LeaseLost, LLMBadOutput, MemlaneError, Retryable, UserForgotten
from memlane.ids import batch_id as derive_batch_id
from memlane.llm.embeddings import Embedder, embed_missing
from memlane.logging import get_logger
from memlane.models import Memory
from memlane.redaction import Redactor
from memlane.store.base import MemoryStore
from pipelines.plan import ExtractionPlan, apply_plan

log = get_logger(__name__)


class Extractor(Protocol):
    """Turns a batch into memories, or a plan. Must be deterministic per batch id."""

    def __call__(
        self, user_id: str, batch_id: str, entries: Sequence[BufferedTurn]
    ) -> list[Memory] | ExtractionPlan:
        """The memories (or the plan: memories, supersessions, merges) of one batch."""


class BadOutputRetry(LLMBadOutput, Retryable):
    """Bad LLM output on an attempt that is not the batch's last: retry with backoff."""


class AttemptCounter(Protocol):
    """Counts how often a batch was started, across crashes and retries."""

    def incr(self, batch_id: str) -> int:
        """One more attempt; returns the total."""

    def forgive(self, batch_id: str) -> None:
        """Take back one attempt (it ended in a transient fault, not a crash or a bad result)."""

    def clear(self, batch_id: str) -> None:
        """Forget the count once the batch is done."""


@dataclass
class ConsolidationPorts:
    """Everything consolidation talks to, injected."""

    buffer: TurnBuffer
    leases: Leases
    store: MemoryStore
    embedder: Embedder
    attempts: AttemptCounter
    extractor: Extractor | None = None
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    # Masks configured secrets in dead-letter reasons (an error body may echo the API key).
    redactor: Redactor = field(default_factory=Redactor)
    # True once the worker is being stopped on purpose: start no new batch, leave it buffered.
    stop_requested: Callable[[], bool] = field(default=lambda: False)


@dataclass
class ConsolidationResult:
    """What one consolidation run did."""

    batches: int = 0
    turns: int = 0
    memories: int = 0
    dead_lettered: list[str] = field(default_factory=list)


def build_plan(
    ports: ConsolidationPorts, user_id: str, batch: str, entries: Sequence[BufferedTurn]
) -> ExtractionPlan:
    """The plan for one batch, memories embedded: by the extractor, or one raw memory per turn."""
    if ports.extractor is not None:
        made = ports.extractor(user_id, batch, entries)
        plan = made if isinstance(made, ExtractionPlan) else ExtractionPlan(memories=made)
    else:
        plan = ExtractionPlan(memories=raw_memories(user_id, batch, entries, ports.clock()))
    embed_missing(ports.embedder, plan.memories)
    return plan


def build_memories(
    ports: ConsolidationPorts, user_id: str, batch: str, entries: Sequence[BufferedTurn]
) -> list[Memory]:
    """The new memories of one batch, embedded (the plan's other steps are left out)."""
    return build_plan(ports, user_id, batch, entries).memories


def _apply(ports: ConsolidationPorts, user_id: str, plan: ExtractionPlan) -> None:
    apply_plan(ports.store, user_id, plan, ports.clock(), ports.embedder.embed_passages)


def written_ids(plan: ExtractionPlan) -> list[str]:
    """The memories a plan may create (supersession only updates what exists)."""
    return [m.id for m in plan.memories] + [m.existing_id for m in plan.merge]


def _run_hooks(plan: ExtractionPlan) -> None:
    for hook in plan.after_commit:  # e.g. drop the cached extraction: it can never be reused
        hook()


def consolidate_batch(
    ports: ConsolidationPorts, user_id: str, token: str, entries: Sequence[BufferedTurn]
) -> int:
    """Store one batch and commit it. Returns the number of memories written."""
    batch = derive_batch_id(user_id, entries[0].entry_id, entries[-1].entry_id)
    plan = build_plan(ports, user_id, batch, entries)
    try:
        with guarded_write(ports.leases, ports.store, user_id, token, written_ids(plan)):
            _apply(ports, user_id, plan)
            ports.buffer.commit(user_id, token, entries)
    except UserForgotten:
        ports.attempts.clear(batch)
        _run_hooks(plan)  # nothing of a forgotten user may stay behind, its extraction neither
        raise
    ports.attempts.clear(batch)
    _run_hooks(plan)
    log.info(
        "batch_consolidated",
        user_id=user_id,
        batch_id=batch,
        turns=len(entries),
        memories=len(plan.memories),
        superseded=len(plan.supersede),
        merged=len(plan.merge),
    )
    return len(plan.memories)


def take_batch(entries: Sequence[BufferedTurn], max_chars: int | None) -> list[BufferedTurn]:
    """The oldest entries whose stored text fits ``max_chars`` (always at least one; pure)."""
    if max_chars is None:
        return list(entries)
    batch: list[BufferedTurn] = []
    used = 0
    for entry in entries:
        size = len(raw_content(entry))
        if batch and used + size > max_chars:
            break
        batch.append(entry)
        used += size
    return batch


def consolidate_user(
    ports: ConsolidationPorts,
    user_id: str,
    token: str,
    batch_max_turns: int,
    max_attempts: int,
    max_batches: int = 100,
    batch_max_chars: int | None = None,
    time_budget_s: float | None = None,
) -> ConsolidationResult:
    """Consolidate the user's buffered turns batch by batch while holding the lease.

    Transient errors (:class:`Retryable`) propagate so the caller can retry with backoff; so does
    bad LLM output (as :class:`BadOutputRetry`) until the batch's last attempt, after which the
    batch is dead-lettered. A batch that fails otherwise, or that has been started
    ``max_attempts`` times (e.g. it keeps killing its worker), is consolidated turn by turn
    (:func:`_one_by_one`); only the turns that still fail are dead-lettered, with their turns
    kept, and the next batch goes on.

    After the first batch, no new batch starts once ``time_budget_s`` has passed: the rest stays
    buffered for the next dispatch, so one run stays within the worker's time limit however
    much is buffered.
    """
    result = ConsolidationResult()
    started = time.monotonic()
    for n in range(max_batches):
        if n and time_budget_s is not None and time.monotonic() - started >= time_budget_s:
            log.info("consolidation_paused", user_id=user_id, batches=result.batches)
            break
        if ports.stop_requested():
            break
        ports.leases.check(user_id, token)
        entries = take_batch(ports.buffer.read(user_id, batch_max_turns), batch_max_chars)
        if not entries:
            break
        batch = derive_batch_id(user_id, entries[0].entry_id, entries[-1].entry_id)
        attempt = ports.attempts.incr(batch)
        if attempt > max_attempts:
            _one_by_one(
                ports, user_id, token, batch, entries, "too many attempts", max_attempts, result
            )
            continue
        try:
            result.memories += consolidate_batch(ports, user_id, token, entries)
        except LeaseLost:
            raise
        except Retryable as e:
            if not isinstance(e, LLMBadOutput):
                # An outage of the store or the model is not the batch's fault: only crashes
                # and bad output use up max_attempts, or a 10 s outage would dead-letter it.
                ports.attempts.forgive(batch)
            raise
        except LLMBadOutput as e:
            if attempt < max_attempts:  # the model may do better next time: retry, then park
                raise BadOutputRetry(str(e)) from e
            _park(ports, user_id, token, batch, entries, f"{type(e).__name__}: {e}", result)
            continue
        except MemlaneError as e:
            reason = f"{type(e).__name__}: {e}"
            _one_by_one(ports, user_id, token, batch, entries, reason, max_attempts, result)
            continue
        result.batches += 1
        result.turns += len(entries)
    return result


def _one_by_one(
    ports: ConsolidationPorts,
    user_id: str,
    token: str,
    batch: str,
    entries: Sequence[BufferedTurn],
    reason: str,
    max_attempts: int,
    result: ConsolidationResult,
) -> None:
    """A batch failed for good: consolidate each turn as a batch of its own.

    Each single-turn batch counts its own attempts, so a turn that crashes the worker is
    parked after ``max_attempts`` and its batch-mates still go through.
    """
    if len(entries) == 1:
        _park(ports, user_id, token, batch, entries, reason, result)
        return
    log.warning("batch_split", user_id=user_id, batch_id=batch, turns=len(entries), reason=reason)
    for entry in entries:
        single = derive_batch_id(user_id, entry.entry_id, entry.entry_id)
        if ports.attempts.incr(single) > max_attempts:
            _park(ports, user_id, token, single, [entry], "too many attempts", result)
            continue
        try:
            result.memories += consolidate_batch(ports, user_id, token, [entry])
        except LeaseLost:
            raise
        except Retryable:
            ports.attempts.forgive(single)  # an outage: the run is retried as a whole
            raise
        except MemlaneError as e:
            _park(ports, user_id, token, single, [entry], f"{type(e).__name__}: {e}", result)
            continue
        result.batches += 1
        result.turns += 1
    ports.attempts.clear(batch)


def _park(
    ports: ConsolidationPorts,
    user_id: str,
    token: str,
    batch: str,
    entries: Sequence[BufferedTurn],
    reason: str,
    result: ConsolidationResult,
) -> None:
    reason = ports.redactor.text(reason)
    ports.buffer.dead_letter(user_id, token, batch, entries, reason)
    ports.attempts.clear(batch)
    result.dead_lettered.append(batch)
    log.warning("batch_dead_lettered", user_id=user_id, batch_id=batch, reason=reason)


def replay_dead_letter(ports: ConsolidationPorts, letter: dict[str, Any], token: str) -> int:
    """Consolidate a parked batch from its dead letter; drop the letter on success.

    A letter whose batch still fails for good is replayed turn by turn: the turns that store
    are dropped from it, and the letter keeps only those that still fail, with their reasons.
    """
    user_id, batch = letter["user_id"], letter["batch_id"]
    entries = ports.buffer.dead_letter_entries(letter)
    try:
        plan = _replay(ports, user_id, token, batch, entries)
    except (LeaseLost, Retryable):
        raise
    except MemlaneError as e:
        if len(entries) == 1:
            raise
        log.warning("dead_letter_split", user_id=user_id, batch_id=batch, reason=str(e))
        return _replay_one_by_one(ports, user_id, token, batch, entries)
    ports.buffer.drop_dead_letter(batch)
    _run_hooks(plan)
    log.info("dead_letter_replayed", user_id=user_id, batch_id=batch, memories=len(plan.memories))
    return len(plan.memories)


def _replay(
    ports: ConsolidationPorts,
    user_id: str,
    token: str,
    batch: str,
    entries: Sequence[BufferedTurn],
) -> ExtractionPlan:
    plan = build_plan(ports, user_id, batch, entries)
    try:
        with guarded_write(ports.leases, ports.store, user_id, token, written_ids(plan)):
            _apply(ports, user_id, plan)
    except UserForgotten:
        _run_hooks(plan)
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
            plan = _replay(ports, user_id, token, single, [entry])
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
