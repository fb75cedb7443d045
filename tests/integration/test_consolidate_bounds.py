"""Consolidation bounds its work and isolates bad turns (issue 11, items 4 and 5).

In-process consolidation (no Celery) against real Redis and SQLite; the same paths under a real
worker are in ``tests/fault/test_limits.py``. A turn the store refuses reaches the buffer the
way it does in production: a client whose limits are looser than the workers'.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from memlane.client import MemoryClient
from memlane.config import Settings
from memlane.ids import raw_memory_id
from memlane.services import Services
from pipelines.consolidation.replay import replay_dead_letter
from pipelines.consolidation.run import ConsolidationPorts, ConsolidationResult, consolidate_user

pytestmark = pytest.mark.redis

TOO_MANY_KEYS = {f"k{i}": i for i in range(60)}  # the workers' stores keep at most 32 + 8


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    """Batches of 4 turns; the workers' limits are the defaults."""
    return make_settings(batching={"batch_max_turns": 4, "max_attempts": 3})


@pytest.fixture
def client(settings: Settings) -> Iterator[MemoryClient]:
    """The worker side's client: its store checks the default limits."""
    with MemoryClient(settings) as c:
        yield c


@pytest.fixture
def loose(settings: Settings) -> Iterator[MemoryClient]:
    """A bot's client configured with looser limits than the workers (same Redis, same file)."""
    looser = settings.model_copy(
        update={"limits": settings.limits.model_copy(update={"max_metadata_keys": 64})}
    )
    with MemoryClient(looser) as c:
        yield c


def ports(services: Services) -> ConsolidationPorts:
    """Raw-mode consolidation ports of a services bundle."""
    return ConsolidationPorts(
        buffer=services.buffer,
        leases=services.leases,
        store=services.store,
        embedder=services.embedder,
        attempts=services.attempts,
    )


def run(client: MemoryClient, user: str, **kw: Any) -> ConsolidationResult:
    """One consolidation run under a fresh lease, as a worker's task would do it."""
    svc = client.services
    token = svc.leases.acquire(user)
    assert token is not None
    cfg = client.settings.batching
    try:
        return consolidate_user(
            ports(svc), user, token, cfg.batch_max_turns, cfg.max_attempts, **kw
        )
    finally:
        svc.leases.release(user, token)


def chat(n: int, prefix: str = "t") -> list[dict[str, Any]]:
    """``n`` short valid turns."""
    return [{"role": "user", "content": f"{prefix}{i}: 我喜欢吉他。"} for i in range(n)]


def test_one_unstorable_turn_is_parked_alone_and_its_batch_mates_are_stored(
    client: MemoryClient, loose: MemoryClient
) -> None:
    """A batch of 4 with one turn the store refuses: 3 stored, 1 dead-lettered with its reason."""
    turns = chat(4)
    turns[1]["metadata"] = TOO_MANY_KEYS
    ids = loose.add_turns("u", turns)
    result = run(client, "u")
    assert (result.turns, result.memories, len(result.dead_lettered)) == (3, 3, 1)
    store = client.services.store
    assert {m.id for m in store.get("u", [raw_memory_id("u", t) for t in ids])} == {
        raw_memory_id("u", t) for t in (ids[0], ids[2], ids[3])
    }
    [letter] = client.services.buffer.dead_letters("u")
    assert [e.turn.turn_id for e in client.services.buffer.dead_letter_entries(letter)] == [ids[1]]
    assert letter["reason"].startswith("InvalidInput: memories[0].metadata")
    assert client.pending("u") == 0
    assert client.flush("u", wait=False) is False  # a parked turn is not a flushed one


def test_a_replayed_letter_stores_what_it_can_and_keeps_only_the_bad_turn(
    client: MemoryClient, loose: MemoryClient
) -> None:
    """Replay of a letter that still fails goes turn by turn; the letter keeps the bad turn."""
    turns = chat(3)
    turns[2]["metadata"] = TOO_MANY_KEYS
    ids = loose.add_turns("u", turns)
    svc = client.services
    token = svc.leases.acquire("u")
    assert token is not None
    svc.buffer.dead_letter("u", token, "b-old", svc.buffer.read("u", 3), "an older worker")
    [letter] = svc.buffer.dead_letters("u")
    assert replay_dead_letter(ports(svc), letter, token) == 2
    svc.leases.release("u", token)
    [kept] = svc.buffer.dead_letters("u")
    assert kept["batch_id"] == "b-old"
    assert [e.turn.turn_id for e in svc.buffer.dead_letter_entries(kept)] == [ids[2]]
    assert f"turn {ids[2]}: InvalidInput" in kept["reason"]
    assert svc.store.count("u") == 2


def test_a_batch_takes_turns_until_batch_max_chars(client: MemoryClient) -> None:
    """Turns of 10,000, 9,000 and 8,000 chars and a short one: three batches of <= 16,000 chars."""
    sizes = [10_000, 9_000, 8_000]
    turns = [{"role": "user", "content": "长" * n} for n in sizes]
    ids = client.add_turns("u", turns + chat(1))
    result = run(client, "u", batch_max_chars=16_000)
    assert (result.batches, result.turns, result.memories) == (3, 4, 4)  # 1 + 1 + 2
    stored = client.services.store.get("u", [raw_memory_id("u", ids[0])])
    assert stored[0].content == "长" * 10_000  # the embedder saw a part; the store has it all


def test_a_run_starts_no_batch_once_its_time_budget_is_spent(client: MemoryClient) -> None:
    """With a spent budget a run does one batch and leaves the rest for the next dispatch."""
    client.add_turns("u", chat(10))
    first = run(client, "u", time_budget_s=0)
    assert (first.batches, first.turns) == (1, 4)
    assert client.pending("u") == 6
    rest = run(client, "u")
    assert (rest.batches, rest.turns) == (2, 6)
    assert client.services.store.count("u") == 10
