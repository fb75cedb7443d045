"""The memory API of MemoryClient, the same on every backend: list, get, update, delete, history.

Real Redis (leases, the buffer), the real local embedding model and each store backend.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from memlane.client import MemoryClient
from memlane.errors import InvalidInput, NotFound
from memlane.models import (
    Memory,
    MemoryKind,
    MemoryStatus,
    MergeRecord,
    SupersedeReason,
    TimeGranularity,
)
from tests.contract.factories import BASE_TIME, make_memory, stored

pytestmark = pytest.mark.redis


def _ids(memories: list[Memory]) -> list[str]:
    return [m.id for m in memories]


def _retrieved(client: MemoryClient, query: str, **kwargs: Any) -> list[str]:
    return [r.memory.id for r in client.retrieve("u1", query, top_k=50, **kwargs)]


# -- list_memories ----------------------------------------------------------------------------


def test_list_memories_is_newest_first_in_pages(client: MemoryClient) -> None:
    """Pages follow recorded_at (then id) backwards; the cursor ends with None."""
    stored(client, [make_memory(f"fact {i}", mem_id=f"m{i}", minutes=i) for i in range(7)])
    pages = []
    cursor = None
    while True:
        page = client.list_memories("u1", cursor=cursor, limit=3)
        pages.append(_ids(page.memories))
        if page.cursor is None:
            break
        cursor = page.cursor
    assert pages == [["m6", "m5", "m4"], ["m3", "m2", "m1"], ["m0"]]


def test_list_memories_filters_status_kinds_and_recorded_window(client: MemoryClient) -> None:
    """status picks active/superseded/deleted/all; kinds and [since, until) narrow it."""
    stored(
        client,
        [
            make_memory("a0", mem_id="a0", minutes=0),
            make_memory("a1", mem_id="a1", minutes=10, kind=MemoryKind.RAW),
            make_memory("a2", mem_id="a2", minutes=20, kind=MemoryKind.RAW),
            make_memory("s", mem_id="s", minutes=30, status=MemoryStatus.SUPERSEDED),
            make_memory("d", mem_id="d", minutes=40, status=MemoryStatus.DELETED),
        ],
    )
    assert _ids(client.list_memories("u1").memories) == ["a2", "a1", "a0"]
    assert _ids(client.list_memories("u1", status="superseded").memories) == ["s"]
    assert _ids(client.list_memories("u1", status=MemoryStatus.DELETED).memories) == ["d"]
    assert _ids(client.list_memories("u1", status="all").memories) == ["d", "s", "a2", "a1", "a0"]
    assert _ids(client.list_memories("u1", kinds="raw").memories) == ["a2", "a1"]
    since, until = BASE_TIME + timedelta(minutes=10), BASE_TIME + timedelta(minutes=30)
    page = client.list_memories("u1", status="all", since=since, until=until)
    assert _ids(page.memories) == ["a2", "a1"]
    # Naive bounds take the configured timezone (Asia/Shanghai, as BASE_TIME is +08:00).
    naive = client.list_memories("u1", since=since.replace(tzinfo=None).isoformat())
    assert _ids(naive.memories) == ["a2", "a1"]


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"limit": 0}, "limit"),
        ({"limit": 501}, "limit"),
        ({"limit": "5"}, "limit"),
        ({"limit": True}, "limit"),
        ({"status": "gone"}, "status"),
        ({"kinds": "bogus"}, "kinds"),
        ({"kinds": []}, "kinds"),
        ({"since": "yesterday"}, "since"),
        ({"until": 12}, "until"),
        ({"since": BASE_TIME, "until": BASE_TIME}, "until"),
        ({"cursor": "not a cursor!"}, "cursor"),
        ({"cursor": 3}, "cursor"),
        ({"user_id": ""}, "user_id"),
    ],
)
def test_list_memories_refuses_bad_parameters_by_name(
    client: MemoryClient, kwargs: dict[str, Any], field: str
) -> None:
    """Each bad parameter is InvalidInput naming it."""
    args = {"user_id": "u1", **kwargs}
    with pytest.raises(InvalidInput) as err:
        client.list_memories(**args)
    assert err.value.field == field


def test_list_memories_accepts_the_largest_page(client: MemoryClient) -> None:
    """limit=500 is allowed and returns at most 500."""
    stored(client, [make_memory(f"f{i}", mem_id=f"m{i:03d}", minutes=i) for i in range(3)])
    assert len(client.list_memories("u1", limit=500).memories) == 3


# -- get_memory -------------------------------------------------------------------------------


def test_get_memory_returns_any_status_and_another_users_is_not_found(
    client: MemoryClient,
) -> None:
    """get finds the user's memory whatever its status; another user's id is NotFound exactly
    like a missing id."""
    stored(client, [make_memory("mine", mem_id="m1", status=MemoryStatus.DELETED)])
    stored(client, [make_memory("theirs", user_id="u2", mem_id="theirs")])
    got = client.get_memory("u1", "m1")
    assert got.content == "mine" and got.status is MemoryStatus.DELETED
    assert got.embedding is not None
    for missing in ("theirs", "never"):
        with pytest.raises(NotFound) as err:
            client.get_memory("u1", missing)
        assert err.value.field == "memory_id"
        assert str(err.value) == str(NotFound("memory_id", missing))
    with pytest.raises(InvalidInput) as bad:
        client.get_memory("u1", "")
    assert bad.value.field == "memory_id"


# -- update_memory ----------------------------------------------------------------------------


def _old(client: MemoryClient) -> Memory:
    (old,) = stored(
        client,
        [
            make_memory(
                "the user lives in Beijing",
                mem_id="o1",
                keywords=["Beijing"],
                source_turn_ids=["t1", "t2"],
                batch_id="b-1",
                session_id="s1",
                metadata={"src": "chat"},
            )
        ],
    )
    return old


def test_update_writes_a_new_embedded_version_and_supersedes_the_old(
    client: MemoryClient,
) -> None:
    """A new id with the new content, re-embedded, provenance kept; the old one superseded
    (edited) until the new one's valid_from; retrieval finds only the new one."""
    old = _old(client)
    new = client.update_memory("u1", "o1", content="the user lives in Hangzhou")
    assert new.id != old.id and new.status is MemoryStatus.ACTIVE
    assert new.content == "the user lives in Hangzhou" and new.keywords == []
    assert new.source_turn_ids == old.source_turn_ids and new.batch_id == "b-1"
    assert new.recorded_at == old.recorded_at and new.metadata == {"src": "chat"}
    (expected,) = client.services.embedder.embed_passages([new.content])
    assert new.embedding == pytest.approx(expected, abs=1e-5)
    assert client.get_memory("u1", new.id).content == new.content
    before = client.get_memory("u1", "o1")
    assert before.status is MemoryStatus.SUPERSEDED
    assert before.reason is SupersedeReason.EDITED and before.superseded_by == new.id
    assert before.valid_to == new.valid_from
    assert new.valid_from is not None and new.valid_from > old.recorded_at
    assert _retrieved(client, "where does the user live, Beijing?") == [new.id]


def test_update_changes_metadata_and_event_time_only(client: MemoryClient) -> None:
    """metadata replaces the old; an event time gets day granularity; content kept."""
    _old(client)
    when = BASE_TIME - timedelta(days=3)
    new = client.update_memory("u1", "o1", metadata={"checked": True}, event_time=when)
    assert new.content == "the user lives in Beijing" and new.keywords == ["Beijing"]
    assert new.metadata == {"checked": True}
    assert new.event_time == when and new.time_granularity is TimeGranularity.DAY


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({}, "content"),
        ({"content": ""}, "content"),
        ({"content": "a\x00b"}, "content"),
        ({"metadata": "x"}, "metadata"),
        ({"metadata": {"k": {"nested": 1}}}, "metadata.k"),
        ({"event_time": "soon"}, "event_time"),
    ],
)
def test_update_refuses_bad_changes_and_writes_nothing(
    client: MemoryClient, kwargs: dict[str, Any], field: str
) -> None:
    """Bad or missing changes are InvalidInput naming the parameter; the memory is untouched."""
    _old(client)
    with pytest.raises(InvalidInput) as err:
        client.update_memory("u1", "o1", **kwargs)
    assert err.value.field == field
    assert _ids(client.list_memories("u1", status="all").memories) == ["o1"]


def test_update_only_edits_an_active_memory_of_this_user(client: MemoryClient) -> None:
    """Superseded or deleted: InvalidInput naming memory_id; missing or another user's:
    NotFound."""
    _old(client)
    new = client.update_memory("u1", "o1", content="the user lives in Hangzhou")
    with pytest.raises(InvalidInput) as err:
        client.update_memory("u1", "o1", content="again")
    assert err.value.field == "memory_id" and "superseded" in str(err.value)
    client.delete_memory("u1", new.id)
    with pytest.raises(InvalidInput, match="deleted"):
        client.update_memory("u1", new.id, content="again")
    with pytest.raises(NotFound):
        client.update_memory("u2", new.id, content="hijack")
    with pytest.raises(NotFound):
        client.update_memory("u1", "missing", content="x")
    assert len(client.list_memories("u1", status="all").memories) == 2


# -- delete_memory ----------------------------------------------------------------------------


def test_soft_delete_is_never_retrieved_but_kept_in_history(client: MemoryClient) -> None:
    """A soft-deleted memory is gone from retrieval (pending path included), listed as
    deleted, and in its history; deleting it again changes nothing."""
    stored(
        client,
        [
            make_memory("the user plays the violin", mem_id="v"),
            make_memory("the user has a cat", mem_id="c", minutes=1),
        ],
    )
    assert "v" in _retrieved(client, "violin")
    assert client.delete_memory("u1", "v") == 1
    assert client.delete_memory("u1", "v") == 0
    client.add_turns("u1", [{"role": "user", "content": "what about my violin lessons?"}])
    assert "v" not in _retrieved(client, "violin")
    pending = client.retrieve("u1", "violin", include_pending=True)
    assert "v" not in [r.memory.id for r in pending]
    assert any(r.pending for r in pending)  # the pending path itself ran
    gone = client.get_memory("u1", "v")
    assert gone.status is MemoryStatus.DELETED and gone.reason is SupersedeReason.DELETED
    assert gone.valid_to is not None
    assert _ids(client.list_memories("u1", status="deleted").memories) == ["v"]
    assert _ids(client.list_memories("u1").memories) == ["c"]
    (version,) = client.memory_history("u1", "v")
    assert version.status is MemoryStatus.DELETED


def test_hard_delete_removes_every_version_of_the_chain(client: MemoryClient) -> None:
    """hard=True removes the chain from any of its versions; other memories stay."""
    stored(client, [make_memory("v1 text", mem_id="v1"), make_memory("other", mem_id="x")])
    v2 = client.update_memory("u1", "v1", content="v2 text")
    v3 = client.update_memory("u1", v2.id, content="v3 text")
    client.delete_memory("u1", v3.id)  # a soft-deleted head still belongs to the chain
    assert client.delete_memory("u1", v2.id, hard=True) == 3
    for mem_id in ("v1", v2.id, v3.id):
        with pytest.raises(NotFound):
            client.get_memory("u1", mem_id)
    assert _ids(client.list_memories("u1", status="all").memories) == ["x"]
    with pytest.raises(NotFound):
        client.delete_memory("u1", "v1", hard=True)
    with pytest.raises(InvalidInput) as err:
        client.delete_memory("u1", "x", hard="yes")  # type: ignore[arg-type]
    assert err.value.field == "hard"


# -- memory_history ---------------------------------------------------------------------------


def test_history_walks_both_directions_with_merges(client: MemoryClient) -> None:
    """From any version: the whole chain oldest first, each version with status, reason,
    validity, provenance, its predecessors and the merges it absorbed."""
    t = BASE_TIME
    merge = MergeRecord("b-3", ("t5",), t + timedelta(days=3))
    stored(
        client,
        [
            make_memory(
                "lives in Beijing",
                mem_id="a",
                status=MemoryStatus.SUPERSEDED,
                superseded_by="b",
                reason=SupersedeReason.CONTRADICTION,
                valid_to=t + timedelta(days=1),
                source_turn_ids=["t1"],
                batch_id="b-1",
            ),
            make_memory(
                "lives in Shanghai",
                mem_id="b",
                minutes=24 * 60,
                source_turn_ids=["t2", "t5"],
                batch_id="b-2",
                merges=[merge],
            ),
            make_memory(
                "lives in Shanghai now",
                mem_id="dup",
                minutes=25 * 60,
                status=MemoryStatus.SUPERSEDED,
                superseded_by="b",
                reason=SupersedeReason.DUPLICATE,
                valid_to=t + timedelta(days=2),
                source_turn_ids=["t3"],
                batch_id="b-4",
            ),
            make_memory("unrelated", mem_id="z"),
        ],
    )
    c = client.update_memory("u1", "b", content="lives in Shanghai, Pudong")
    for start in ("a", "b", "dup", c.id):
        history = client.memory_history("u1", start)
        assert [v.id for v in history] == ["a", "b", "dup", c.id], start
    a, b, dup, new = client.memory_history("u1", "a")
    assert (a.status, a.reason, a.superseded_by) == (
        MemoryStatus.SUPERSEDED,
        SupersedeReason.CONTRADICTION,
        "b",
    )
    assert a.valid_from == a.recorded_at and a.valid_to == t + timedelta(days=1)
    assert a.source_turn_ids == ("t1",) and a.batch_id == "b-1"
    assert b.supersedes == ("a", "dup") and b.merges == (merge,)
    assert b.reason is SupersedeReason.EDITED and b.superseded_by == new.id
    assert dup.reason is SupersedeReason.DUPLICATE
    assert new.supersedes == ("b",) and new.status is MemoryStatus.ACTIVE
    assert new.valid_to is None and b.valid_to == new.valid_from
    with pytest.raises(NotFound):
        client.memory_history("u2", "a")
