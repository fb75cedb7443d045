"""Pure builders of the Elasticsearch store: index body, documents, filters, queries, cursors.

:func:`build_filters` is the only place a :class:`MemoryFilter` becomes Elasticsearch query DSL,
and its first clause is always ``term user_id``, so no request of the store can forget tenant
isolation. kNN and BM25 bodies take the *same* filter list.

BM25 runs on ``search_text``: content, keywords and subject pre-tokenised by
:func:`memlane.text.tokens.tokenize` (Chinese words without stop words, the same tokens as the
SQLite backend) and indexed with the ``whitespace`` analyzer, which our minimal node has.
Query text goes through the same tokeniser and is sent as a ``match`` query, never as query
syntax, so operators in user text are plain words.

Time windows are half-open ``[start, end)``. On ``event_time`` a memory without an event time
is compared by its ``recorded_at`` instead.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from memlane.errors import InvalidInput
from memlane.models import Memory, MemoryFilter, MemoryStatus, TimeField, TimeWindow
from memlane.store.codec import memory_from_doc, memory_to_doc
from memlane.text.tokens import tokenize

Json = dict[str, Any]

MAX_QUERY_TOKENS = 128
MAX_KNN_CANDIDATES = 10_000  # Elasticsearch's limit on num_candidates (and so on k)
MAX_RESULT_WINDOW = 10_000  # index.max_result_window: the most hits one search may return
# Fields derived for indexing only; never part of a Memory.
DERIVED_FIELDS = ("search_text", "metadata_kv")
# Full float HNSW: exact cosine scores, the same as the SQLite backend (int8 would save memory).
VECTOR_INDEX_OPTIONS: Json = {"type": "hnsw"}
# Index versions from which documents are routed by :func:`routing`, and from which
# ``search_text`` holds today's tokens (:data:`memlane.text.tokens.TOKENIZER_VERSION` 2).
ROUTED_BY_DIGEST_SINCE = 2
TOKENS_SINCE = 3
_KEYWORDS = (
    "id",
    "user_id",
    "kind",
    "status",
    "session_id",
    "batch_id",
    "superseded_by",
    "language",
    "subject",
    "source_turn_ids",
    "keywords",
    "time_granularity",
    "metadata_kv",
    "reason",
)
_DATES = ("event_time", "recorded_at", "created_at", "updated_at", "valid_to", "valid_from")


def index_name(alias: str, version: int) -> str:
    """The concrete, versioned index behind the alias, e.g. ``memlane-memories-v1``."""
    return f"{alias}-v{version}"


def mappings(dims: int) -> Json:
    """The strict mapping: routing required, keyword ids, dates, text, and the vector."""
    props: Json = {name: {"type": "keyword"} for name in _KEYWORDS}
    props |= {name: {"type": "date"} for name in _DATES}
    props |= {
        "content": {"type": "text", "analyzer": "standard"},
        "search_text": {"type": "text", "analyzer": "whitespace"},
        "importance": {"type": "float"},
        "metadata": {"type": "object", "enabled": False},
        "merges": {"type": "object", "enabled": False},
        "embedding": {
            "type": "dense_vector",
            "dims": dims,
            "index": True,
            "similarity": "cosine",
            "index_options": VECTOR_INDEX_OPTIONS,
        },
    }
    return {"dynamic": "strict", "_routing": {"required": True}, "properties": props}


def missing_properties(dims: int, existing: Json) -> Json:
    """The properties of :func:`mappings` an existing index lacks (added by later versions).

    Adding a field to a strict mapping is allowed in place (``put_mapping``); changing one is
    not, so only whole new fields are ever added this way.
    """
    wanted: Json = mappings(dims)["properties"]
    return {name: spec for name, spec in wanted.items() if name not in existing}


def index_settings(shards: int, replicas: int, refresh_interval: str = "1s") -> Json:
    """Index settings: shard and replica counts and the refresh interval from the configuration.

    Writes wait for the next refresh (read-your-writes), so the interval bounds write latency.
    """
    return {
        "number_of_shards": shards,
        "number_of_replicas": replicas,
        "refresh_interval": refresh_interval,
    }


def index_version(index: str, alias: str) -> int | None:
    """The version ``N`` of an index named ``<alias>-v<N>``; None for any other name."""
    prefix = f"{alias}-v"
    suffix = index[len(prefix) :] if index.startswith(prefix) else ""
    return int(suffix) if suffix.isdigit() else None


def outdated_index(index: str, alias: str, shards: int, current: int) -> str | None:
    """Why an index built by an older version cannot be used as it is; None if it can.

    Version 1 routed by the raw user id; version 2 routes by :func:`routing`. On one primary
    shard every routing value names the same shard, so a version-1 index keeps working; on
    several, reads would miss documents, so the operator must migrate first.
    """
    version = index_version(index, alias)
    if (version is not None and version >= ROUTED_BY_DIGEST_SINCE) or shards == 1:
        return None
    return (
        f"index {index} (behind alias {alias}) has {shards} shards and was built by an older "
        f"memlane (index version {version or 'unknown'}) that routed documents by the raw user "
        f"id, so user ids with a comma would be missed. Stop the workers and run "
        f"`memlane migrate-index` to copy it into {index_name(alias, current)}"
    )


def stale_tokens(index: str, alias: str, current: int) -> str | None:
    """Why an index's BM25 tokens are not today's; None if they are.

    Before version 3, ``search_text`` held Chinese as characters and bigrams; queries are now
    Chinese words, so keyword search on Chinese text is degraded (English is unchanged) until
    the documents are re-tokenised by copying them into a new index.
    """
    version = index_version(index, alias)
    if version is not None and version >= TOKENS_SINCE:
        return None
    return (
        f"index {index} (behind alias {alias}) holds the BM25 tokens of an older memlane "
        f"(Chinese as characters and bigrams): keyword search on Chinese text is degraded. "
        f"Stop the workers and run `memlane migrate-index` to re-tokenise it into "
        f"{index_name(alias, current)}"
    )


def routing(user_id: str) -> str:
    """The routing value of a user's documents and requests (index version 2 on).

    Elasticsearch splits the ``routing`` of searches, counts and PITs on commas, so a user id
    such as ``"p0,q0"`` used verbatim would search shards ``p0`` and ``q0`` but index on the
    shard of ``"p0,q0"``. A hex digest has no separator. Routing only picks a shard (every
    query is still filtered by ``user_id``), so 64 bits are plenty.
    """
    return hashlib.sha256(user_id.encode("utf-8")).hexdigest()[:16]


def doc_id(user_id: str, memory_id: str) -> str:
    """The Elasticsearch ``_id`` of a memory: unique per ``(user_id, id)``.

    Routing only picks a shard, so two users' memories with the same id could collide in one
    shard. A user id never contains control characters, so NUL separates the two unambiguously;
    hashing keeps the ``_id`` under Elasticsearch's 512-byte limit for any id length.
    """
    return hashlib.sha256(f"{user_id}\x00{memory_id}".encode()).hexdigest()


def metadata_term(key: str, value: object) -> str | None:
    """``key=value`` as filtered on; values use their JSON spelling, None is never matched.

    ``\\`` and ``=`` in the key are escaped, so ``("a=b", "c")`` and ``("a", "b=c")`` differ.
    """
    if value is None:
        return None
    text = value if isinstance(value, str) else json.dumps(value)
    return key.replace("\\", "\\\\").replace("=", "\\=") + "=" + text


def search_text(memory: Memory) -> str:
    """The pre-tokenised BM25 text of a memory: content, keywords and subject."""
    parts = [memory.content, *memory.keywords, memory.subject or ""]
    return " ".join(tokenize(" ".join(parts)))


def to_source(memory: Memory) -> Json:
    """The ``_source`` of a memory: the codec's document plus the derived index fields."""
    doc = memory_to_doc(memory, with_embedding=True)
    doc["search_text"] = search_text(memory)
    terms = (metadata_term(k, v) for k, v in memory.metadata.items())
    doc["metadata_kv"] = [t for t in terms if t is not None]
    return doc


def from_source(source: Json) -> Memory:
    """The memory in a ``_source`` (derived fields dropped)."""
    return memory_from_doc({k: v for k, v in source.items() if k not in DERIVED_FIELDS})


def _range(field: str, window: TimeWindow) -> Json:
    bounds: Json = {}
    if window.start is not None:
        bounds["gte"] = _iso(window.start, "filter.time.start")
    if window.end is not None:
        bounds["lt"] = _iso(window.end, "filter.time.end")
    return {"range": {field: bounds}}


def _iso(value: datetime, field: str) -> str:
    if value.tzinfo is None:
        raise InvalidInput(field, "must be timezone-aware")
    return value.isoformat()


def time_clause(window: TimeWindow) -> Json:
    """The clause of a time window; on event_time, no event time falls back to recorded_at."""
    if window.field == TimeField.RECORDED_AT:
        return _range("recorded_at", window)
    fallback = {
        "bool": {
            "must_not": [{"exists": {"field": "event_time"}}],
            "filter": [_range("recorded_at", window)],
        }
    }
    return {"bool": {"should": [_range("event_time", window), fallback], "minimum_should_match": 1}}


def build_filters(user_id: str, flt: MemoryFilter | None) -> list[Json]:
    """The filter clauses of one user's query; ``term user_id`` always comes first."""
    flt = flt or MemoryFilter()
    clauses: list[Json] = [{"term": {"user_id": user_id}}]
    if flt.statuses is not None:
        clauses.append({"terms": {"status": [st.value for st in flt.statuses]}})
    elif not flt.include_superseded:
        clauses.append({"term": {"status": MemoryStatus.ACTIVE.value}})
    if flt.superseded_by is not None:
        clauses.append({"terms": {"superseded_by": list(flt.superseded_by)}})
    if flt.kinds is not None:
        clauses.append({"terms": {"kind": [k.value for k in flt.kinds]}})
    if flt.ids is not None:
        clauses.append({"terms": {"id": list(flt.ids)}})
    if flt.session_id is not None:
        clauses.append({"term": {"session_id": flt.session_id}})
    if flt.time is not None and (flt.time.start is not None or flt.time.end is not None):
        clauses.append(time_clause(flt.time))
    for key, value in flt.metadata:
        clauses.append({"term": {"metadata_kv": metadata_term(key, str(value))}})
    return clauses


def filter_query(filters: list[Json]) -> Json:
    """A query that only filters (no scoring)."""
    return {"bool": {"filter": filters}}


def _source_spec(with_embedding: bool) -> Json:
    excludes = [*DERIVED_FIELDS, *([] if with_embedding else ["embedding"])]
    return {"excludes": excludes}


def knn_body(
    vector: Sequence[float], filters: list[Json], size: int, with_embedding: bool = True
) -> Json:
    """A filtered approximate kNN search returning ``size`` hits (capped by Elasticsearch)."""
    k = min(size, MAX_KNN_CANDIDATES)
    return {
        "knn": {
            "field": "embedding",
            "query_vector": [float(x) for x in vector],
            "k": k,
            "num_candidates": min(MAX_KNN_CANDIDATES, max(100, 2 * k)),
            "filter": filters,
        },
        "size": k,
        "_source": _source_spec(with_embedding),
    }


def query_tokens(text: str) -> list[str]:
    """The distinct search tokens of query text (at most :data:`MAX_QUERY_TOKENS`)."""
    return list(dict.fromkeys(tokenize(text)))[:MAX_QUERY_TOKENS]


def bm25_body(
    text: str, filters: list[Json], size: int, with_embedding: bool = True
) -> Json | None:
    """A filtered BM25 search on ``search_text``; None when the text has no token."""
    tokens = query_tokens(text)
    if not tokens:
        return None
    match = {"match": {"search_text": {"query": " ".join(tokens), "operator": "or"}}}
    return {
        "query": {"bool": {"must": [match], "filter": filters}},
        "size": min(size, MAX_RESULT_WINDOW),
        "sort": ["_score", {"recorded_at": "desc"}, {"id": "asc"}],
        "track_scores": True,
        "_source": _source_spec(with_embedding),
    }


def list_body(
    filters: list[Json], limit: int, after: list[Any] | None, newest_first: bool = False
) -> Json:
    """One page in (recorded_at, id) order (or the reverse), one extra hit to tell whether
    more follow.

    The extra hit is dropped at :data:`MAX_RESULT_WINDOW`; :func:`page_has_more` allows for it.
    Dates sort at Elasticsearch's millisecond precision (then by id).
    """
    order = "desc" if newest_first else "asc"
    body: Json = {
        "query": filter_query(filters),
        "sort": [{"recorded_at": order}, {"id": order}],
        "size": min(limit + 1, MAX_RESULT_WINDOW),
        "_source": _source_spec(True),
    }
    if after is not None:
        body["search_after"] = after
    return body


def page_has_more(hits: int, limit: int) -> bool:
    """Whether a list page of ``hits`` (asked for ``limit``) may have a next page."""
    return hits > limit or hits == MAX_RESULT_WINDOW


def encode_cursor(sort_values: Sequence[Any]) -> str:
    """An opaque cursor: the (recorded_at millis, id) sort values of a page's last memory."""
    raw = json.dumps(list(sort_values), ensure_ascii=False).encode("utf-8")
    return base64.urlsafe_b64encode(raw).decode("ascii")


def decode_cursor(cursor: object) -> list[Any]:
    """The inverse of :func:`encode_cursor`; refuses anything it did not make."""
    if not isinstance(cursor, str):
        raise InvalidInput("cursor", "not a cursor returned by list()")
    try:
        values = json.loads(base64.urlsafe_b64decode(cursor.encode("ascii")))
    except (ValueError, TypeError, UnicodeError, binascii.Error) as e:
        raise InvalidInput("cursor", "not a cursor returned by list()") from e
    if (
        not isinstance(values, list)
        or len(values) != 2
        or not isinstance(values[0], int)
        or isinstance(values[0], bool)
        or not isinstance(values[1], str)
    ):
        raise InvalidInput("cursor", "not a cursor returned by list()")
    return values
