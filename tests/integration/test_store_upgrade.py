"""Stores written before memory versions keep working: SQLite migrates, ES gains the fields.

Each test starts from a store exactly as the previous code left it
(:mod:`tests.support.legacy_stores`), opens it with today's code, and checks that old memories
read with their defaults, that predecessors are found, and that new versions can be written.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from elasticsearch import Elasticsearch

from memlane.config import Settings
from memlane.config_sections import LimitSettings
from memlane.models import Memory, MemoryFilter, MemoryStatus, SupersedeReason
from memlane.store import MemoryStore, SearchQuery
from memlane.store.elasticsearch import ElasticsearchStore
from memlane.store.es_mapping import mappings
from memlane.store.sqlite import SqliteStore
from memlane.store.sqlite_schema import SCHEMA_VERSION
from tests.contract.factories import BASE_TIME, DIMS, make_memory, vector
from tests.support.legacy_stores import es_index_v2, sqlite_schema_2


def _old_memories() -> list[Memory]:
    """An old chain: v1 superseded by v2 (a contradiction), and an unrelated memory."""
    return [
        make_memory(
            "lives in Beijing",
            mem_id="v1",
            seed=1,
            status=MemoryStatus.SUPERSEDED,
            superseded_by="v2",
            valid_to=BASE_TIME + timedelta(days=1),
        ),
        make_memory("lives in Shanghai", mem_id="v2", seed=2, minutes=60),
        make_memory("plays the guitar", mem_id="g", seed=3, minutes=30),
    ]


def _check_upgraded(store: MemoryStore) -> None:
    """Old memories read with defaults; predecessors, search and new fields all work."""
    (v1,) = store.get("u1", ["v1"])
    assert v1.valid_from == v1.recorded_at and v1.reason is None and v1.merges == []
    assert v1.superseded_by == "v2" and v1.status is MemoryStatus.SUPERSEDED
    preds = store.list("u1", MemoryFilter(include_superseded=True, superseded_by=("v2",)))
    assert [m.id for m in preds.memories] == ["v1"]
    hits = store.search("u1", SearchQuery(text="guitar", vector=vector(3)))
    assert hits[0].memory.id == "g"
    store.supersede("u1", ["g"], "v2", BASE_TIME, SupersedeReason.EDITED)
    assert store.get("u1", ["g"])[0].reason is SupersedeReason.EDITED
    store.upsert([make_memory("new", mem_id="n", reason=None, status=MemoryStatus.DELETED)])
    assert store.count("u1", MemoryFilter(statuses=(MemoryStatus.DELETED,))) == 1
    page = store.list("u1", MemoryFilter(include_superseded=True), newest_first=True)
    assert [m.id for m in page.memories] == ["v2", "g", "v1", "n"]


def test_sqlite_schema_2_file_is_migrated_in_place(tmp_path: Path) -> None:
    """Opening a schema-2 file adds and fills superseded_by, then everything works."""
    path = tmp_path / "memories.sqlite"
    sqlite_schema_2(path, DIMS, _old_memories())
    store = SqliteStore(path, DIMS, LimitSettings())
    try:
        store.ensure_schema()
        _check_upgraded(store)
    finally:
        store.close()
    conn = sqlite3.connect(path)
    try:
        meta = dict(conn.execute("SELECT key, value FROM store_meta"))
        column = dict(conn.execute("SELECT id, superseded_by FROM memories"))
        indexes = {r[1] for r in conn.execute("PRAGMA index_list(memories)")}
    finally:
        conn.close()
    assert meta["schema"] == str(SCHEMA_VERSION) == "3"
    assert column["v1"] == "v2" and column["v2"] is None
    assert "memories_user_superseded" in indexes


def test_sqlite_refuses_a_schema_it_cannot_migrate(tmp_path: Path) -> None:
    """A schema-1 file (no migration path) is refused by name, not half-migrated."""
    path = tmp_path / "memories.sqlite"
    sqlite_schema_2(path, DIMS, [])
    conn = sqlite3.connect(path)
    conn.execute("UPDATE store_meta SET value = '1' WHERE key = 'schema'")
    conn.commit()
    conn.close()
    store = SqliteStore(path, DIMS, LimitSettings())
    try:
        with pytest.raises(Exception, match="store schema 1 is not 3"):
            store.ensure_schema()
    finally:
        store.close()


@pytest.mark.elasticsearch
def test_es_v2_index_gains_the_new_fields(
    es_url: str, es_index: str, make_settings: Callable[..., Settings]
) -> None:
    """ensure_schema puts the missing fields into an existing strict index; old docs read."""
    client = Elasticsearch(es_url)
    try:
        es_index_v2(client, es_index, DIMS, _old_memories())
        settings = make_settings(
            store={"backend": "elasticsearch", "es_url": es_url, "es_index": es_index}
        )
        store = ElasticsearchStore(settings)
        try:
            store.ensure_schema()
            found = client.indices.get_mapping(index=f"{es_index}-v2")[f"{es_index}-v2"]
            props = found["mappings"]["properties"]
            assert set(props) == set(mappings(DIMS)["properties"])
            assert props["reason"] == {"type": "keyword"}
            assert props["valid_from"] == {"type": "date"}
            assert props["merges"] == {"type": "object", "enabled": False}
            store.ensure_schema()  # again: nothing left to add, no error
            _check_upgraded(store)
        finally:
            store.close()
    finally:
        client.close()
