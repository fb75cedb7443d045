"""MemoryClient and in-process consolidation against real Redis and a real SQLite store.

Consolidation runs here by calling :func:`pipelines.consolidation.run.consolidate_user` directly,
without Celery; the queue itself is exercised in ``test_worker.py`` and ``tests/fault/``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis

from memlane.client import MemoryClient
from memlane.config import Settings
from memlane.constants import TOMBSTONE_TTL_S
from memlane.errors import InvalidInput, LeaseLost, UserForgotten
from memlane.ids import raw_memory_id
from memlane.models import MemoryKind
from memlane.services import Services
from memlane.store.sqlite import SqliteStore
from pipelines.consolidation.replay import replay_dead_letter
from pipelines.consolidation.run import ConsolidationPorts, build_memories, consolidate_user

pytestmark = pytest.mark.redis

T0 = datetime(2024, 10, 26, 13, 0, tzinfo=UTC)


def turns(n: int, start: int = 0, user: str = "u") -> list[dict[str, Any]]:
    """``n`` valid turn mappings with fixed timestamps (so default ids are stable)."""
    return [
        {
            "role": "user" if i % 2 == 0 else "assistant",
            "content": f"{user} says number {i}: 我喜欢第{i}号吉他。",
            "ts": (T0 + timedelta(minutes=i)).isoformat(),
        }
        for i in range(start, start + n)
    ]


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    """Isolated settings: own data dir and key prefix, batches of 4 turns."""
    return make_settings(batching={"batch_max_turns": 4, "max_attempts": 3})


@pytest.fixture
def client(settings: Settings, redis_client: redis.Redis) -> Iterator[MemoryClient]:
    """A client on the test's Redis prefix and SQLite file."""
    with MemoryClient(settings) as c:
        yield c


@pytest.fixture
def store(settings: Settings, client: MemoryClient) -> SqliteStore:
    """The SQLite store shared by the client and the in-process consolidation."""
    s = client.services.store
    assert isinstance(s, SqliteStore)
    return s


def ports_of(services: Services, store: SqliteStore) -> ConsolidationPorts:
    """Consolidation ports from a Services bundle and an explicit SQLite store (raw mode)."""
    return ConsolidationPorts(
        buffer=services.buffer,
        leases=services.leases,
        store=store,
        embedder=services.embedder,
        attempts=services.attempts,
    )


def consolidate(client: MemoryClient, store: SqliteStore, user: str) -> Any:
    """Run consolidation for one user under a fresh lease, as a worker would."""
    svc = client.services
    token = svc.leases.acquire(user)
    assert token is not None
    try:
        cfg = client.settings.batching
        return consolidate_user(
            ports_of(svc, store), user, token, cfg.batch_max_turns, cfg.max_attempts
        )
    finally:
        svc.leases.release(user, token)


def all_ids(store: SqliteStore, user: str) -> list[str]:
    """Every memory id of the user."""
    ids: list[str] = []
    cursor = None
    while True:
        page = store.list(user, limit=500, cursor=cursor)
        ids += [m.id for m in page.memories]
        cursor = page.cursor
        if cursor is None:
            return ids


# -- add_turns --------------------------------------------------------------------------------


def test_add_turns_returns_ids_and_counts_pending(client: MemoryClient) -> None:
    """Each pushed turn gets an id; pending counts what waits for consolidation."""
    ids = client.add_turns("u", turns(3))
    assert len(ids) == 3 and len(set(ids)) == 3
    assert client.pending("u") == 3
    more = client.add_turns("u", turns(2, start=3), session_id="s1")
    assert client.pending("u") == 5
    assert not set(more) & set(ids)
    assert client.pending("someone-else") == 0
    assert client.watermark("u") is None


def test_repushing_the_same_turns_is_a_no_op(client: MemoryClient) -> None:
    """Default ids are stable, so a bot that retries a push does not duplicate turns."""
    first = client.add_turns("u", turns(3))
    second = client.add_turns("u", turns(3))
    assert first == second
    assert client.pending("u") == 3
    explicit = [{"role": "user", "content": "x", "turn_id": "msg-1"}]
    client.add_turns("u", explicit)
    client.add_turns("u", [{"role": "user", "content": "edited", "turn_id": "msg-1"}])
    assert client.pending("u") == 4


def test_a_bad_turn_in_a_batch_pushes_nothing(
    client: MemoryClient, redis_client: redis.Redis, key_prefix: str
) -> None:
    """Validation runs before any write: one bad turn of three leaves Redis untouched."""
    batch = turns(3)
    batch[2]["content"] = "   "
    with pytest.raises(InvalidInput) as info:
        client.add_turns("fresh", batch)
    assert info.value.field == "turns[2].content"
    assert client.pending("fresh") == 0
    keys = client.services.keys
    assert not redis_client.exists(keys.stream("fresh"))
    assert not redis_client.exists(keys.turn_ids("fresh"))
    assert redis_client.zscore(keys.pending, "fresh") is None
    assert list(redis_client.scan_iter(match=f"{key_prefix}:*")) == []


def test_a_bad_turn_leaves_an_existing_buffer_unchanged(client: MemoryClient) -> None:
    """A refused call after good ones changes nothing already buffered."""
    client.add_turns("u", turns(2))
    bad = [*turns(2, start=2), {"role": "robot", "content": "x"}]
    with pytest.raises(InvalidInput) as info:
        client.add_turns("u", bad)
    assert info.value.field == "turns[2].role"
    assert client.pending("u") == 2
    # The good turns of the refused call were not remembered as seen either.
    client.add_turns("u", turns(2, start=2))
    assert client.pending("u") == 4


def test_bad_user_id_is_refused_everywhere(client: MemoryClient) -> None:
    """Every entry point validates the user id."""
    for call in (
        lambda: client.add_turns("", turns(1)),
        lambda: client.pending(" "),
        lambda: client.watermark("a\x00"),
        lambda: client.flush("", wait=False),
        lambda: client.forget_user("x" * 500),
        lambda: client.retrieve("", "query"),
    ):
        with pytest.raises(InvalidInput) as info:
            call()
        assert info.value.field == "user_id"


# -- in-process consolidation -----------------------------------------------------------------


def test_consolidate_user_stores_every_turn_once(client: MemoryClient, store: SqliteStore) -> None:
    """Raw mode: memory count == turn count, ids derive from (user, turn id), buffer empties."""
    ids = client.add_turns("u", turns(10))
    result = consolidate(client, store, "u")
    assert (result.batches, result.turns, result.memories) == (3, 10, 10)  # 4 + 4 + 2
    assert result.dead_lettered == []
    assert store.count("u") == 10
    assert sorted(all_ids(store, "u")) == sorted(raw_memory_id("u", t) for t in ids)
    assert client.pending("u") == 0
    assert client.watermark("u") is not None
    mems = store.get("u", [raw_memory_id("u", ids[0])])
    assert mems[0].kind is MemoryKind.RAW
    assert mems[0].embedding is not None and len(mems[0].embedding) == 384
    assert mems[0].recorded_at == T0


def test_a_second_run_writes_nothing_new(client: MemoryClient, store: SqliteStore) -> None:
    """After consolidation, re-running or re-pushing the same turns adds no memories."""
    client.add_turns("u", turns(6))
    consolidate(client, store, "u")
    before = sorted(all_ids(store, "u"))
    mark = client.watermark("u")
    again = consolidate(client, store, "u")
    assert (again.batches, again.memories) == (0, 0)
    client.add_turns("u", turns(6))  # the bot retries its pushes: ids were seen
    assert client.pending("u") == 0
    consolidate(client, store, "u")
    assert sorted(all_ids(store, "u")) == before
    assert client.watermark("u") == mark


def test_a_crash_between_upsert_and_commit_duplicates_nothing(
    client: MemoryClient, store: SqliteStore
) -> None:
    """If a worker died after writing but before committing, the retry upserts the same ids."""
    client.add_turns("u", turns(4))
    svc = client.services
    entries = svc.buffer.read("u", 4)
    from memlane.ids import batch_id

    crashed = build_memories(ports_of(svc, store), "u", batch_id("u", "x", "y"), entries)
    store.upsert(crashed)  # written, never committed
    assert client.pending("u") == 4
    consolidate(client, store, "u")
    assert store.count("u") == 4
    assert sorted(all_ids(store, "u")) == sorted(m.id for m in crashed)
    assert client.pending("u") == 0


def test_watermark_advances_only_after_commit(client: MemoryClient, store: SqliteStore) -> None:
    """Reading a batch or writing the store does not move the watermark; the commit does."""
    client.add_turns("u", turns(4))
    svc = client.services
    entries = svc.buffer.read("u", 4)
    store.upsert(build_memories(ports_of(svc, store), "u", "b-test", entries))
    assert client.watermark("u") is None
    consolidate(client, store, "u")
    assert client.watermark("u") == entries[-1].entry_id


def test_consolidation_needs_the_lease(client: MemoryClient, store: SqliteStore) -> None:
    """A worker whose lease was taken by someone else stops before touching the batch."""
    client.add_turns("u", turns(3))
    svc = client.services
    holder = svc.leases.acquire("u")
    assert holder is not None
    with pytest.raises(LeaseLost):
        consolidate_user(ports_of(svc, store), "u", "not-the-token", 4, 3)
    assert store.count("u") == 0
    assert client.pending("u") == 3


def test_a_batch_started_too_often_is_dead_lettered_and_replayed(
    client: MemoryClient, store: SqliteStore
) -> None:
    """Past max_attempts a batch goes turn by turn; only a turn that also crashed is parked."""
    client.add_turns("u", turns(6))
    svc = client.services
    entries = svc.buffer.read("u", 4)
    from memlane.ids import batch_id

    first = batch_id("u", entries[0].entry_id, entries[-1].entry_id)
    alone = batch_id("u", entries[1].entry_id, entries[1].entry_id)
    for _ in range(client.settings.batching.max_attempts):
        svc.attempts.incr(first)  # earlier starts of the batch that never finished ...
        svc.attempts.incr(alone)  # ... and of its second turn on its own
    result = consolidate(client, store, "u")
    assert result.dead_lettered == [alone]
    assert (result.turns, result.memories) == (5, 5)  # its batch-mates and the next batch
    assert client.pending("u") == 0
    [letter] = svc.buffer.dead_letters("u")
    assert letter["reason"] == "too many attempts"
    assert [e[0] for e in letter["entries"]] == [entries[1].entry_id]
    token = svc.leases.acquire("u")
    assert token is not None
    assert replay_dead_letter(ports_of(svc, store), letter, token) == 1
    svc.leases.release("u", token)
    assert svc.buffer.dead_letters() == []
    assert store.count("u") == 6


def test_a_store_that_refuses_the_batch_dead_letters_it(
    client: MemoryClient, settings: Settings, tmp_path: Any
) -> None:
    """A non-retryable store error (wrong vector size) parks each turn alone, turns kept."""
    narrow = SqliteStore(tmp_path / "narrow.sqlite3", dims=8, limits=settings.limits)
    narrow.ensure_schema()
    try:
        ids = client.add_turns("u", turns(3))
        result = consolidate(client, narrow, "u")
        assert len(result.dead_lettered) == 3
        assert result.memories == 0
        letters = client.services.buffer.dead_letters("u")
        assert all(d["reason"].startswith("InvalidInput") for d in letters)
        parked = [
            e.turn.turn_id for d in letters for e in client.services.buffer.dead_letter_entries(d)
        ]
        assert sorted(parked) == sorted(ids)
        assert narrow.count("u") == 0
        assert client.pending("u") == 0
        assert client.watermark("u") is None
    finally:
        narrow.close()


# -- forget, flush, retrieve ------------------------------------------------------------------


def test_forget_user_removes_everything_of_that_user(
    client: MemoryClient, store: SqliteStore, redis_client: redis.Redis, key_prefix: str
) -> None:
    """Memories, buffered turns, turn ids, pending entry and dead letters all go."""
    client.add_turns("gone", turns(8, user="gone"))
    client.add_turns("kept", turns(3, user="kept"))
    consolidate(client, store, "gone")
    consolidate(client, store, "kept")
    client.add_turns("gone", turns(2, start=8, user="gone"))  # still buffered
    svc = client.services
    token = svc.leases.acquire("gone")
    assert token is not None
    svc.buffer.dead_letter("gone", token, "b-gone", svc.buffer.read("gone", 1), "boom")
    svc.leases.release("gone", token)
    assert client.forget_user("gone") == 8
    assert store.count("gone") == 0
    assert client.pending("gone") == 0
    assert svc.buffer.dead_letters("gone") == []
    assert client.watermark("gone") is None
    keys = svc.keys
    assert not redis_client.exists(keys.stream("gone"), keys.turn_ids("gone"), keys.lease("gone"))
    assert redis_client.zscore(keys.pending, "gone") is None
    assert store.count("kept") == 3
    assert client.forget_user("gone") == 0  # safe to re-run
    remaining = {k.decode() for k in redis_client.scan_iter(match=f"{key_prefix}:*")}
    # Only the tombstone names the user (no content: a fencing token and a time), and expires.
    assert [k for k in remaining if "gone" in k] == [keys.tombstone("gone")]
    assert re.fullmatch(rb"\d+ \d+", redis_client.get(keys.tombstone("gone")) or b"")
    assert 0 < redis_client.ttl(keys.tombstone("gone")) <= TOMBSTONE_TTL_S


def test_forget_user_fences_off_the_lease_holder(client: MemoryClient) -> None:
    """forget_user does not wait for a held lease: it takes it, and the old token is dead."""
    client.add_turns("busy", turns(2))
    svc = client.services
    token = svc.leases.acquire("busy")
    assert token is not None
    entries = svc.buffer.read("busy", 10)
    assert client.forget_user("busy") == 0
    assert client.pending("busy") == 0
    assert svc.leases.holder("busy") is None  # released by forget
    assert svc.leases.renew("busy", token) is False  # no retaking a lapsed lease either
    with pytest.raises(UserForgotten):
        svc.leases.check("busy", token)
    with pytest.raises(UserForgotten):
        svc.leases.guard("busy", token, ["m1"])
    with pytest.raises(LeaseLost):
        svc.buffer.commit("busy", token, entries)
    later = svc.leases.acquire("busy")  # a grant after the forget is a fresh start
    assert later is not None and svc.leases.renew("busy", later) is True


def test_flush_without_wait_marks_the_user_ready(
    client: MemoryClient, redis_client: redis.Redis
) -> None:
    """flush(wait=False) indexes the user for the next dispatch and reports not-done."""
    client.add_turns("u", turns(1))
    assert client.flush("u", wait=False) is False
    assert redis_client.zscore(client.services.keys.pending, "u") == 0
    assert client.flush("nobody", wait=False) is True


def test_flush_times_out_without_workers(client: MemoryClient) -> None:
    """With no worker running, waiting returns False at the deadline instead of hanging."""
    client.add_turns("u", turns(1))
    assert client.flush("u", wait=True, timeout=0.3) is False


def test_retrieve_finds_consolidated_and_pending_turns(
    client: MemoryClient, store: SqliteStore
) -> None:
    """Consolidated memories are found; include_pending also searches the buffer."""
    client.add_turns("u", [{"role": "user", "content": "我的爱好是吉他。"}])
    consolidate(client, store, "u")
    client.add_turns("u", [{"role": "user", "content": "I just adopted a cat named Mochi."}])
    hits = client.retrieve("u", "你知道我的乐器爱好是什么?", top_k=3)
    assert hits and "吉他" in hits[0].memory.content
    assert all(not h.pending for h in hits)
    assert not any("Mochi" in h.memory.content for h in hits)
    with_pending = client.retrieve("u", "what is my cat called?", top_k=3, include_pending=True)
    assert any(h.pending and "Mochi" in h.memory.content for h in with_pending)


def test_retrieve_is_scoped_to_the_user(client: MemoryClient, store: SqliteStore) -> None:
    """Users with look-alike ids never see each other's memories."""
    for user in ["a", "a:b", "*", "{a}"]:
        client.add_turns(user, [{"role": "user", "content": f"secret of {user}: 我的爱好是吉他。"}])
        consolidate(client, store, user)
    for user in ["a", "a:b", "*", "{a}"]:
        hits = client.retrieve(user, "爱好 secret", top_k=10, include_pending=True)
        assert [h.memory.content for h in hits] == [f"secret of {user}: 我的爱好是吉他。"]
