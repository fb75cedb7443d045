"""The store contract for versions and whole-user reads (every backend, unchanged).

Status filters, predecessors (``superseded_by``), newest-first pages, supersede reasons,
snapshots (export) and user counts (operators).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from memlane.errors import InvalidInput
from memlane.models import (
    Memory,
    MemoryFilter,
    MemoryStatus,
    MergeRecord,
    SupersedeReason,
    TimeField,
    TimeWindow,
)
from memlane.store import MemoryStore, SearchQuery
from memlane.store.base import SNAPSHOT_PAGE
from memlane.store.codec import memory_to_doc
from tests.contract.factories import BASE_TIME, make_memory, vector

EVERYTHING = MemoryFilter(include_superseded=True)


def _statuses() -> list[Memory]:
    return [
        make_memory("shared active", mem_id="a", seed=1, minutes=1),
        make_memory(
            "shared superseded",
            mem_id="s",
            seed=2,
            minutes=2,
            status=MemoryStatus.SUPERSEDED,
            superseded_by="a",
            reason=SupersedeReason.EDITED,
        ),
        make_memory(
            "shared deleted",
            mem_id="d",
            seed=3,
            minutes=3,
            status=MemoryStatus.DELETED,
            reason=SupersedeReason.DELETED,
        ),
    ]


def _ids(store: MemoryStore, flt: MemoryFilter) -> set[str]:
    return {m.id for m in store.list("u1", flt, limit=100).memories}


def test_status_filter_selects_exactly_those_statuses(store: MemoryStore) -> None:
    """statuses picks any subset; default is active only; include_superseded is every status."""
    store.upsert(_statuses())
    assert _ids(store, MemoryFilter()) == {"a"}
    assert _ids(store, EVERYTHING) == {"a", "s", "d"}
    assert _ids(store, MemoryFilter(statuses=(MemoryStatus.DELETED,))) == {"d"}
    both = MemoryFilter(statuses=(MemoryStatus.SUPERSEDED, MemoryStatus.DELETED))
    assert _ids(store, both) == {"s", "d"}
    assert store.count("u1", both) == 2


def test_deleted_memories_are_never_searched(store: MemoryStore) -> None:
    """A deleted memory is found by neither BM25 nor kNN with the default filter."""
    store.upsert(_statuses())
    hits = store.search("u1", SearchQuery(text="shared deleted", vector=vector(3), k=10))
    assert [h.memory.id for h in hits] == ["a"]


def test_superseded_by_filter_finds_predecessors(store: MemoryStore) -> None:
    """superseded_by selects the memories that name one of the given ids as successor."""
    store.upsert(_statuses())
    store.upsert([make_memory("older", mem_id="o", minutes=0)])
    store.supersede("u1", ["o"], "s", BASE_TIME, SupersedeReason.CONTRADICTION)
    assert _ids(store, MemoryFilter(include_superseded=True, superseded_by=("a",))) == {"s"}
    flt = MemoryFilter(include_superseded=True, superseded_by=("a", "s"))
    assert _ids(store, flt) == {"s", "o"}
    assert _ids(store, MemoryFilter(include_superseded=True, superseded_by=("x",))) == set()


def test_supersede_records_the_reason(store: MemoryStore) -> None:
    """supersede stores its reason; an unknown reason is refused naming it, nothing written."""
    store.upsert([make_memory("old", mem_id="old"), make_memory("new", mem_id="new")])
    with pytest.raises(InvalidInput) as err:
        store.supersede("u1", ["old"], "new", BASE_TIME, "bored")  # type: ignore[arg-type]
    assert err.value.field == "reason"
    assert store.get("u1", ["old"])[0].status is MemoryStatus.ACTIVE
    store.supersede("u1", ["old"], "new", BASE_TIME, SupersedeReason.REFLECTION)
    (old,) = store.get("u1", ["old"])
    assert old.reason is SupersedeReason.REFLECTION and old.superseded_by == "new"


def test_version_fields_round_trip(store: MemoryStore) -> None:
    """reason, valid_from and merge records come back as written; valid_from defaults."""
    merged_at = datetime(2024, 11, 2, 8, tzinfo=UTC)
    memory = make_memory(
        "merged",
        mem_id="m",
        valid_from=BASE_TIME + timedelta(hours=1),
        merges=[MergeRecord("b-2", ("t-8", "t-9"), merged_at), MergeRecord(None, (), merged_at)],
    )
    store.upsert([memory, make_memory("plain", mem_id="p")])
    got, plain = store.get("u1", ["m", "p"])
    assert got.valid_from == BASE_TIME + timedelta(hours=1)
    assert got.merges == memory.merges
    assert plain.valid_from == plain.recorded_at and plain.merges == [] and plain.reason is None


def test_newest_first_pages_cover_everything_once(store: MemoryStore) -> None:
    """newest_first walks (recorded_at, id) backwards; equal times go by id, descending."""
    memories = [make_memory(f"m{i}", mem_id=f"m{i}", minutes=i // 2, seed=None) for i in range(9)]
    store.upsert(memories)
    expected = [m.id for m in sorted(memories, key=lambda m: (m.recorded_at, m.id), reverse=True)]
    seen: list[str] = []
    cursor = None
    while True:
        page = store.list("u1", EVERYTHING, limit=4, cursor=cursor, newest_first=True)
        seen += [m.id for m in page.memories]
        if page.cursor is None:
            break
        cursor = page.cursor
    assert seen == expected


def test_newest_first_with_recorded_window(store: MemoryStore) -> None:
    """The recorded_at window [since, until) combines with newest-first order."""
    store.upsert([make_memory(f"m{i}", mem_id=f"m{i}", minutes=i, seed=None) for i in range(6)])
    window = TimeWindow(
        BASE_TIME + timedelta(minutes=1), BASE_TIME + timedelta(minutes=4), TimeField.RECORDED_AT
    )
    page = store.list("u1", MemoryFilter(time=window), limit=10, newest_first=True)
    assert [m.id for m in page.memories] == ["m3", "m2", "m1"]


def test_snapshot_streams_every_memory_with_counts(store: MemoryStore) -> None:
    """A snapshot yields each of the user's memories once, oldest first, in bounded pages,
    with counts per status; embeddings only when asked for; other users never."""
    n = SNAPSHOT_PAGE + 7
    memories = [
        make_memory(f"fact {i}", mem_id=f"m{i:04d}", seed=i % 5, minutes=i) for i in range(n)
    ]
    memories[3] = memories[3].replace(status=MemoryStatus.DELETED, reason=SupersedeReason.DELETED)
    store.upsert(memories)
    store.upsert([make_memory("other", user_id="u2", mem_id="m0000")])
    with store.snapshot("u1") as snap:
        assert snap.counts == {"active": n - 1, "deleted": 1}
        pages = list(snap.pages)
    assert all(len(p) <= SNAPSHOT_PAGE for p in pages)
    got = [m for page in pages for m in page]
    assert [m.id for m in got] == [m.id for m in memories]
    assert all(m.embedding is None and m.user_id == "u1" for m in got)
    assert memory_to_doc(got[3], with_embedding=False)["status"] == "deleted"
    with store.snapshot("u1", with_embeddings=True) as snap:
        first = next(snap.pages)[0]
    assert first.embedding == pytest.approx(memories[0].embedding, abs=1e-6)
    with store.snapshot("nobody") as snap:
        assert snap.counts == {} and list(snap.pages) == []


def test_users_pages_in_id_order_with_counts(store: MemoryStore) -> None:
    """users() lists users with memories, in id order, with active and total counts."""
    for user in ("b", "a", "用户", "c"):
        store.upsert([make_memory("x", user_id=user, mem_id="m1")])
    store.upsert([make_memory("y", user_id="a", mem_id="m2", status=MemoryStatus.DELETED)])
    first = store.users(limit=2)
    assert [(u.user_id, u.active, u.total) for u in first] == [("a", 1, 2), ("b", 1, 1)]
    rest = store.users(after="b", limit=10)
    assert [u.user_id for u in rest] == ["c", "用户"]
    assert store.users(after="用户") == []
