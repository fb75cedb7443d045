"""Reflection: a user's unreflected observations -> one insight per subject, versioned.

One run for one user, under the user's lease:

1. read the user's active insights and observations; the unreflected ones are those without the
   ``reflected`` tag, oldest first;
2. ask the model, in requests of ``batch_size`` observations and at most ``max_llm_calls`` of
   them, which subjects they belong to (existing insight subjects plus new ones) and what each
   touched subject's insight now says; every call's tokens are recorded;
3. compute everything: one new insight version per updated subject (id from subject + evidence,
   see :mod:`pipelines.reflection.rules`), the supersessions of the old versions, the tags on the
   observations;
4. only then write: upsert the new versions, supersede the old ones, tag the observations, and
   settle the user's unreflected count.

A failure before 4 writes nothing. A failure inside 4 is repaired by the next run: the same
evidence gives the same ids, and a subject left with two active versions keeps the newer.
Observations beyond the call budget stay unreflected for the next run.

When a run starts: nightly, for every user with unreflected observations
(:func:`start_nightly_reflection`, handed out in waves by :mod:`pipelines.fanout`), and early,
as soon as consolidation has written ``reflection.early_threshold`` observations since the last
run (:func:`note_observations`; a marker with a TTL keeps a burst of batches from sending more
than one).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from typing import Any, Protocol

from memlane.buffer.forgetting import WriteGuard, unguarded
from memlane.errors import Retryable
from memlane.llm.embeddings import Embedder, embed_missing
from memlane.logging import get_logger
from memlane.models import Memory, MemoryFilter, MemoryKind, SupersedeReason
from memlane.store.base import MemoryStore, list_all
from memlane.text.tokens import detect_language
from pipelines.fanout import Night, Senders, send_wave
from pipelines.ports import JsonChat, UsageSink
from pipelines.prompts import load_prompt, reflection_messages
from pipelines.reflection.rules import (
    ReflectionPlan,
    SubjectState,
    apply_drafts,
    early_reflection_due,
    insight_texts,
    is_reflected,
    parse_reflection,
    plan_reflection,
    subject_states,
)

log = get_logger(__name__)


class Counter(Protocol):
    """The unreflected counts (``memlane.buffer.unreflected.UnreflectedCounter``)."""

    def settle(self, user_id: str, covered: int, remaining: int) -> int:
        """Subtract what a run covered, keeping at least what it left."""

    def end_early(self, user_id: str) -> None:
        """A reflection ran: the next burst of observations may trigger an early one again."""


class EarlyCounter(Protocol):
    """The unreflected counts and the early marker (``UnreflectedCounter``)."""

    def add(self, user_id: str, observations: int) -> int:
        """Count newly written observations; returns the user's new total."""

    def claim_early(self, user_id: str) -> bool:
        """Mark an early reflection as on its way; False if one already is."""


class DueUsers(Protocol):
    """Who has unreflected observations (``UnreflectedCounter``)."""

    def due(self) -> list[str]:
        """Every user with at least one unreflected observation, most behind first."""


@dataclass(frozen=True, slots=True)
class EarlyReflection:
    """The early trigger: the counts, the threshold and how to send ``reflect(user)``."""

    counter: EarlyCounter
    threshold: int
    send: Callable[[str], None]


@dataclass
class ReflectionPorts:
    """Everything reflection talks to, injected."""

    store: MemoryStore
    chat: JsonChat
    embedder: Embedder
    tz: tzinfo
    usage: UsageSink | None = None
    counter: Counter | None = None
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))


@dataclass(frozen=True, slots=True)
class ReflectOptions:
    """The per-run LLM budget: calls, and observations per call."""

    max_llm_calls: int = 4
    batch_size: int = 40


@dataclass
class ReflectionResult:
    """What one reflection run did."""

    observations: int = 0
    remaining: int = 0
    llm_calls: int = 0
    written: list[str] = field(default_factory=list)
    superseded: list[str] = field(default_factory=list)


def reflect_user(
    ports: ReflectionPorts,
    user_id: str,
    options: ReflectOptions | None = None,
    guard: WriteGuard = unguarded,
) -> ReflectionResult:
    """Reflect the user's unreflected observations into insights (see the module docstring).

    The writes run inside ``guard`` (the lease's :func:`memlane.buffer.forgetting.guarded_write`): a
    lost lease raises :class:`LeaseLost` with nothing written, and a user forgotten meanwhile
    gets what was written undone.
    """
    opts = options or ReflectOptions()
    insights = list_all(ports.store, user_id, MemoryFilter(kinds=(MemoryKind.INSIGHT,)))
    observations = list_all(ports.store, user_id, MemoryFilter(kinds=(MemoryKind.OBSERVATION,)))
    todo = sorted((m for m in observations if not is_reflected(m)), key=_age)
    states = subject_states(insights, observations)
    chunks = [todo[i : i + opts.batch_size] for i in range(0, len(todo), opts.batch_size)]
    chunks = chunks[: opts.max_llm_calls]
    assigned: dict[str, str] = {}
    result = ReflectionResult()
    for chunk in chunks:
        drafts = _ask(ports, user_id, states, chunk)
        apply_drafts(states, drafts, chunk, assigned)
        result.llm_calls += 1
    processed = [m for chunk in chunks for m in chunk]
    result.observations, result.remaining = len(processed), len(todo) - len(processed)
    by_id = {m.id: m for m in observations}
    plan = plan_reflection(
        user_id, states, by_id, processed, assigned, ports.clock(), _metadata(ports, todo)
    )
    embed_missing(ports.embedder, plan.insights)
    with guard([m.id for m in (*plan.insights, *plan.observations)]):
        _write(ports, user_id, plan, result)
    if ports.counter is not None:
        ports.counter.settle(user_id, result.observations, result.remaining)
        ports.counter.end_early(user_id)
    log.info(
        "user_reflected",
        user_id=user_id,
        observations=result.observations,
        remaining=result.remaining,
        llm_calls=result.llm_calls,
        insights=len(result.written),
        superseded=len(result.superseded),
    )
    return result


def _age(memory: Memory) -> tuple[datetime, str]:
    return (memory.recorded_at, memory.id)


def _metadata(ports: ReflectionPorts, todo: Sequence[Memory]) -> dict[str, Any]:
    language = _language(todo)
    return {"prompt_version": load_prompt("reflect", language).label, "model": ports.chat.model}


def _language(memories: Sequence[Memory]) -> str:
    return detect_language(" ".join(m.content for m in memories[:50]))


def _ask(
    ports: ReflectionPorts,
    user_id: str,
    states: dict[str, SubjectState],
    chunk: Sequence[Memory],
) -> list[Any]:
    prompt = load_prompt("reflect", _language(chunk))
    messages = reflection_messages(prompt, insight_texts(states), chunk, ports.tz)
    raw, usage = ports.chat.complete_json(messages, "reflect")
    if ports.usage is not None:
        ports.usage.record(user_id, usage)
    return parse_reflection(raw, len(chunk))


def _write(
    ports: ReflectionPorts, user_id: str, plan: ReflectionPlan, result: ReflectionResult
) -> None:
    """New versions first, then supersessions, then tags: every prefix is a consistent state."""
    now = ports.clock()
    if plan.insights:
        ports.store.upsert(plan.insights)
    for old_id, new_id in plan.supersede:
        ports.store.supersede(user_id, [old_id], new_id, now, SupersedeReason.REFLECTION)
    for i in range(0, len(plan.observations), 500):
        ports.store.upsert(plan.observations[i : i + 500])
    result.written = [m.id for m in plan.insights]
    result.superseded = [old for old, _ in plan.supersede]


def note_observations(early: EarlyReflection | None, user_id: str, observations: int) -> bool:
    """Count the observations a consolidation wrote; past the threshold, reflect the user early.

    Returns True when an early reflection was sent. ``early`` is None in raw mode (nothing to
    reflect). The count only triggers reflection: a Redis failure is logged and skipped (the
    next batch counts again), never raised.
    """
    if early is None or observations <= 0:
        return False
    try:
        total = early.counter.add(user_id, observations)
        if not early_reflection_due(total, early.threshold):
            return False
        if not early.counter.claim_early(user_id):
            return False
    except Retryable as e:
        log.warning("unreflected_count_failed", user_id=user_id, error=str(e))
        return False
    early.send(user_id)
    log.info("reflect_early", user_id=user_id, unreflected=total)
    return True


def start_nightly_reflection(
    fan: Night, users: DueUsers, now: datetime, send: Senders
) -> list[str]:
    """Once per night: claim the night, snapshot the users due, send the first wave."""
    night = now.strftime("%Y-%m-%d")
    due = users.due()
    if not fan.start(night, due):
        log.info("reflect_nightly_already_ran", night=night)
        return []
    log.info("reflect_nightly_started", night=night, users=len(due))
    return send_wave(fan, night, 0, send)
