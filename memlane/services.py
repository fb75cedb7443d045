"""The bundle of adapters a process needs, built from settings once and shared.

Clients and connections are created lazily and re-created after a fork (a child never uses
its parent's sockets or its parent's embedding model).
"""

from __future__ import annotations

import os
import threading
from typing import Any

import redis

from memlane.buffer.attempts import RedisAttempts
from memlane.buffer.connection import connect_redis
from memlane.buffer.keys import Keys
from memlane.buffer.lease import Leases
from memlane.buffer.provider_limits import RedisProviderLimiter
from memlane.buffer.turns import TurnBuffer
from memlane.config import Settings
from memlane.llm.embeddings import CachingEmbedder, build_embedder
from memlane.store.base import MemoryStore


def _limited(section: Any) -> bool:
    """Whether a model section sets rpm or tpm (only then is Redis asked before each call)."""
    return bool(section.rpm or section.tpm)


class Services:
    """Redis, the buffer, leases, the store and the embedder for one process."""

    def __init__(
        self,
        settings: Settings,
        redis_client: redis.Redis | None = None,
        store: MemoryStore | None = None,
        embedder: CachingEmbedder | None = None,
    ) -> None:
        self.settings = settings
        self.keys = Keys(settings.redis.key_prefix)
        self._given: dict[str, Any] = {"redis": redis_client, "store": store, "embedder": embedder}
        self._made: dict[str, Any] = {}
        self._pid = os.getpid()
        self._lock = threading.RLock()

    def _lazy(self, name: str, factory: Any) -> Any:
        if self._given.get(name) is not None:
            return self._given[name]
        with self._lock:
            if self._pid != os.getpid():  # forked: drop the parent's clients
                self._made.clear()
                self._pid = os.getpid()
            if name not in self._made:
                self._made[name] = factory()
            return self._made[name]

    @property
    def redis(self) -> redis.Redis:
        """The Redis client."""
        client: redis.Redis = self._lazy("redis", lambda: connect_redis(self.settings))
        return client

    @property
    def buffer(self) -> TurnBuffer:
        """The turn buffer."""
        return self._lazy("buffer", lambda: TurnBuffer(self.redis, self.keys))  # type: ignore[no-any-return]

    @property
    def leases(self) -> Leases:
        """Per-user leases (the queue allowance derived from the call budget unless set)."""
        b, lease_ttl = self.settings.batching, self.settings.timing.lease_ttl_s
        return self._lazy(  # type: ignore[no-any-return]
            "leases",
            lambda: Leases(self.redis, self.keys, lease_ttl, b.running_lease_ttl_s),
        )

    @property
    def attempts(self) -> RedisAttempts:
        """Per-batch attempt counters."""
        return RedisAttempts(self.redis, self.keys)

    @property
    def store(self) -> MemoryStore:
        """The memory store (schema ensured on first use)."""
        return self._lazy("store", self._make_store)  # type: ignore[no-any-return]

    def _make_store(self) -> MemoryStore:
        from memlane.store import build_store

        store = build_store(self.settings)
        store.ensure_schema()
        return store

    @property
    def embedder(self) -> CachingEmbedder:
        """The embedder (local model or remote endpoint)."""
        return self._lazy(  # type: ignore[no-any-return]
            "embedder",
            lambda: build_embedder(
                self.settings.embedding,
                self.settings.limits.max_embed_chars,
                self.provider_limiter if _limited(self.settings.embedding) else None,
            ),
        )

    @property
    def provider_limiter(self) -> RedisProviderLimiter:
        """The providers' rpm/tpm windows, shared by every process through Redis."""
        return RedisProviderLimiter(self.redis, self.keys)

    def close(self) -> None:
        """Close what this bundle created (not what was passed in)."""
        with self._lock:
            made, self._made = self._made, {}
        if "store" in made:
            made["store"].close()
        if "redis" in made:
            made["redis"].close()
        if "embedder" in made:
            made["embedder"].close()
