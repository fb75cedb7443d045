"""Fixtures for fault tests: a Redis database per test, fast batching (es_index is shared)."""

from __future__ import annotations

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
