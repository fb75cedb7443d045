"""The cache of a batch's LLM extraction in Redis (``Keys.extraction``), kept with a TTL.

Consolidation saves the validated extraction of a batch here *before* anything is written to the
store, so a retried batch never pays for it twice and derives the same memory ids
(:class:`pipelines.extraction.run.LLMExtractor` uses it through its ``ExtractionCache`` port).
"""

from __future__ import annotations

import json
from typing import Any

import redis

from memlane.buffer.keys import Keys
from memlane.errors import RedisUnavailable
from memlane.logging import get_logger

log = get_logger(__name__)
CACHE_FORMAT = 1  # a document of another format is ignored (and the batch extracted again)


class RedisExtractionCache:
    """The extraction cache in Redis (``Keys.extraction``), with a TTL."""

    def __init__(self, client: redis.Redis, keys: Keys, ttl_s: int) -> None:
        self._r = client
        self._keys = keys
        self._ttl = ttl_s

    def get(self, batch_id: str) -> dict[str, Any] | None:
        """The cached document, or None (also for an unreadable one, which is then redone)."""
        try:
            raw = self._r.get(self._keys.extraction(batch_id))
        except redis.RedisError as e:
            raise RedisUnavailable(f"extraction cache read failed: {e}") from e
        if raw is None:
            return None
        doc = json.loads(raw)  # type: ignore[arg-type]
        return doc if isinstance(doc, dict) and doc.get("format") == CACHE_FORMAT else None

    def put(self, batch_id: str, doc: dict[str, Any]) -> None:
        """Save the document with the TTL."""
        payload = json.dumps({**doc, "format": CACHE_FORMAT}, ensure_ascii=False)
        try:
            self._r.set(self._keys.extraction(batch_id), payload, ex=self._ttl)
        except redis.RedisError as e:
            raise RedisUnavailable(f"extraction cache write failed: {e}") from e

    def drop(self, batch_id: str) -> None:
        """Delete a committed batch's document; a failure only leaves it to its TTL."""
        try:
            self._r.delete(self._keys.extraction(batch_id))
        except redis.RedisError as e:
            log.warning("extraction_cache_drop_failed", batch_id=batch_id, error=str(e))
