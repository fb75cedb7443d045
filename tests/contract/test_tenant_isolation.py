"""Tenant isolation: nothing done as user A ever returns or changes anything of user B.

The users share memory ids, content and vectors, so only the user id tells them apart, and
the user ids are chosen to look like query syntax, wildcards, SQL, prefixes of each other and
odd unicode.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from memlane.client import MemoryClient
from memlane.config_sections import LimitSettings
from memlane.errors import InvalidInput, NotFound
from memlane.models import MemoryFilter, SupersedeReason, UserSummary
from memlane.store import MemoryStore, SearchQuery
from memlane.store.codec import memory_to_doc
from memlane.validation import validate_user_id
from tests.contract.factories import make_memory, vector

LIMITS = LimitSettings()
EVERYTHING = MemoryFilter(include_superseded=True)
ADVERSARIAL_IDS = [
    "*",
    "?",
    '"',
    "'",
    "\\",
    "a b",
    "a",
    "b",
    "a:b",
    "user_id:*",
    "user_id",
    "%",
    "_",
    "a%",
    "OR 1=1",
    "' OR '1'='1",
    "用户",
    "用户2",
    "😀",
    "😀😀",
    "x" * LIMITS.user_id_max_len,
    "用" * LIMITS.user_id_max_len,
]
CONTENTS = ["shared secret guitar", "用户爱好是吉他", "meets at the * station"]


def _valid(user_id: str) -> bool:
    try:
        validate_user_id(user_id, LIMITS)
    except InvalidInput:
        return False
    return True


user_ids = st.sampled_from(ADVERSARIAL_IDS) | st.text(
    min_size=1, max_size=LIMITS.user_id_max_len
).filter(_valid)


def _seed(store: MemoryStore, user_id: str) -> None:
    """The same three memories (ids, content, vectors) for any user."""
    store.delete_user(user_id)
    store.upsert(
        [
            make_memory(c, user_id=user_id, mem_id=f"m{i}", seed=i, minutes=i)
            for i, c in enumerate(CONTENTS)
        ]
    )


def _snapshot(store: MemoryStore, user_id: str) -> list[dict[str, Any]]:
    docs = [memory_to_doc(m) for m in store.list(user_id, EVERYTHING, limit=100).memories]
    return sorted(docs, key=lambda d: d["id"])


def _reads_as(store: MemoryStore, user_a: str, user_b: str) -> None:
    """Every read of A returns only A's memories."""
    queries = [
        SearchQuery(text="shared secret guitar 吉他", vector=vector(0), filter=EVERYTHING),
        SearchQuery(text=user_b, filter=EVERYTHING),
        SearchQuery(text=f"user_id:{user_b}", filter=EVERYTHING),
        SearchQuery(vector=vector(1), k=50, candidates=50, filter=EVERYTHING),
    ]
    for query in queries:
        hits = store.search(user_a, query)
        assert len(hits) <= len(CONTENTS)
        assert all(h.memory.user_id == user_a for h in hits)
    listed = store.list(user_a, EVERYTHING).memories
    assert len(listed) == len(CONTENTS)
    assert all(m.user_id == user_a for m in listed)
    assert store.count(user_a, EVERYTHING) == len(CONTENTS)
    got = store.get(user_a, ["m0", "m1", "m2"])
    assert [m.user_id for m in got] == [user_a] * len(CONTENTS)


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(user_a=user_ids, user_b=user_ids)
def test_operations_of_one_user_never_touch_another(
    store: MemoryStore, user_a: str, user_b: str
) -> None:
    """search/list/count/get/supersede/delete/delete_user as A leave B exactly as it was."""
    assume(user_a != user_b)
    _seed(store, user_a)
    _seed(store, user_b)
    before = _snapshot(store, user_b)
    assert len(before) == len(CONTENTS)

    _reads_as(store, user_a, user_b)
    edited = SupersedeReason.EDITED
    assert store.supersede(user_a, ["m0"], "m1", datetime(2024, 11, 1, tzinfo=UTC), edited) == 1
    assert store.delete(user_a, ["m2"]) == 1
    assert _snapshot(store, user_b) == before
    assert store.delete_user(user_a) == 2
    assert store.delete_user(user_a) == 0

    assert _snapshot(store, user_b) == before
    assert store.count(user_b) == len(CONTENTS)
    assert len(store.search(user_b, SearchQuery(text="shared", vector=vector(0)))) == 3


def _everything_of(client: MemoryClient, user_id: str) -> list[dict[str, Any]]:
    """Every stored memory of the user, every field, read from the store itself."""
    memories = client.services.store.list(user_id, EVERYTHING, limit=100).memories
    return sorted((memory_to_doc(m) for m in memories), key=lambda d: d["id"])


def _not_found_as(client: MemoryClient, user_id: str, memory_id: str) -> None:
    """Every single-memory method of ``user_id`` says NotFound for this id, like a missing id."""
    calls: list[Callable[[], object]] = [
        lambda: client.get_memory(user_id, memory_id),
        lambda: client.memory_history(user_id, memory_id),
        lambda: client.update_memory(user_id, memory_id, content="overwritten by b"),
        lambda: client.delete_memory(user_id, memory_id),
        lambda: client.delete_memory(user_id, memory_id, hard=True),
    ]
    for call in calls:
        with pytest.raises(NotFound) as err:
            call()
        assert str(err.value) == str(NotFound("memory_id", memory_id))


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(user_a=user_ids, user_b=user_ids)
def test_memory_api_as_one_user_never_reaches_another(
    client: MemoryClient, user_a: str, user_b: str
) -> None:
    """list/get/update/delete/history/export/import as B, even with A's memory ids, neither
    show nor change anything of A; list_users keeps A's counts."""
    assume(user_a != user_b)
    store = client.services.store
    for user in (user_a, user_b):
        store.delete_user(user)
        _seed(store, user)
    store.upsert([make_memory("a's private diary", user_id=user_a, mem_id="secret", seed=9)])
    edited = client.update_memory(user_a, "secret", content="a's private diary, edited")
    before = _everything_of(client, user_a)

    for memory_id in ("secret", edited.id):
        _not_found_as(client, user_b, memory_id)
    listed = client.list_memories(user_b, status="all", limit=500).memories
    assert {m.id for m in listed} == {"m0", "m1", "m2"}
    assert {m.user_id for m in listed} == {user_b}
    header, *rows = [json.loads(line) for line in client.export_user(user_b)]
    assert header["user_id"] == user_b and header["counts"]["memories"] == 3
    assert {r["user_id"] for r in rows} == {user_b} and {r["id"] for r in rows} == {
        "m0",
        "m1",
        "m2",
    }
    # B works on its own memories with the ids A uses too.
    b_edit = client.update_memory(user_b, "m0", content="b's own edit")
    assert client.delete_memory(user_b, "m1") == 1
    assert client.delete_memory(user_b, "m2", hard=True) == 1
    assert [v.id for v in client.memory_history(user_b, "m0")] == ["m0", b_edit.id]
    assert client.import_user(user_b, list(client.export_user(user_a))) == 5

    assert _everything_of(client, user_a) == before
    assert client.get_memory(user_a, "secret").superseded_by == edited.id
    summaries = {u.user_id: u for u in _all_users(client)}
    assert (summaries[user_a].memories, summaries[user_a].stored) == (4, 5)


def _all_users(client: MemoryClient) -> list[UserSummary]:
    """Every page of list_users."""
    found: list[UserSummary] = []
    cursor = None
    while True:
        page = client.list_users(cursor=cursor, limit=2)
        found += page.users
        if page.cursor is None:
            return found
        cursor = page.cursor
