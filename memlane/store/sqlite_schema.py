"""The SQLite schema of the embedded store, and how a connection is opened and set up.

Tables:

- ``memories``: one row per (user_id, id). Columns used for filtering are real columns; the
  whole memory is kept as JSON in ``doc`` (without the embedding, which is a float32 blob).
  Times are integer microseconds since the epoch (UTC), so range filters are exact.
  ``event_us`` is the event time, or ``recorded_us`` when the memory has no event time.
- ``memories_fts``: FTS5 over text pre-tokenised by :func:`memlane.text.tokens.tokenize`, with
  rowid = ``memories.rowid``. The ``ascii`` tokenizer splits only on ASCII punctuation and
  spaces, so every pre-made token (Chinese words, kana/Hangul bigrams) stays one FTS token.
- ``user_versions``: a random token per user, replaced in every write transaction, so any
  process can tell cheaply whether its cached vectors for that user are stale.
- ``store_meta``: schema version and vector dims, checked when the file is opened, and the
  version of the BM25 tokens in ``memories_fts`` (:data:`memlane.text.tokens.TOKENIZER_VERSION`;
  a file without it holds version 1). A file indexed with other tokens has its FTS rows rebuilt
  from the stored documents when it is opened, once, inside the schema transaction: the
  embedded store needs no separate migration command.

Schema 3 added the ``superseded_by`` column (the version history asks for a memory's
predecessors). A schema-2 file is migrated in place when it is opened: the column is added and
filled from each row's JSON document, in one transaction.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from memlane.errors import StoreError, StoreUnavailable
from memlane.logging import get_logger
from memlane.store.sqlite_query import fts_text, memory_from_row, owner_token
from memlane.text.tokens import TOKENIZER_VERSION

log = get_logger(__name__)

SCHEMA_VERSION = 3
BUSY_TIMEOUT_MS = 10_000

DDL = (
    """
    CREATE TABLE IF NOT EXISTS memories (
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
        superseded_by TEXT,
        UNIQUE (user_id, id)
    )
    """,
    "CREATE INDEX IF NOT EXISTS memories_user_recorded ON memories (user_id, recorded_us, id)",
    "CREATE INDEX IF NOT EXISTS memories_user_event ON memories (user_id, event_us)",
    "CREATE INDEX IF NOT EXISTS memories_user_status ON memories (user_id, status, kind)",
    "CREATE INDEX IF NOT EXISTS memories_user_session ON memories (user_id, session_id)",
    # ``owner`` holds one token per user; BM25 MATCHes it too, so FTS5 walks only that user's
    # postings instead of scoring every user's and filtering afterwards (schema 2).
    "CREATE VIRTUAL TABLE IF NOT EXISTS memories_fts USING fts5(text, owner, tokenize = 'ascii')",
    "CREATE TABLE IF NOT EXISTS user_versions (user_id TEXT PRIMARY KEY, token TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS store_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
)
# Run after the migrations: they index columns an older file gets only from its migration.
INDEXES = (
    "CREATE INDEX IF NOT EXISTS memories_user_superseded ON memories (user_id, superseded_by)",
)
# From schema N to N + 1.
MIGRATIONS: dict[int, tuple[str, ...]] = {
    2: (
        "ALTER TABLE memories ADD COLUMN superseded_by TEXT",
        "UPDATE memories SET superseded_by = json_extract(doc, '$.superseded_by')",
    ),
}


@contextmanager
def store_errors(path: Path) -> Iterator[None]:
    """sqlite3 errors as the store's: a locked or unreachable file is retryable."""
    try:
        yield
    except sqlite3.OperationalError as e:
        if "locked" in str(e) or "busy" in str(e) or "unable to open" in str(e):
            raise StoreUnavailable(f"sqlite store {path} unavailable: {e}") from e
        raise StoreError(f"sqlite store {path}: {e}") from e
    except sqlite3.Error as e:
        raise StoreError(f"sqlite store {path}: {e}") from e
    except OSError as e:  # e.g. the data directory cannot be created
        raise StoreUnavailable(f"sqlite store {path} unavailable: {e}") from e


def connect(path: Path) -> sqlite3.Connection:
    """Open a connection in autocommit mode (transactions are explicit) with WAL settings."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    # FULL, not NORMAL: turns leave the Redis buffer once a write returns, so a commit must
    # survive power loss too, not only a killed process.
    conn.execute("PRAGMA synchronous = FULL")
    return conn


def create_schema(conn: sqlite3.Connection, dims: int) -> None:
    """Create the tables if missing and check the file was made for the same vector dims."""
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("BEGIN IMMEDIATE")
    try:
        for statement in DDL:
            conn.execute(statement)
        conn.execute(
            "INSERT OR IGNORE INTO store_meta (key, value) VALUES ('schema', ?), ('dims', ?)",
            (str(SCHEMA_VERSION), str(dims)),
        )
        stored = dict(conn.execute("SELECT key, value FROM store_meta").fetchall())
        version = _migrate(conn, int(stored["schema"]))
        if version != SCHEMA_VERSION:  # no migration path: leave the file exactly as it was
            raise StoreError(f"store schema {stored['schema']} is not {SCHEMA_VERSION}")
        for statement in INDEXES:
            conn.execute(statement)
        if int(stored.get("tokenizer", 1)) != TOKENIZER_VERSION:
            rebuild_fts(conn, int(stored.get("tokenizer", 1)))
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    if int(stored["dims"]) != dims:
        raise StoreError(f"store file holds {stored['dims']}-dim vectors, settings say {dims}")


def _migrate(conn: sqlite3.Connection, version: int) -> int:
    """Bring an older file up to :data:`SCHEMA_VERSION` inside the caller's transaction."""
    while version < SCHEMA_VERSION and version in MIGRATIONS:
        for statement in MIGRATIONS[version]:
            conn.execute(statement)
        version += 1
        conn.execute("UPDATE store_meta SET value = ? WHERE key = 'schema'", (str(version),))
    return version


def rebuild_fts(conn: sqlite3.Connection, old_version: int) -> None:
    """Re-tokenise every memory into ``memories_fts`` (inside the caller's write transaction).

    Runs when the file was indexed with other BM25 tokens than this version makes; the query
    tokens would otherwise not match the indexed ones. Records the new tokenizer version.
    """
    rows = conn.execute("SELECT rowid, user_id, doc FROM memories").fetchall()
    conn.execute("DELETE FROM memories_fts")
    conn.executemany(
        "INSERT INTO memories_fts (rowid, text, owner) VALUES (?, ?, ?)",
        [
            (rowid, fts_text(memory_from_row(doc, None)), owner_token(user))
            for rowid, user, doc in rows
        ],
    )
    conn.execute(
        "INSERT INTO store_meta (key, value) VALUES ('tokenizer', ?)"
        " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        (str(TOKENIZER_VERSION),),
    )
    if rows:  # a new file has nothing to rebuild and nothing to report
        log.info("fts_rebuilt", memories=len(rows), tokenizer=TOKENIZER_VERSION, was=old_version)
