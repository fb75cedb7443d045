"""Fixtures for fault tests: a Redis database per test, a uniquely named ES index, fast batching."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from memlane.config import Settings
from tests.support.worker_proc import flush_db, fresh_db_url, merge, worker_settings_overrides


@pytest.fixture
def db_url(redis_url: str) -> Iterator[str]:
    """A Redis database of the test's own (Celery queues are not under the key prefix)."""
    url = fresh_db_url(redis_url)
    yield url
    flush_db(url)


@pytest.fixture
def fault_settings(make_settings: Callable[..., Settings], db_url: str) -> Callable[..., Settings]:
    """Settings on the test's database with fast dispatch; ``batching`` etc. may be overridden."""

    def build(**overrides: Any) -> Settings:
        batching = overrides.pop("batching", {})
        tree = merge({"redis": {"url": db_url}}, worker_settings_overrides(**batching), overrides)
        return make_settings(**tree)

    return build


@pytest.fixture
def es_index(es_url: str) -> Iterator[str]:
    """A unique index alias name; its indices are deleted afterwards."""
    from elasticsearch import Elasticsearch

    name = f"memlane-fault-{uuid.uuid4().hex[:12]}"
    yield name
    client = Elasticsearch(es_url)
    try:
        found = client.indices.get(index=f"{name}*", allow_no_indices=True)
        if found:
            client.indices.delete(index=",".join(found))
    finally:
        client.close()
