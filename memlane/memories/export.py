"""Export a user's memories as JSON lines, and import them back (``docs/export-format.md``).

Both directions keep memory flat whatever the user's size:

- export streams a store snapshot (a PIT on Elasticsearch, one read transaction on SQLite) a
  page at a time; the header's counts come from the same snapshot;
- import validates every line first, spooling the checked lines to a temporary file (the
  input may be a one-shot stream, such as an HTTP body), and only then writes them in chunks,
  embedding those without a vector (an export made without embeddings). Nothing is written
  if any line is bad. Ids and every field are kept, so importing the same export again changes
  nothing.

Import does not take the user's lease: like ``import_memories`` it writes memories of its own
ids, and a worker never rewrites a memory it did not read first.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import IO

from memlane.errors import InvalidInput
from memlane.llm.embeddings import embed_missing
from memlane.memories.export_format import (
    Header,
    header_line,
    memory_line,
    memory_of_line,
    parse_header,
    parse_json,
    parse_memory,
)
from memlane.memories.ports import MemoryServices
from memlane.models import Memory

IMPORT_CHUNK = 500  # memories per store write (and per embedding batch) on import


def export_lines(services: MemoryServices, user_id: str, embeddings: bool) -> Iterator[str]:
    """The export of one (validated) user: the header, then one line per memory.

    A generator: nothing is read until the first line is asked for, and closing it early
    ends the snapshot.
    """
    dims = services.settings.embedding.dims
    with services.store.snapshot(user_id, embeddings) as snap:
        yield header_line(user_id, datetime.now(UTC), snap.counts, embeddings, dims)
        for page in snap.pages:
            for memory in page:
                yield memory_line(memory, embeddings)


def import_lines(services: MemoryServices, user_id: str, lines: Iterable[str]) -> int:
    """Validate every line of an export, then write its memories to ``user_id``; how many."""
    if isinstance(lines, str | bytes):
        raise InvalidInput("lines", "must be an iterable of lines, not one string")
    with tempfile.TemporaryFile("w+", encoding="utf-8", newline="\n") as spool:
        header = _validate_into(services, user_id, lines, spool)
        spool.seek(0)
        return _write_from(services, user_id, spool, embed=not header.embeddings)


def _validate_into(
    services: MemoryServices, user_id: str, lines: Iterable[str], spool: IO[str]
) -> Header:
    """Parse and check every line; the memory lines go to ``spool``, one per line."""
    settings = services.settings
    dims = settings.embedding.dims
    header: Header | None = None
    found = 0
    for number, line in enumerate(lines):
        where = f"lines[{number}]"
        if isinstance(line, str | bytes) and not line.strip():
            continue  # blank lines (a trailing newline) carry nothing
        obj = parse_json(line, where)
        if header is None:
            header = parse_header(obj, dims, where)
            continue
        parse_memory(obj, header, user_id, dims, settings.limits, where)
        # The checked line itself is spooled. A raw CR or LF in valid JSON can only be
        # whitespace between tokens (json.loads refuses them inside strings), so turning them
        # into spaces keeps the object on one spool line.
        text = line.decode("utf-8") if isinstance(line, bytes) else line
        spool.write(text.strip().replace("\r", " ").replace("\n", " ") + "\n")
        found += 1
    if header is None:
        raise InvalidInput("lines", "empty: an export starts with its header line")
    if found != header.memories:
        raise InvalidInput(
            "lines", f"the header counts {header.memories} memories but {found} follow"
        )
    return header


def _write_from(services: MemoryServices, user_id: str, spool: IO[str], embed: bool) -> int:
    written = 0
    chunk: list[Memory] = []
    for line in spool:
        chunk.append(memory_of_line(json.loads(line), user_id))
        if len(chunk) == IMPORT_CHUNK:
            written += _write(services, chunk, embed)
            chunk = []
    if chunk:
        written += _write(services, chunk, embed)
    return written


def _write(services: MemoryServices, memories: list[Memory], embed: bool) -> int:
    if embed:
        embed_missing(services.embedder, memories)
    return services.store.upsert(memories)
