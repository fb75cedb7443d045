"""Pure helpers of the SQLite store: the one WHERE builder, FTS expressions, cursors, rows.

:func:`where_clause` is the only place a filter becomes SQL, and it always starts with the
user id, so no query of the store can forget tenant isolation. Every query aliases the
``memories`` table as ``m``.

Time windows are half-open ``[start, end)``. On ``event_time`` a memory without an event time
is compared by its ``recorded_at`` instead (the ``event_us`` column holds that fallback).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from datetime import UTC, datetime, timedelta
from typing import Any

from memlane.errors import InvalidInput
from memlane.models import Memory, MemoryFilter, MemoryStatus, TimeField
from memlane.store.codec import memory_from_doc, memory_to_doc
from memlane.store.vectors import from_blob, to_blob
from memlane.text.tokens import tokenize

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MAX_QUERY_TOKENS = 128
MEMORY_COLUMNS = "m.rowid, m.doc, m.embedding"


def to_us(value: datetime, field: str) -> int:
    """A tz-aware datetime as integer microseconds since the epoch (exact, sortable)."""
    if value.tzinfo is None:
        raise InvalidInput(field, "must be timezone-aware")
    return (value - EPOCH) // timedelta(microseconds=1)


def metadata_term(value: object) -> str | None:
    """The string a metadata value is compared as (JSON spelling; None is never matched)."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    return json.dumps(value)


def metadata_terms(metadata: dict[str, Any]) -> str:
    """The JSON object of key -> comparison string stored for metadata filters."""
    terms = {k: t for k, v in metadata.items() if (t := metadata_term(v)) is not None}
    return json.dumps(terms, ensure_ascii=False, sort_keys=True)


def _in(column: str, values: tuple[str, ...], params: list[Any]) -> str:
    if not values:
        return "0"
    params.extend(values)
    return f"{column} IN ({', '.join('?' * len(values))})"


def where_clause(user_id: str, flt: MemoryFilter | None) -> tuple[str, list[Any]]:
    """The WHERE condition (without the keyword) and its parameters for one user's filter."""
    flt = flt or MemoryFilter()
    parts = ["m.user_id = ?"]
    params: list[Any] = [user_id]
    if flt.statuses is not None:
        parts.append(_in("m.status", tuple(s.value for s in flt.statuses), params))
    elif not flt.include_superseded:
        parts.append("m.status = ?")
        params.append(MemoryStatus.ACTIVE.value)
    if flt.superseded_by is not None:
        parts.append(_in("m.superseded_by", tuple(flt.superseded_by), params))
    if flt.kinds is not None:
        parts.append(_in("m.kind", tuple(k.value for k in flt.kinds), params))
    if flt.ids is not None:
        parts.append(_in("m.id", tuple(flt.ids), params))
    if flt.session_id is not None:
        parts.append("m.session_id = ?")
        params.append(flt.session_id)
    if flt.time is not None:
        column = "m.recorded_us" if flt.time.field == TimeField.RECORDED_AT else "m.event_us"
        if flt.time.start is not None:
            parts.append(f"{column} >= ?")
            params.append(to_us(flt.time.start, "filter.time.start"))
        if flt.time.end is not None:
            parts.append(f"{column} < ?")
            params.append(to_us(flt.time.end, "filter.time.end"))
    for key, value in flt.metadata:
        parts.append(
            "EXISTS (SELECT 1 FROM json_each(m.meta_terms) AS j WHERE j.key = ? AND j.value = ?)"
        )
        params.extend((key, str(value)))
    return " AND ".join(parts), params


def fts_text(memory: Memory) -> str:
    """The pre-tokenised text indexed for BM25: content, keywords and subject."""
    parts = [memory.content, *memory.keywords, memory.subject or ""]
    return " ".join(tokenize(" ".join(parts)))


def owner_token(user_id: str) -> str:
    """The FTS token standing for one user: ``u`` + a hash, so any user id is safe in FTS."""
    return "u" + hashlib.sha256(user_id.encode("utf-8")).hexdigest()[:24]


def match_expression(text: str, user_id: str | None = None) -> str | None:
    """An FTS5 MATCH string: every query token quoted as a literal, joined with OR.

    Quoting makes operators and syntax in user text (``"``, ``*``, ``:``, ``-``, NEAR, OR)
    plain words. With ``user_id`` the match is ANDed with the user's owner token, so FTS5 only
    visits that user's postings (the SQL join still filters by user as well). None when the
    text has no searchable token.
    """
    tokens = list(dict.fromkeys(tokenize(text)))[:MAX_QUERY_TOKENS]
    if not tokens:
        return None
    terms = "text : (" + " OR ".join('"' + t.replace('"', '""') + '"' for t in tokens) + ")"
    return f"owner : {owner_token(user_id)} AND {terms}" if user_id is not None else terms


def encode_cursor(recorded_us: int, mem_id: str) -> str:
    """An opaque cursor: the (recorded_at, id) position of the last memory of a page."""
    raw = json.dumps([recorded_us, mem_id], ensure_ascii=False).encode("utf-8")
    return base64.urlsafe_b64encode(raw).decode("ascii")


def decode_cursor(cursor: str) -> tuple[int, str]:
    """The inverse of :func:`encode_cursor`; refuses anything it did not make."""
    try:
        recorded_us, mem_id = json.loads(base64.urlsafe_b64decode(cursor.encode("ascii")))
    except (ValueError, TypeError, UnicodeError, binascii.Error) as e:
        raise InvalidInput("cursor", "not a cursor returned by list()") from e
    if not isinstance(recorded_us, int) or not isinstance(mem_id, str):
        raise InvalidInput("cursor", "not a cursor returned by list()")
    return recorded_us, mem_id


def memory_row(memory: Memory, now: datetime) -> dict[str, Any]:
    """The column values stored for a (validated) memory."""
    memory = memory.replace(
        created_at=memory.created_at or now, updated_at=memory.updated_at or now
    )
    recorded_us = to_us(memory.recorded_at, "recorded_at")
    event = memory.event_time
    return {
        "id": memory.id,
        "user_id": memory.user_id,
        "kind": memory.kind.value,
        "status": memory.status.value,
        "session_id": memory.session_id,
        "event_us": to_us(event, "event_time") if event else recorded_us,
        "recorded_us": recorded_us,
        "created_at": memory.created_at.isoformat() if memory.created_at else None,
        "updated_at": memory.updated_at.isoformat() if memory.updated_at else None,
        "meta_terms": metadata_terms(memory.metadata),
        "doc": json.dumps(memory_to_doc(memory, with_embedding=False), ensure_ascii=False),
        "embedding": to_blob(memory.embedding) if memory.embedding is not None else None,
        "superseded_by": memory.superseded_by,
    }


def memory_from_row(doc: str, embedding: bytes | None) -> Memory:
    """A memory from its stored JSON document and float32 blob."""
    memory = memory_from_doc(json.loads(doc))
    if embedding is not None:
        memory.embedding = [float(x) for x in from_blob(embedding)]
    return memory
