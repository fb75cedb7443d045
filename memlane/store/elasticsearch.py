"""The scale-out memory store: Elasticsearch 8.x/9.x with the official 8.x client.

- An alias (``settings.store.es_index``) points at a versioned index ``<alias>-v<N>``;
  :meth:`ElasticsearchStore.migrate` copies into a new version and swaps the alias atomically.
- The mapping is strict and ``_routing`` is required: every request routes by a digest of
  ``user_id`` (:func:`memlane.store.es_mapping.routing`; a raw id with a comma would be split
  into two routing values), and every query is filtered by the user id itself
  (:func:`memlane.store.es_mapping.build_filters`).
- A document's ``_id`` is a hash of ``(user_id, id)`` (two users' equal ids never collide).
- Hybrid search sends kNN and BM25 in one ``_msearch``; :func:`memlane.store.fusion.fuse_hits`
  fuses them in the application.
- Only core APIs are used (bulk, mget, search, msearch, PIT, count, aliases): no scripts,
  ``_delete_by_query``, ``_update_by_query`` or ``_reindex``, so it runs on a minimal node.
- Writes use ``refresh=wait_for``: what ``upsert`` wrote is searchable when it returns.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from elastic_transport import TransportError
from elasticsearch import ApiError, Elasticsearch

from memlane.config import Settings
from memlane.constants import ES_INDEX_VERSION
from memlane.errors import InvalidInput, StoreError, StoreUnavailable
from memlane.logging import get_logger
from memlane.models import Memory, MemoryFilter, MemoryStatus, Page, SearchHit, SupersedeReason
from memlane.store import es_mapping as m
from memlane.store import es_scan
from memlane.store.base import (
    SearchQuery,
    Snapshot,
    UserCount,
    check_after,
    check_ids,
    check_limit,
    check_query,
    check_supersede,
)
from memlane.store.fusion import fuse_hits
from memlane.validation import validate_memories, validate_user_id

log = get_logger(__name__)

Json = dict[str, Any]

BULK_CHUNK = 500  # documents per _bulk request
MAX_DELETE_ROUNDS = 50  # delete_user gives up if writers keep adding faster than it deletes
TRANSIENT_STATUS = frozenset({429, 502, 503, 504})
CHANGED = frozenset({"created", "updated", "deleted", "noop"})
EVERYTHING = MemoryFilter(include_superseded=True)


@contextmanager
def _errors(operation: str) -> Iterator[None]:
    """Map client errors to the store's: unreachable/overloaded is retryable, the rest not."""
    try:
        yield
    except TransportError as e:
        raise StoreUnavailable(f"elasticsearch {operation}: {type(e).__name__}: {e}") from e
    except ApiError as e:
        kind = StoreUnavailable if e.status_code in TRANSIENT_STATUS else StoreError
        raise kind(f"elasticsearch {operation}: {e}") from e


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _mapped(pages: Iterator[list[Memory]]) -> Iterator[list[Memory]]:
    """Client errors raised while a snapshot is read on, as the store's."""
    with _errors("snapshot"):
        yield from pages


def _client(settings: Settings) -> Elasticsearch:
    store = settings.store
    auth = None
    if store.es_username and store.password is not None:
        auth = (store.es_username, store.password.get_secret_value())
    # A comma-separated list names several nodes of one cluster: the client spreads requests over
    # them and retries a request on another node when one is down (tests/fault/test_scale_drill).
    hosts = [url.strip() for url in store.es_url.split(",") if url.strip()]
    return Elasticsearch(hosts, basic_auth=auth, request_timeout=store.es_timeout_s)


class ElasticsearchStore:
    """A :class:`~memlane.store.base.MemoryStore` on an Elasticsearch index alias."""

    def __init__(self, settings: Settings, client: Elasticsearch | None = None) -> None:
        self.settings = settings
        self.alias = settings.store.es_index
        self.dims = settings.embedding.dims
        self.limits = settings.limits
        self._owns_client = client is None
        self.client = client if client is not None else _client(settings)

    def _user(self, user_id: str) -> str:
        return validate_user_id(user_id, self.limits)

    # -- schema -------------------------------------------------------------------------

    def ensure_schema(self) -> None:
        """Create ``<alias>-v<N>`` and the alias if the alias is missing; safe to repeat.

        An existing alias on an older index version is refused (:class:`StoreError` naming
        ``memlane migrate-index``) when that version's routing would lose documents: see
        :meth:`check_version`. It is never migrated here, because every process calls this and
        writes made during a copy would not reach the new index.
        """
        with _errors("ensure_schema"):
            if self.client.indices.exists_alias(name=self.alias):
                self.check_version()
                es_scan.add_missing_fields(self.client, self.current_index(), self.dims)
                return
            index = m.index_name(self.alias, ES_INDEX_VERSION)
            self._create_index(index, aliases={self.alias: {}})
            if not self.client.indices.exists_alias(name=self.alias):
                self.client.indices.put_alias(index=index, name=self.alias)

    def _create_index(self, index: str, aliases: Json | None = None) -> None:
        """Create an index; losing a creation race to another process is fine."""
        store = self.settings.store
        try:
            self.client.indices.create(
                index=index,
                settings=m.index_settings(
                    store.es_shards, store.es_replicas, store.es_refresh_interval
                ),
                mappings=m.mappings(self.dims),
                aliases=aliases,
            )
        except ApiError as e:
            if e.error != "resource_already_exists_exception":
                raise

    def check_version(self) -> None:
        """Refuse an older index whose routing misses documents; warn if only its tokens are old."""
        index = self.current_index()
        if (m.index_version(index, self.alias) or 0) >= ES_INDEX_VERSION:
            return
        stale = m.stale_tokens(index, self.alias, ES_INDEX_VERSION)
        if stale is not None:
            log.warning("es_index_tokens_outdated", index=index, reason=stale)
        with _errors("check_version"):
            found = self.client.indices.get_settings(index=index, name="index.number_of_shards")
        shards = int(found[index]["settings"]["index"]["number_of_shards"])
        problem = m.outdated_index(index, self.alias, shards, ES_INDEX_VERSION)
        if problem is not None:
            raise StoreError(problem)

    def current_index(self) -> str:
        """The concrete index the alias points at."""
        with _errors("current_index"):
            found = [str(name) for name in self.client.indices.get_alias(name=self.alias)]
        if len(found) != 1:
            raise StoreError(f"alias {self.alias} points at {len(found)} indices: {found}")
        return found[0]

    def migrate(self, new_version: int) -> int:
        """Copy every memory into ``<alias>-v<new_version>`` and swap the alias atomically.

        Documents are re-encoded with the current mapping's builders and re-routed with the
        current :func:`es_mapping.routing`, so derived fields and routing follow code changes.
        Pause writers while this runs: writes to the old index during the copy would not reach
        the new one. The old index is kept. Returns how many were copied.
        """
        old = self.current_index()
        new = m.index_name(self.alias, new_version)
        if new == old:
            raise InvalidInput("new_version", f"the alias already points at {old}")
        copied = 0
        with _errors("migrate"):
            self._create_index(new)
            for hits in es_scan.scan(self.client, old, {"match_all": {}}, with_source=True):
                memories = [m.from_source(h["_source"]) for h in hits]
                self._bulk(self._index_ops(memories, new), refresh=False)
                copied += len(hits)
            self.client.indices.refresh(index=new)
            self.client.indices.update_aliases(
                actions=[
                    {"remove": {"index": old, "alias": self.alias}},
                    {"add": {"index": new, "alias": self.alias}},
                ]
            )
        return copied

    # -- writes -------------------------------------------------------------------------

    def upsert(self, memories: Sequence[Memory]) -> int:
        """Insert or replace memories by (user_id, id); searchable when this returns."""
        validate_memories(memories, self.dims, self.limits)
        if not memories:
            return 0
        now = datetime.now(UTC)
        stamped = [
            mem.replace(created_at=mem.created_at or now, updated_at=mem.updated_at or now)
            for mem in memories
        ]
        with _errors("upsert"):
            self._bulk(self._index_ops(stamped, self.alias))
        return len(memories)

    def _index_ops(self, memories: Sequence[Memory], index: str) -> list[list[Json]]:
        ops: list[list[Json]] = []
        for mem in memories:
            route = m.routing(mem.user_id)
            meta = {"_index": index, "_id": m.doc_id(mem.user_id, mem.id), "routing": route}
            ops.append([{"index": meta}, m.to_source(mem)])
        return ops

    def _bulk(
        self, items: Sequence[list[Json]], refresh: bool = True, ok: frozenset[str] = frozenset()
    ) -> int:
        """Send bulk items (action line + optional source) in chunks; raise on a failure.

        Error types in ``ok`` are skipped. Returns how many items changed a document. Only the
        last chunk waits for a refresh, which makes every chunk visible.
        """
        changed = 0
        chunks = list(_chunks(items, BULK_CHUNK))
        for i, chunk in enumerate(chunks):
            wait = refresh and i == len(chunks) - 1
            lines = [line for item in chunk for line in item]
            resp = self.client.bulk(operations=lines, refresh="wait_for" if wait else False)
            for item in resp["items"]:
                (result,) = item.values()
                error = result.get("error")
                if error is not None and error.get("type") not in ok:
                    raise StoreError(
                        f"elasticsearch bulk: {error.get('type')}: {error.get('reason')}"
                    )
                changed += result.get("result") in CHANGED
        return changed

    def supersede(
        self,
        user_id: str,
        ids: Sequence[str],
        superseded_by: str,
        valid_to: datetime,
        reason: SupersedeReason,
    ) -> int:
        """Mark memories superseded with partial-document updates (no scripts).

        Missing ids are skipped; returns how many memories were updated.
        """
        user = self._user(user_id)
        wanted = check_ids(ids)
        why = check_supersede(superseded_by, valid_to, reason)
        if not wanted:
            return 0
        doc = {
            "status": MemoryStatus.SUPERSEDED.value,
            "superseded_by": superseded_by,
            "valid_to": valid_to.isoformat(),
            "reason": why.value,
            "updated_at": datetime.now(UTC).isoformat(),
        }
        ops: list[list[Json]] = []
        route = m.routing(user)
        for mem_id in wanted:
            meta = {"_index": self.alias, "_id": m.doc_id(user, mem_id), "routing": route}
            ops.append([{"update": meta}, {"doc": doc}])
        with _errors("supersede"):
            return self._bulk(ops, ok=frozenset({"document_missing_exception"}))

    def delete(self, user_id: str, ids: Sequence[str]) -> int:
        """Delete some of the user's memories; returns how many existed."""
        user = self._user(user_id)
        wanted = check_ids(ids)
        if not wanted:
            return 0
        with _errors("delete"):
            return self._delete_docs(user, [m.doc_id(user, i) for i in wanted])

    def _delete_docs(self, user_id: str, doc_ids: Sequence[str], refresh: bool = True) -> int:
        route = m.routing(user_id)
        ops = [[{"delete": {"_index": self.alias, "_id": d, "routing": route}}] for d in doc_ids]
        return self._bulk(ops, refresh=refresh)

    def delete_user(self, user_id: str) -> int:
        """Delete every memory of the user (PIT scan + bulk delete); safe to re-run."""
        user = self._user(user_id)
        query = m.filter_query(m.build_filters(user, EVERYTHING))
        deleted = 0
        with _errors("delete_user"):
            for _ in range(MAX_DELETE_ROUNDS):
                found = 0
                for hits in es_scan.scan(self.client, self.alias, query, routing=m.routing(user)):
                    found += len(hits)
                    deleted += self._delete_docs(user, [h["_id"] for h in hits], refresh=False)
                self.client.indices.refresh(index=self.alias)
                if not found:
                    return deleted
        raise StoreError(f"delete_user: memories kept appearing after {MAX_DELETE_ROUNDS} rounds")

    # -- reads --------------------------------------------------------------------------

    def get(self, user_id: str, ids: Sequence[str]) -> list[Memory]:
        """The user's memories with these ids, in the order given; missing ids skipped."""
        user = self._user(user_id)
        wanted = check_ids(ids)
        if not wanted:
            return []
        route = m.routing(user)
        docs = [{"_id": m.doc_id(user, i), "routing": route} for i in wanted]
        with _errors("get"):
            resp = self.client.mget(index=self.alias, docs=docs, source_excludes=m.DERIVED_FIELDS)
        found: dict[str, Memory] = {}
        for doc in resp["docs"]:
            if "error" in doc:
                raise StoreError(f"elasticsearch get {doc.get('_id')}: {doc['error']}")
            if doc.get("found") and doc["_source"].get("user_id") == user:
                memory = m.from_source(doc["_source"])
                found[memory.id] = memory
        return [found[i] for i in wanted if i in found]

    def search(self, user_id: str, query: SearchQuery) -> list[SearchHit]:
        """Hybrid search: kNN and BM25 under one filter in one ``_msearch``, fused by z-scores."""
        user = self._user(user_id)
        check_query(query, self.dims)
        filters = m.build_filters(user, query.filter)
        size = max(query.k, query.candidates)
        bodies: dict[str, Json] = {}
        if query.vector is not None:
            bodies["knn"] = m.knn_body(query.vector, filters, size, query.with_vectors)
        text_body = (
            m.bm25_body(query.text, filters, size, query.with_vectors) if query.text else None
        )
        if text_body is not None:
            bodies["bm25"] = text_body
        if not bodies:
            return []
        header = {"index": self.alias, "routing": m.routing(user)}
        searches = [part for body in bodies.values() for part in (header, body)]
        with _errors("search"):
            resp = self.client.msearch(searches=searches)
        rankings: dict[str, list[tuple[str, float]]] = {"knn": [], "bm25": []}
        memories: dict[str, Memory] = {}
        for name, result in zip(bodies, resp["responses"], strict=True):
            if "error" in result:
                raise StoreError(f"elasticsearch search ({name}): {result['error']}")
            for hit in result["hits"]["hits"]:
                memory = memories.get(hit["_source"]["id"]) or m.from_source(hit["_source"])
                memories[memory.id] = memory
                rankings[name].append((memory.id, float(hit["_score"])))
        return fuse_hits(rankings["knn"], rankings["bm25"], memories, query.fusion, query.k)

    def list(
        self,
        user_id: str,
        filter: MemoryFilter | None = None,
        limit: int = 100,
        cursor: str | None = None,
        newest_first: bool = False,
    ) -> Page:
        """A page in (recorded_at, id) order, or the reverse; the cursor holds the last sort
        position."""
        user = self._user(user_id)
        check_limit(limit)
        after = m.decode_cursor(cursor) if cursor is not None else None
        body = m.list_body(m.build_filters(user, filter), limit, after, newest_first)
        with _errors("list"):
            resp = self.client.search(index=self.alias, routing=m.routing(user), body=body)
        hits = resp["hits"]["hits"]
        memories = [m.from_source(h["_source"]) for h in hits[:limit]]
        more = m.page_has_more(len(hits), limit)
        return Page(memories, m.encode_cursor(hits[limit - 1]["sort"]) if more else None)

    def count(self, user_id: str, filter: MemoryFilter | None = None) -> int:
        """How many of the user's memories match the filter."""
        user = self._user(user_id)
        query = m.filter_query(m.build_filters(user, filter))
        with _errors("count"):
            resp = self.client.count(index=self.alias, routing=m.routing(user), query=query)
        return int(resp["count"])

    @contextmanager
    def snapshot(self, user_id: str, with_embeddings: bool = False) -> Iterator[Snapshot]:
        """The user's memories and counts from one point in time (export)."""
        user = self._user(user_id)
        with (
            _errors("snapshot"),
            es_scan.snapshot(self.client, self.alias, user, with_embeddings) as snap,
        ):
            yield Snapshot(snap.counts, _mapped(snap.pages))

    def users(self, after: str | None = None, limit: int = 100) -> Sequence[UserCount]:
        """Users with stored memories after ``after``, in user-id order, with their counts."""
        check_limit(limit)
        with _errors("users"):
            return es_scan.user_counts(self.client, self.alias, check_after(after), limit)

    def close(self) -> None:
        """Close the client's connections (only a client this store created)."""
        if self._owns_client:
            self.client.close()
