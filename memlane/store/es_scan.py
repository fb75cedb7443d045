"""Whole-index and whole-user reads of the Elasticsearch store, and mapping upgrades.

- :func:`scan` pages through every hit of a query from a point in time (PIT) with
  ``search_after``: consistent while others write, and bounded in memory;
- :func:`snapshot` is a user's export: status counts and pages from the same PIT;
- :func:`user_counts` lists users with a composite aggregation (``after`` pages on);
- :func:`add_missing_fields` puts the fields newer versions added into an existing index.

Callers map client errors (``_errors`` in :mod:`memlane.store.elasticsearch`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from elasticsearch import Elasticsearch

from memlane.models import Memory, MemoryFilter
from memlane.store import es_mapping as m
from memlane.store.base import SNAPSHOT_PAGE, Snapshot, UserCount

Json = dict[str, Any]

SCAN_PAGE = 1_000  # hits per PIT page when scanning a user or an index
PIT_KEEP_ALIVE = "2m"
SHARD_ORDER: list[Json] = [{"_shard_doc": "asc"}]
TIME_ORDER: list[Json] = [{"recorded_at": "asc"}, {"id": "asc"}]


def scan(
    client: Elasticsearch,
    index: str,
    query: Json,
    routing: str | None = None,
    with_source: bool | Json = False,
    sort: list[Json] | None = None,
    page: int = SCAN_PAGE,
) -> Iterator[list[Json]]:
    """Every hit of a query, in pages, from a point in time (consistent while we write)."""
    pit = client.open_point_in_time(index=index, keep_alive=PIT_KEEP_ALIVE, routing=routing)
    pit_id = pit["id"]
    try:
        yield from _pages(client, pit_id, query, with_source, sort or SHARD_ORDER, page)
    finally:
        client.close_point_in_time(id=pit_id)


def _pages(
    client: Elasticsearch,
    pit_id: str,
    query: Json,
    with_source: bool | Json,
    sort: list[Json],
    page: int,
) -> Iterator[list[Json]]:
    after: list[Any] | None = None
    while True:
        resp = client.search(
            pit={"id": pit_id, "keep_alive": PIT_KEEP_ALIVE},
            query=query,
            sort=sort,
            size=page,
            search_after=after,
            source=with_source,
            track_total_hits=False,
        )
        pit_id = resp.get("pit_id", pit_id)
        hits = resp["hits"]["hits"]
        if not hits:
            return
        yield hits
        after = hits[-1]["sort"]


@contextmanager
def snapshot(
    client: Elasticsearch, alias: str, user_id: str, with_embeddings: bool
) -> Iterator[Snapshot]:
    """The user's memories and status counts from one PIT, in (recorded_at, id) order."""
    query = m.filter_query(m.build_filters(user_id, MemoryFilter(include_superseded=True)))
    pit = client.open_point_in_time(
        index=alias, keep_alive=PIT_KEEP_ALIVE, routing=m.routing(user_id)
    )
    pit_id = pit["id"]
    try:
        resp = client.search(
            pit={"id": pit_id, "keep_alive": PIT_KEEP_ALIVE},
            query=query,
            size=0,
            aggs={"status": {"terms": {"field": "status", "size": 16}}},
        )
        buckets = resp["aggregations"]["status"]["buckets"]
        counts = {str(b["key"]): int(b["doc_count"]) for b in buckets}
        source = {"excludes": [*m.DERIVED_FIELDS, *([] if with_embeddings else ["embedding"])]}
        pages = _pages(client, pit_id, query, source, TIME_ORDER, SNAPSHOT_PAGE)
        yield Snapshot(counts, (_memories(hits) for hits in pages))
    finally:
        client.close_point_in_time(id=pit_id)


def _memories(hits: list[Json]) -> list[Memory]:
    return [m.from_source(h["_source"]) for h in hits]


def user_counts(
    client: Elasticsearch, alias: str, after: str | None, limit: int
) -> list[UserCount]:
    """Up to ``limit`` users with stored memories after ``after``, with their counts."""
    composite: Json = {"size": limit, "sources": [{"user": {"terms": {"field": "user_id"}}}]}
    if after is not None:
        composite["after"] = {"user": after}
    resp = client.search(
        index=alias,
        size=0,
        aggs={
            "users": {
                "composite": composite,
                "aggs": {"active": {"filter": {"term": {"status": "active"}}}},
            }
        },
    )
    return [
        UserCount(str(b["key"]["user"]), int(b["active"]["doc_count"]), int(b["doc_count"]))
        for b in resp["aggregations"]["users"]["buckets"]
    ]


def add_missing_fields(client: Elasticsearch, index: str, dims: int) -> list[str]:
    """Add the mapping's fields an existing index lacks; returns their names."""
    found = client.indices.get_mapping(index=index)
    existing = found[index]["mappings"].get("properties", {})
    missing = m.missing_properties(dims, existing)
    if missing:
        client.indices.put_mapping(index=index, properties=missing)
    return sorted(missing)
