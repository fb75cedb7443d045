"""Memory stores: the :class:`MemoryStore` protocol and the factory that builds a backend."""

from __future__ import annotations

from memlane.config import Settings
from memlane.config_sections import StoreBackend
from memlane.store.base import MemoryStore, SearchQuery

__all__ = ["MemoryStore", "SearchQuery", "build_store"]


def build_store(settings: Settings) -> MemoryStore:
    """The configured backend: SQLite (embedded default) or Elasticsearch.

    Backends are imported here, lazily, so SQLite users never import the Elasticsearch client.
    """
    if settings.store.backend == StoreBackend.ELASTICSEARCH:
        from memlane.store.elasticsearch import ElasticsearchStore

        store: MemoryStore = ElasticsearchStore(settings)
        return store
    from memlane.store.sqlite import SqliteStore

    return SqliteStore(settings.sqlite_file, settings.embedding.dims, settings.limits)
