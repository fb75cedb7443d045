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
from datetime import UTC, datetime, timedelta
from typing import Protocol

from memlane import tracing
from memlane.buffer.forgetting import guarded_write
from memlane.buffer.lease import Leases
from memlane.buffer.raw import raw_memories, raw_passages
from memlane.buffer.turns import BufferedTurn, TurnBuffer
from memlane.errors import (
    BadOutputRetry,
    LeaseLost,
    LLMBadOutput,
    MemlaneError,
    Retryable,
    UserForgotten,
)
from memlane.ids import batch_id as derive_batch_id
from memlane.llm.embeddings import Embedder, embed_missing
from memlane.logging import get_logger
from memlane.metrics import Stage, count_batch, count_dead_letter, stage
from memlane.models import Memory, MemoryFilter, MemoryKind, TimeField, TimeWindow
from memlane.redaction import Redactor
from memlane.store.base import MemoryStore, list_all
from pipelines.consolidation.rules import take_batch, written_ids
from pipelines.plan import ExtractionPlan, apply_plan

log = get_logger(__name__)
# How far back the previous turn of a batch's first turn is looked for (raw mode).
PREVIOUS_TURN_WINDOW = timedelta(hours=1)


class Extractor(Protocol):
    """Turns a batch into memories, or a plan. Must be deterministic per batch id."""

    def __call__(
        self, user_id: str, batch_id: str, entries: Sequence[BufferedTurn]
    ) -> list[Memory] | ExtractionPlan:
        """The memories (or the plan: memories, supersessions, merges) of one batch."""


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
    # LLM mode: every turn is also kept as a raw memory (batching.keep_raw_turns); otherwise
    # only the turns the extractor asks for (those of observations its checks refused).
    keep_raw: bool = True


@dataclass
class ConsolidationResult:
    """What one consolidation run did."""

    batches: int = 0
    turns: int = 0
    memories: int = 0
    observations: int = 0  # of the memories, those that are not raw turns (for reflection)
    dead_lettered: list[str] = field(default_factory=list)


def plan_batch(
    ports: ConsolidationPorts, user_id: str, batch: str, entries: Sequence[BufferedTurn]
) -> ExtractionPlan:
    """The plan for one batch, memories embedded: by the extractor (with the turns kept raw
    beside its observations, see :attr:`ConsolidationPorts.keep_raw`), or one raw memory per
    turn."""
    if ports.extractor is None:
        with stage(Stage.EMBED):
            return ExtractionPlan(memories=embedded_raw(ports, user_id, batch, entries))
    with stage(Stage.EXTRACT):
        made = ports.extractor(user_id, batch, entries)
    plan = made if isinstance(made, ExtractionPlan) else ExtractionPlan(memories=made)
    written = {m.id for m in plan.memories}
    with stage(Stage.EMBED):
        if ports.keep_raw:  # every turn, embedded with its previous turn as in raw mode
            raw = embedded_raw(ports, user_id, batch, entries)
        else:  # only the turns the checks kept raw: their neighbours may not be kept
            raw = raw_memories(
                user_id, batch, [entries[n - 1] for n in plan.keep_raw], ports.clock()
            )
        plan.memories += [m for m in raw if m.id not in written]
        embed_missing(ports.embedder, plan.memories)
    return plan


def embedded_raw(
    ports: ConsolidationPorts, user_id: str, batch: str, entries: Sequence[BufferedTurn]
) -> list[Memory]:
    """One raw memory per turn, embedded in one call; each vector carries the previous turn of
    the session (the content does not)."""
    memories = raw_memories(user_id, batch, entries, ports.clock())
    passages = raw_passages(entries, previous_raw(ports.store, user_id, entries[0]))
    for memory, vector in zip(memories, ports.embedder.embed_passages(passages), strict=True):
        memory.embedding = list(vector)
    return memories


def previous_raw(store: MemoryStore, user_id: str, first: BufferedTurn) -> Memory | None:
    """The raw memory of the turn said just before ``first`` in its session, if stored.

    The turns before a batch were consolidated by the batches before it. Looked for within
    :data:`PREVIOUS_TURN_WINDOW` before ``first``, so the cost stays one small query however
    long the session is; an older previous turn is left out (the turn is embedded alone).
    """
    turn = first.turn
    window = TimeWindow(turn.ts - PREVIOUS_TURN_WINDOW, turn.ts, TimeField.RECORDED_AT)
    flt = MemoryFilter(kinds=(MemoryKind.RAW,), session_id=turn.session_id, time=window)
    found = [m for m in list_all(store, user_id, flt) if m.session_id == turn.session_id]
    return found[-1] if found else None


def build_memories(
    ports: ConsolidationPorts, user_id: str, batch: str, entries: Sequence[BufferedTurn]
) -> list[Memory]:
    """The new memories of one batch, embedded (the plan's other steps are left out)."""
    return plan_batch(ports, user_id, batch, entries).memories


def apply_batch_plan(ports: ConsolidationPorts, user_id: str, plan: ExtractionPlan) -> None:
    """Apply a batch's plan to the store (upsert, supersede, merge; idempotent)."""
    apply_plan(ports.store, user_id, plan, ports.clock(), ports.embedder.embed_passages)


def run_after_commit(plan: ExtractionPlan) -> None:
    """Run the plan's hooks once its batch has left the buffer (or its user is forgotten)."""
    for hook in plan.after_commit:  # e.g. drop the cached extraction: it can never be reused
        hook()


def consolidate_batch(
    ports: ConsolidationPorts,
    user_id: str,
    token: str,
    entries: Sequence[BufferedTurn],
    result: ConsolidationResult | None = None,
) -> int:
    """Store one batch and commit it. Returns the number of memories written (and adds the
    observations among them to ``result``)."""
    links = [e.traceparent for e in entries]  # the add_turns spans that pushed them
    with tracing.span("memlane.consolidate_batch", links=links, turns=len(entries)):
        return _consolidate_batch(ports, user_id, token, entries, result)


def _consolidate_batch(
    ports: ConsolidationPorts,
    user_id: str,
    token: str,
    entries: Sequence[BufferedTurn],
    result: ConsolidationResult | None,
) -> int:
    started = time.perf_counter()
    batch = derive_batch_id(user_id, entries[0].entry_id, entries[-1].entry_id)
    plan = plan_batch(ports, user_id, batch, entries)
    try:
        with (
            tracing.span("memlane.store", memories=len(plan.memories)),
            stage(Stage.STORE),
            guarded_write(ports.leases, ports.store, user_id, token, written_ids(plan)),
        ):
            apply_batch_plan(ports, user_id, plan)
            ports.buffer.commit(user_id, token, entries)
    except UserForgotten:
        ports.attempts.clear(batch)
        run_after_commit(
            plan
        )  # nothing of a forgotten user may stay behind, its extraction neither
        raise
    ports.attempts.clear(batch)
    run_after_commit(plan)
    count_batch(len(entries), time.perf_counter() - started)
    if result is not None:
        result.observations += sum(m.kind is not MemoryKind.RAW for m in plan.memories)
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
            result.memories += consolidate_batch(ports, user_id, token, entries, result)
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
            result.memories += consolidate_batch(ports, user_id, token, [entry], result)
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
    count_dead_letter()
    ports.attempts.clear(batch)
    result.dead_lettered.append(batch)
    log.warning("batch_dead_lettered", user_id=user_id, batch_id=batch, reason=reason)
