"""An SQLite file indexed with older BM25 tokens is re-tokenised when it is opened."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from memlane.config_sections import LimitSettings
from memlane.store.base import SearchQuery
from memlane.store.sqlite import SqliteStore
from memlane.store.sqlite_query import fts_text
from memlane.text.tokens import TOKENIZER_VERSION
from tests.contract.factories import DIMS, make_memory

OLD_TOKENS = "冰 淇 淋 店 冰淇 淇淋 淋店"  # what tokenizer 1 made of 冰淇淋店 (chars + bigrams)


def _meta(path: Path) -> dict[str, str]:
    with sqlite3.connect(path) as conn:
        return dict(conn.execute("SELECT key, value FROM store_meta").fetchall())


def test_file_with_tokenizer_1_is_reindexed_on_open(tmp_path: Path) -> None:
    """Old FTS rows (characters + bigrams, no tokenizer key) are rebuilt with today's tokens."""
    path = tmp_path / "memlane.db"
    memory = make_memory("Bart去了冰淇淋店", mem_id="m1", seed=1)
    store = SqliteStore(path, DIMS, LimitSettings())
    store.upsert([memory])
    store.close()
    with sqlite3.connect(path) as conn:  # make it look like a file written by tokenizer 1
        conn.execute("UPDATE memories_fts SET text = ?", (OLD_TOKENS,))
        conn.execute("DELETE FROM store_meta WHERE key = 'tokenizer'")
    query = SearchQuery(text="冰淇淋", k=5)

    reopened = SqliteStore(path, DIMS, LimitSettings())
    try:
        hits = reopened.search("u1", query)
        with sqlite3.connect(path) as conn:
            (text,) = conn.execute("SELECT text FROM memories_fts").fetchone()
    finally:
        reopened.close()
    assert text == fts_text(memory)
    assert "冰淇淋" in text.split()
    assert [h.memory.id for h in hits] == ["m1"]
    assert _meta(path)["tokenizer"] == str(TOKENIZER_VERSION)


def test_new_file_records_the_tokenizer_version(tmp_path: Path) -> None:
    """A fresh file says which tokens it holds, so it is never rebuilt needlessly."""
    path = tmp_path / "memlane.db"
    store = SqliteStore(path, DIMS, LimitSettings())
    store.ensure_schema()
    store.close()
    assert _meta(path)["tokenizer"] == str(TOKENIZER_VERSION)
