"""Stores exactly as memlane wrote them before memory versions (SQLite schema 2, ES index v2).

Frozen copies of that code's schema, mapping and documents (commit 59b815b), so the upgrade
tests start from what an existing deployment really has on disk, not from today's code.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from elasticsearch import Elasticsearch

from memlane.models import Memory
from memlane.store import es_mapping
from memlane.store.codec import memory_to_doc
from memlane.store.sqlite_query import fts_text, memory_row, owner_token

NEW_DOC_FIELDS = ("reason", "valid_from", "merges")  # what versions added to each document

SCHEMA_2_DDL = (
    """
    CREATE TABLE memories (
        rowid INTEGER PRIMARY KEY,
        id TEXT NOT NULL,
        user_id TEXT NOT NULL,
        kind TEXT NOT NULL,
        status TEXT NOT NULL,
        session_id TEXT,
        event_us INTEGER NOT NULL,
        recorded_us INTEGER NOT NULL,
        created_at TEXT,
        updated_at TEXT,
        meta_terms TEXT NOT NULL DEFAULT '{}',
        doc TEXT NOT NULL,
        embedding BLOB,
        UNIQUE (user_id, id)
    )
    """,
    "CREATE INDEX memories_user_recorded ON memories (user_id, recorded_us, id)",
    "CREATE INDEX memories_user_event ON memories (user_id, event_us)",
    "CREATE INDEX memories_user_status ON memories (user_id, status, kind)",
    "CREATE INDEX memories_user_session ON memories (user_id, session_id)",
    "CREATE VIRTUAL TABLE memories_fts USING fts5(text, owner, tokenize = 'ascii')",
    "CREATE TABLE user_versions (user_id TEXT PRIMARY KEY, token TEXT NOT NULL)",
    "CREATE TABLE store_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
)

_V2_KEYWORDS = (
    "id user_id kind status session_id batch_id superseded_by language subject"
    " source_turn_ids keywords time_granularity metadata_kv"
).split()
_V2_DATES = ("event_time", "recorded_at", "created_at", "updated_at", "valid_to")


def old_doc(memory: Memory, with_embedding: bool) -> dict[str, Any]:
    """The document the old code stored: today's, without the fields versions added."""
    doc = memory_to_doc(memory, with_embedding=with_embedding)
    for name in NEW_DOC_FIELDS:
        del doc[name]
    return doc


def sqlite_schema_2(path: Path, dims: int, memories: Sequence[Memory]) -> None:
    """A schema-2 store file holding ``memories`` (superseded_by only inside each doc)."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode = WAL")
        for statement in SCHEMA_2_DDL:
            conn.execute(statement)
        conn.execute("INSERT INTO store_meta VALUES ('schema', '2'), ('dims', ?)", (str(dims),))
        now = datetime.now(UTC)
        for memory in memories:
            row = memory_row(memory, now)
            del row["superseded_by"]
            row["doc"] = json.dumps(old_doc(memory, False), ensure_ascii=False)
            columns = ", ".join(row)
            values = ", ".join(f":{c}" for c in row)
            (rowid,) = conn.execute(
                f"INSERT INTO memories ({columns}) VALUES ({values}) RETURNING rowid", row
            ).fetchone()
            conn.execute(
                "INSERT INTO memories_fts (rowid, text, owner) VALUES (?, ?, ?)",
                (rowid, fts_text(memory), owner_token(memory.user_id)),
            )
    finally:
        conn.close()


def es_v2_mapping(dims: int) -> dict[str, Any]:
    """The strict mapping of index version 2 before versions."""
    props: dict[str, Any] = {name: {"type": "keyword"} for name in _V2_KEYWORDS}
    props |= {name: {"type": "date"} for name in _V2_DATES}
    props |= {
        "content": {"type": "text", "analyzer": "standard"},
        "search_text": {"type": "text", "analyzer": "whitespace"},
        "importance": {"type": "float"},
        "metadata": {"type": "object", "enabled": False},
        "embedding": {
            "type": "dense_vector",
            "dims": dims,
            "index": True,
            "similarity": "cosine",
            "index_options": {"type": "hnsw"},
        },
    }
    return {"dynamic": "strict", "_routing": {"required": True}, "properties": props}


def es_index_v2(client: Elasticsearch, alias: str, dims: int, memories: Sequence[Memory]) -> None:
    """``<alias>-v2`` behind ``alias`` with the old mapping, holding ``memories``."""
    index = f"{alias}-v2"
    client.indices.create(
        index=index,
        settings={"number_of_shards": 1, "number_of_replicas": 0},
        mappings=es_v2_mapping(dims),
        aliases={alias: {}},
    )
    for memory in memories:
        source = old_doc(memory, True)
        source["search_text"] = es_mapping.search_text(memory)
        source["metadata_kv"] = []
        client.index(
            index=index,
            id=es_mapping.doc_id(memory.user_id, memory.id),
            routing=es_mapping.routing(memory.user_id),
            document=source,
            refresh=True,
        )
