"""The test Elasticsearch node is real: the official client indexes and searches on it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from elasticsearch import Elasticsearch

from tests.support.services import delete_indices

pytestmark = pytest.mark.elasticsearch


@pytest.fixture
def client(es_url: str) -> Iterator[Elasticsearch]:
    """A client for the session's node."""
    es = Elasticsearch(es_url, request_timeout=30)
    yield es
    es.close()


@pytest.fixture
def index(client: Elasticsearch, es_index: str) -> str:
    """A uniquely named index with a cosine dense_vector, a text and a keyword field."""
    name = es_index  # deleted after the test
    client.indices.create(
        index=name,
        settings={"number_of_shards": 1, "number_of_replicas": 0},
        mappings={
            "properties": {
                "vec": {"type": "dense_vector", "dims": 3, "index": True, "similarity": "cosine"},
                "text": {"type": "text"},
                "tag": {"type": "keyword"},
            }
        },
    )
    docs = [
        ("a", [1.0, 0.0, 0.0], "the user plays the guitar", "x"),
        ("b", [0.9, 0.1, 0.0], "the user likes pizza", "y"),
        ("c", [0.0, 1.0, 0.0], "用户爱好是吉他", "y"),
        ("d", [0.0, 0.0, 1.0], "a cat named Tom", "x"),
    ]
    ops: list[dict[str, object]] = []
    for doc_id, vec, text, tag in docs:
        ops += [{"index": {"_index": name, "_id": doc_id}}, {"vec": vec, "text": text, "tag": tag}]
    resp = client.bulk(operations=ops, refresh=True)
    assert not resp["errors"]
    return name


def test_info_reports_an_8x_server(client: Elasticsearch) -> None:
    """GET / answers like Elasticsearch 8.x (so the 8.x client's product check passes)."""
    info = client.info()
    assert info["version"]["number"].startswith("8.")
    assert info["tagline"] == "You Know, for Search"


def test_filtered_knn_finds_the_nearest_allowed_vector(client: Elasticsearch, index: str) -> None:
    """kNN with a filter skips the nearest vector when the filter excludes it."""
    query = [1.0, 0.05, 0.0]
    knn = {"field": "vec", "query_vector": query, "k": 2, "num_candidates": 10}
    hits = client.search(index=index, knn=knn)["hits"]["hits"]
    assert [h["_id"] for h in hits] == ["a", "b"]
    filtered = client.search(index=index, knn={**knn, "filter": [{"term": {"tag": "y"}}]})
    assert [h["_id"] for h in filtered["hits"]["hits"]] == ["b", "c"]
    top = filtered["hits"]["hits"][0]["_score"]
    assert 0.5 < top <= 1.0  # cosine scores are (1 + cos) / 2


def test_bm25_match_ranks_the_matching_text_first(client: Elasticsearch, index: str) -> None:
    """A match query on the text field finds English words and CJK characters."""
    hits = client.search(index=index, query={"match": {"text": "guitar"}})["hits"]["hits"]
    assert [h["_id"] for h in hits] == ["a"]
    cjk = client.search(index=index, query={"match": {"text": "吉他"}})["hits"]["hits"]
    assert cjk[0]["_id"] == "c"


def test_index_cleanup_deletes_only_the_tests_own_indices(
    client: Elasticsearch, es_url: str, es_index: str
) -> None:
    """The shared es_index cleanup removes <name> and <name>-v1, and leaves other indices."""
    other = f"other-{es_index}"
    for name in (es_index, f"{es_index}-v1", other):
        client.indices.create(index=name, settings={"number_of_replicas": 0})
    try:
        assert sorted(delete_indices(es_url, es_index)) == [es_index, f"{es_index}-v1"]
        assert not client.indices.exists(index=es_index)
        assert not client.indices.exists(index=f"{es_index}-v1")
        assert client.indices.exists(index=other)
    finally:
        client.indices.delete(index=other)
