"""Elasticsearch-specific behaviour of the store, beyond the shared contract suite."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
from elastic_transport import Urllib3HttpNode
from elasticsearch import BadRequestError, Elasticsearch

from memlane.config import Settings, load_settings
from memlane.constants import ES_INDEX_VERSION
from memlane.errors import Retryable, StoreUnavailable
from memlane.models import MemoryFilter, SupersedeReason
from memlane.store import SearchQuery
from memlane.store.elasticsearch import ElasticsearchStore
from memlane.store.es_mapping import routing
from tests.contract.factories import make_memory, vector

pytestmark = pytest.mark.elasticsearch

StoreFactory = Callable[..., ElasticsearchStore]


class CountingNode(Urllib3HttpNode):
    """A transport node that records each request line (the client's node_class hook)."""

    requests: ClassVar[list[str]] = []

    def perform_request(self, method: str, target: str, *args: Any, **kwargs: Any) -> Any:
        CountingNode.requests.append(f"{method} {target.split('?')[0]}")
        return super().perform_request(method, target, *args, **kwargs)


@pytest.fixture
def admin(es_url: str) -> Iterator[Elasticsearch]:
    """A plain client for looking behind the store's back."""
    client = Elasticsearch(es_url, request_timeout=30)
    yield client
    client.close()


@pytest.fixture
def alias(es_index: str) -> str:
    """The test's alias name: the shared ``es_index``, whose indices are deleted afterwards."""
    return es_index


def _settings(tmp_path: Path, es_url: str, alias: str, **store: Any) -> Settings:
    return load_settings(
        environ={},
        data_dir=str(tmp_path / "data"),
        store={"backend": "elasticsearch", "es_url": es_url, "es_index": alias, **store},
    )


@pytest.fixture
def make_store(tmp_path: Path, es_url: str, alias: str) -> Iterator[StoreFactory]:
    """Build stores on the test's alias (closed afterwards); schema ensured."""
    stores: list[ElasticsearchStore] = []

    def build(client: Elasticsearch | None = None, **store: Any) -> ElasticsearchStore:
        built = ElasticsearchStore(_settings(tmp_path, es_url, alias, **store), client)
        built.ensure_schema()
        stores.append(built)
        return built

    yield build
    for built in stores:
        built.close()


def test_alias_points_at_the_versioned_index(
    make_store: StoreFactory, admin: Elasticsearch, alias: str
) -> None:
    """The configured name is an alias of <alias>-v<ES_INDEX_VERSION>."""
    store = make_store()
    assert list(admin.indices.get_alias(name=alias)) == [f"{alias}-v{ES_INDEX_VERSION}"]
    assert store.current_index() == f"{alias}-v{ES_INDEX_VERSION}"


def test_ensure_schema_twice_and_from_a_second_store(
    make_store: StoreFactory, admin: Elasticsearch, alias: str
) -> None:
    """Repeated ensure_schema (same or another process) keeps one index and one alias."""
    store = make_store()
    store.upsert([make_memory("kept")])
    store.ensure_schema()
    make_store().ensure_schema()
    assert list(admin.indices.get(index=f"{alias}*")) == [f"{alias}-v{ES_INDEX_VERSION}"]
    assert store.count("u1") == 1


def test_mapping_is_strict_and_routing_required(
    make_store: StoreFactory, admin: Elasticsearch, alias: str
) -> None:
    """Unknown fields and unrouted writes are refused by the index itself."""
    make_store()
    with pytest.raises(BadRequestError) as unrouted:
        admin.index(index=alias, id="x", document={"user_id": "u1"})
    assert unrouted.value.error == "routing_missing_exception"
    with pytest.raises(BadRequestError) as unknown:
        admin.index(index=alias, id="x", routing="u1", document={"surprise": 1})
    assert unknown.value.error == "strict_dynamic_mapping_exception"


def test_same_memory_id_of_two_users_is_two_documents(
    make_store: StoreFactory, admin: Elasticsearch, alias: str
) -> None:
    """The _id derives from (user_id, id), so one shard holds both users' 'm1'."""
    store = make_store()
    store.upsert([make_memory("mine", user_id="a", mem_id="m1")])
    store.upsert([make_memory("theirs", user_id="b", mem_id="m1")])
    hits = admin.search(index=alias, query={"term": {"id": "m1"}})["hits"]["hits"]
    assert len({h["_id"] for h in hits}) == 2
    assert {h["_routing"] for h in hits} == {routing("a"), routing("b")}


def test_search_is_one_msearch_with_both_components(make_store: StoreFactory, es_url: str) -> None:
    """A hybrid query costs exactly one _msearch, and hits carry kNN and BM25 ranks."""
    client = Elasticsearch(es_url, node_class=CountingNode)
    store = make_store(client=client)
    store.upsert([make_memory("shared guitar", mem_id="g", seed=1), make_memory("other", seed=2)])
    CountingNode.requests.clear()
    hits = store.search("u1", SearchQuery(text="guitar", vector=vector(1)))
    assert CountingNode.requests == ["POST /_msearch"]
    assert (hits[0].memory.id, hits[0].knn_rank, hits[0].bm25_rank) == ("g", 1, 1)
    assert hits[0].knn_score == pytest.approx(1.0, abs=1e-3)  # (1 + cos) / 2 of itself
    assert hits[0].memory.embedding is None  # not asked for: left out of the response
    with_vectors = SearchQuery(text="guitar", vector=vector(1), with_vectors=True)
    assert store.search("u1", with_vectors)[0].memory.embedding is not None
    client.close()


def test_migrate_copies_everything_and_swaps_the_alias(
    make_store: StoreFactory, admin: Elasticsearch, alias: str
) -> None:
    """migrate() fills <alias>-v<N+1>, moves the alias atomically and keeps the old index."""
    store = make_store(es_shards=2)
    memories = [
        make_memory(f"fact {i}", user_id=f"user{i % 3}", mem_id=f"m{i}", seed=i, minutes=i)
        for i in range(45)
    ]
    store.upsert(memories)
    store.supersede("user0", ["m0"], "m3", memories[0].recorded_at, SupersedeReason.CONTRADICTION)
    before = {
        u: store.list(u, MemoryFilter(include_superseded=True)).memories
        for u in ("user0", "user1", "user2")
    }

    new_version = ES_INDEX_VERSION + 1
    assert store.migrate(new_version) == 45
    assert list(admin.indices.get_alias(name=alias)) == [f"{alias}-v{new_version}"]
    assert admin.indices.exists(index=f"{alias}-v{ES_INDEX_VERSION}")
    for user, listed in before.items():
        assert store.list(user, MemoryFilter(include_superseded=True)).memories == listed
    assert store.get("user0", ["m0"])[0].superseded_by == "m3"
    assert store.search("user1", SearchQuery(vector=vector(4), k=1))[0].memory.id == "m4"
    store.upsert([make_memory("after the move", user_id="user1", mem_id="late")])
    assert admin.count(index=f"{alias}-v{new_version}")["count"] == 46
    store.ensure_schema()  # the alias exists: nothing is recreated
    assert list(admin.indices.get_alias(name=alias)) == [f"{alias}-v{new_version}"]


def test_unreachable_node_is_store_unavailable(tmp_path: Path, alias: str) -> None:
    """A closed port raises StoreUnavailable, which callers retry."""
    store = ElasticsearchStore(_settings(tmp_path, "http://127.0.0.1:1", alias, es_timeout_s=2))
    try:
        with pytest.raises(StoreUnavailable) as err:
            store.ensure_schema()
        assert isinstance(err.value, Retryable)
        assert err.value.__cause__ is not None
        with pytest.raises(StoreUnavailable):
            store.search("u1", SearchQuery(text="anything"))
    finally:
        store.close()


def test_routing_spreads_users_over_shards(make_store: StoreFactory) -> None:
    """With several shards every read still finds each user's memories (routed requests)."""
    store = make_store(es_shards=3)
    users = [f"user-{i}" for i in range(6)]
    store.upsert(
        [make_memory(f"shared {u}", user_id=u, mem_id="m", seed=i) for i, u in enumerate(users)]
    )
    for i, user in enumerate(users):
        assert store.count(user) == 1
        assert [m.user_id for m in store.list(user).memories] == [user]
        assert (
            store.search(user, SearchQuery(text="shared", vector=vector(i)))[0].memory.user_id
            == user
        )
        assert store.delete_user(user) == 1


def test_index_with_older_tokens_works_and_migrate_retokenises(
    tmp_path: Path, es_url: str, alias: str, admin: Elasticsearch
) -> None:
    """A v2 index (Chinese as characters + bigrams) is accepted; migrate-index re-tokenises it."""
    from memlane.store import es_mapping as m

    old = m.index_name(alias, 2)
    admin.indices.create(
        index=old, settings=m.index_settings(1, 0), mappings=m.mappings(384), aliases={alias: {}}
    )
    memory = make_memory("Bart去了冰淇淋店", mem_id="m1", seed=1)
    source = m.to_source(memory) | {"search_text": "bart 去 冰 淇 淋 店 冰淇 淇淋 淋店"}
    admin.index(
        index=old, id=m.doc_id("u1", "m1"), routing=routing("u1"), document=source, refresh=True
    )
    store = ElasticsearchStore(_settings(tmp_path, es_url, alias))
    try:
        store.ensure_schema()  # older tokens: a warning, not a refusal
        query = SearchQuery(text="冰淇淋", k=5)
        assert store.search("u1", query) == []
        assert store.migrate(ES_INDEX_VERSION) == 1
        assert [h.memory.id for h in store.search("u1", query)] == ["m1"]
        assert m.stale_tokens(store.current_index(), alias, ES_INDEX_VERSION) is None
    finally:
        store.close()
