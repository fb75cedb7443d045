"""User ids with routing separators on a multi-shard Elasticsearch index, and the v1 migration.

Elasticsearch splits the ``routing`` of searches, counts and PITs on commas. Index version 1
routed by the raw user id, so ``"p0,q0"`` was indexed on one shard and searched on two others:
retrieve found nothing and forget_user deleted nothing. Version 2 routes by a digest.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from elasticsearch import Elasticsearch

from memlane.client import MemoryClient
from memlane.config import Settings
from memlane.constants import ES_INDEX_VERSION
from memlane.errors import StoreError
from memlane.models import Memory, MemoryFilter, SupersedeReason
from memlane.store import SearchQuery
from memlane.store import es_mapping as m
from memlane.store.elasticsearch import ElasticsearchStore
from tests.contract.factories import BASE_TIME, make_memory, vector
from tests.support.worker_proc import Cluster

pytestmark = pytest.mark.elasticsearch

SHARDS = 5
# Commas split routing; the others are separators or wildcards in other APIs.
ODD_USERS = ["p0,q0", "a,b,c", ",", ",x,", "u 1;2|3/4*", "用户，甲,乙", "_all", "%2C,%2c", "a,b"]
# Users whose memories must never show up for the odd ones (the parts of their ids).
PLAIN_USERS = ["p0", "q0", "a", "b", "c", "x"]


@pytest.fixture
def admin(es_url: str) -> Iterator[Elasticsearch]:
    """A plain client for building and inspecting indices behind the store's back."""
    client = Elasticsearch(es_url, request_timeout=30)
    yield client
    client.close()


@pytest.fixture
def alias(admin: Elasticsearch) -> Iterator[str]:
    """A unique alias; every index behind it is deleted afterwards."""
    name = f"memlane-route-{uuid.uuid4().hex[:12]}"
    yield name
    found = admin.indices.get(index=f"{name}*", allow_no_indices=True)
    if found:
        admin.indices.delete(index=",".join(found))


@pytest.fixture
def es_settings(make_settings: Callable[..., Settings], es_url: str, alias: str) -> Settings:
    """Settings on the test's alias with several primary shards."""
    return make_settings(
        store={
            "backend": "elasticsearch",
            "es_url": es_url,
            "es_index": alias,
            "es_shards": SHARDS,
        }
    )


def _memories(user: str, seed: int) -> list[Memory]:
    return [
        make_memory(f"{user} plays guitar", user_id=user, mem_id="m1", seed=seed),
        make_memory(f"{user} likes tea", user_id=user, mem_id="m2", seed=seed + 1000, minutes=5),
    ]


def _all_users() -> list[str]:
    return ODD_USERS + PLAIN_USERS


def test_routing_digest_has_no_separator() -> None:
    """The routing value is a short hex digest, the same for the same id, different per id."""
    values = {m.routing(u) for u in _all_users()}
    assert len(values) == len(_all_users())
    assert all(len(v) == 16 and set(v) <= set("0123456789abcdef") for v in values)
    assert m.routing("p0,q0") == m.routing("p0,q0")


def test_every_store_operation_finds_ids_with_separators(es_settings: Settings) -> None:
    """upsert/get/search/list/count/supersede/delete/delete_user work for ids with commas."""
    store = ElasticsearchStore(es_settings)
    store.ensure_schema()
    try:
        users = _all_users()
        for i, user in enumerate(users):
            store.upsert(_memories(user, i))
        every = MemoryFilter(include_superseded=True)
        for i, user in enumerate(users):
            assert [x.id for x in store.get(user, ["m1", "m2"])] == ["m1", "m2"], user
            assert all(x.user_id == user for x in store.get(user, ["m1", "m2"]))
            hits = store.search(user, SearchQuery(text="guitar", vector=vector(i), k=5))
            assert [h.memory.id for h in hits][:1] == ["m1"], user
            assert {h.memory.user_id for h in hits} == {user}
            assert [x.id for x in store.list(user).memories] == ["m1", "m2"], user
            assert store.count(user) == 2, user
        for user in ODD_USERS:
            assert (
                store.supersede(
                    user, ["m1"], "m2", BASE_TIME + timedelta(days=1), SupersedeReason.EDITED
                )
                == 1
            )
            assert store.count(user) == 1 and store.count(user, every) == 2, user
            assert store.get(user, ["m1"])[0].superseded_by == "m2"
            assert store.delete(user, ["m2"]) == 1, user
            assert store.count(user, every) == 1, user
            assert store.delete_user(user) == 1, user
            assert store.count(user, every) == 0, user
        for user in PLAIN_USERS:  # the parts of the odd ids were never touched
            assert store.count(user, every) == 2 and store.count(user) == 2, user
    finally:
        store.close()


def test_forget_user_with_separators_deletes_every_memory(es_settings: Settings) -> None:
    """forget_user of ids with commas on a 5-shard index deletes theirs and keeps p0's, q0's..."""
    with MemoryClient(es_settings) as client:
        store = client.services.store
        for i, user in enumerate(_all_users()):
            store.upsert(_memories(user, i))
        for user in ODD_USERS:
            assert [r.memory.user_id for r in client.retrieve(user, "guitar")][:1] == [user]
            assert client.forget_user(user) == 2, user
            assert store.count(user, MemoryFilter(include_superseded=True)) == 0, user
            assert client.retrieve(user, "guitar") == [], user
        for user in PLAIN_USERS:
            assert store.count(user) == 2, user
            assert [r.memory.user_id for r in client.retrieve(user, "guitar")][:1] == [user]


def _build_v1_index(admin: Elasticsearch, alias: str, shards: int) -> dict[str, list[Memory]]:
    """An index as memlane 0.x built it: ``<alias>-v1``, documents routed by the raw user id."""
    index = m.index_name(alias, 1)
    admin.indices.create(
        index=index,
        settings=m.index_settings(shards, 0),
        mappings=m.mappings(384),
        aliases={alias: {}},
    )
    written: dict[str, list[Memory]] = {}
    lines: list[dict[str, Any]] = []
    for i, user in enumerate(_all_users()):
        written[user] = [  # as read back: stores give every version a valid_from
            mem.replace(created_at=BASE_TIME, updated_at=BASE_TIME, valid_from=mem.recorded_at)
            for mem in _memories(user, i)
        ]
        for mem in written[user]:
            meta = {"_index": index, "_id": m.doc_id(user, mem.id), "routing": user}
            lines.append({"index": meta})
            lines.append(m.to_source(mem))
    resp = admin.bulk(operations=lines, refresh=True)
    assert not resp["errors"]
    return written


def test_multi_shard_v1_index_is_refused_then_migrated(
    es_settings: Settings, admin: Elasticsearch, alias: str, tmp_path: Path
) -> None:
    """A 5-shard v1 index is refused naming the command; `memlane migrate-index` fixes it."""
    written = _build_v1_index(admin, alias, SHARDS)
    store = ElasticsearchStore(es_settings)
    try:
        with pytest.raises(StoreError, match="memlane migrate-index"):
            store.ensure_schema()
        with Cluster(es_settings, tmp_path / "procs") as cluster:
            done = cluster.run("migrate-index", store__es_shards=SHARDS)
        assert done.returncode == 0, done.stderr + done.stdout
        assert f"copied {2 * len(written)} memories" in done.stdout
        new = m.index_name(alias, ES_INDEX_VERSION)
        assert list(admin.indices.get_alias(name=alias)) == [new]
        shards = admin.indices.get_settings(index=new)[new]["settings"]["index"]
        assert shards["number_of_shards"] == str(SHARDS)
        store.ensure_schema()  # accepted now
        for i, (user, memories) in enumerate(written.items()):
            assert store.get(user, ["m1", "m2"]) == memories, user
            assert store.count(user) == 2, user
            hits = store.search(user, SearchQuery(text="tea", vector=vector(i + 1000), k=2))
            assert hits[0].memory.id == "m2", user
        for user in ODD_USERS:
            assert store.delete_user(user) == 2, user
            assert store.count(user, MemoryFilter(include_superseded=True)) == 0, user
        assert all(store.count(u) == 2 for u in PLAIN_USERS)
    finally:
        store.close()


def test_single_shard_v1_index_is_accepted_as_it_is(
    make_settings: Callable[..., Settings], es_url: str, admin: Elasticsearch, alias: str
) -> None:
    """On one shard routing cannot miss: a v1 index keeps working without a migration."""
    written = _build_v1_index(admin, alias, 1)
    settings = make_settings(
        store={"backend": "elasticsearch", "es_url": es_url, "es_index": alias}
    )
    store = ElasticsearchStore(settings)
    try:
        store.ensure_schema()
        assert store.current_index() == m.index_name(alias, 1)
        for user in ODD_USERS:
            assert store.count(user) == 2, user
            assert store.delete_user(user) == 2, user
        assert sum(store.count(u) for u in written) == 2 * len(PLAIN_USERS)
    finally:
        store.close()
