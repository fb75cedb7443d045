"""Reflection: a user's unreflected observations -> one insight per subject, versioned.

One run for one user, under the user's lease:

1. read the user's active insights and observations; the unreflected ones are those without the
   ``reflected`` tag, oldest first;
2. ask the model, in requests of ``batch_size`` observations and at most ``max_llm_calls`` of
   them, which subjects they belong to (existing insight subjects plus new ones) and what each
   touched subject's insight now says; every call's tokens are recorded;
3. compute everything: one new insight version per updated subject (id from subject + evidence,
   see :mod:`pipelines.insights`), the supersessions of the old versions, the tags on the
   observations;
4. only then write: upsert the new versions, supersede the old ones, tag the observations, and
   settle the user's unreflected count.

A failure before 4 writes nothing. A failure inside 4 is repaired by the next run: the same
evidence gives the same ids, and a subject left with two active versions keeps the newer.
Observations beyond the call budget stay unreflected for the next run.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from typing import Any, Protocol

from memlane.forgetting import WriteGuard, unguarded
from memlane.llm.chat import Message, Usage
from memlane.llm.embeddings import Embedder, embed_missing
from memlane.logging import get_logger
from memlane.models import Memory, MemoryFilter, MemoryKind, SupersedeReason
from memlane.ranking import memory_time
from memlane.store.base import MemoryStore
from memlane.textproc import detect_language
from pipelines.insights import (
    ReflectionPlan,
    SubjectState,
    apply_drafts,
    is_reflected,
    parse_reflection,
    plan_reflection,
    subject_states,
)
from pipelines.prompts import Prompt, fill, load_prompt, local_time, quote_line

log = get_logger(__name__)
PAGE = 1000


class JsonChat(Protocol):
    """The chat model as pipelines use it (``memlane.llm.chat.ChatModel``)."""

    model: str

    def complete_json(
        self, messages: Sequence[Message], schema_name: str
    ) -> tuple[dict[str, Any], Usage]:
        """One completion parsed as a JSON object, and its token usage."""


class UsageSink(Protocol):
    """Where each call's tokens are counted (``memlane.usage.UsageRecorder``)."""

    def record(self, user_id: str, usage: Usage) -> None:
        """Count one call."""


class Counter(Protocol):
    """The unreflected counts (``pipelines.unreflected.UnreflectedCounter``)."""

    def settle(self, user_id: str, covered: int, remaining: int) -> int:
        """Subtract what a run covered, keeping at least what it left."""


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


def list_all(store: MemoryStore, user_id: str, flt: MemoryFilter) -> list[Memory]:
    """Every memory of the user matching ``flt``, following the list cursor."""
    found: list[Memory] = []
    cursor = None
    while True:
        page = store.list(user_id, flt, limit=PAGE, cursor=cursor)
        found.extend(page.memories)
        cursor = page.cursor
        if cursor is None:
            return found


def reflect_user(
    ports: ReflectionPorts,
    user_id: str,
    options: ReflectOptions | None = None,
    guard: WriteGuard = unguarded,
) -> ReflectionResult:
    """Reflect the user's unreflected observations into insights (see the module docstring).

    The writes run inside ``guard`` (the lease's :func:`memlane.forgetting.guarded_write`): a
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
    messages = reflection_messages(prompt, states, chunk, ports.tz)
    raw, usage = ports.chat.complete_json(messages, "reflect")
    if ports.usage is not None:
        ports.usage.record(user_id, usage)
    return parse_reflection(raw, len(chunk))


def reflection_messages(
    prompt: Prompt, states: dict[str, SubjectState], chunk: Sequence[Memory], tz: tzinfo
) -> list[Message]:
    """The reflection call: the current insight of every subject, then numbered observations."""
    lines = []
    for subject in sorted(states):
        state = states[subject]
        text = state.content or (state.current.content if state.current else None)
        if text:
            lines.append(f"- {quote_line(subject)}: {quote_line(text)}")
    insights = "\n".join(lines) or prompt.extras.get("no_insights", "(none)")
    numbered = enumerate(chunk, 1)
    observations = "\n".join(observation_line(i, m, tz, prompt.language) for i, m in numbered)
    text = fill(prompt.template, insights=insights, observations=observations)
    messages: list[Message] = [{"role": "system", "content": prompt.system}]
    for example_input, example_output in prompt.examples:
        messages.append({"role": "user", "content": example_input})
        messages.append({"role": "assistant", "content": example_output})
    messages.append({"role": "user", "content": text.strip()})
    return messages


def observation_line(number: int, memory: Memory, tz: tzinfo, language: str) -> str:
    """``[#3 2024-10-26] (hobby) 用户爱好是吉他。``."""
    day = local_time(memory_time(memory), tz, language)[:10]
    facet = f" ({quote_line(memory.subject)})" if memory.subject else ""
    return f"[#{number} {day}]{facet} {quote_line(memory.content)}"


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
