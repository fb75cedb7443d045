"""The ``store`` fixture: the same contract suite runs on every backend.

Each test gets an empty store of its own: a fresh SQLite file, or a uniquely named
Elasticsearch index deleted afterwards. Writes must be visible to the next read (no refresh
calls in the tests).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from memlane.client import MemoryClient
from memlane.config import Settings, load_settings
from memlane.config_sections import LimitSettings
from memlane.store import MemoryStore, build_store


@pytest.fixture
def limits() -> LimitSettings:
    """The input limits every contract store is built with (the defaults)."""
    return LimitSettings()


def _sqlite_store(tmp_path: Path) -> Iterator[MemoryStore]:
    settings = load_settings(environ={}, data_dir=str(tmp_path / "data"))
    store = build_store(settings)
    store.ensure_schema()
    yield store
    store.close()


def _elasticsearch_store(request: pytest.FixtureRequest) -> Iterator[MemoryStore]:
    es_url: str = request.getfixturevalue("es_url")
    name: str = request.getfixturevalue("es_index")  # its indices are deleted after the test
    make_settings: Callable[..., Settings] = request.getfixturevalue("make_settings")
    settings = make_settings(store={"backend": "elasticsearch", "es_url": es_url, "es_index": name})
    store = build_store(settings)
    try:
        store.ensure_schema()
        yield store
    finally:
        store.close()


@pytest.fixture(params=["sqlite", pytest.param("elasticsearch", marks=pytest.mark.elasticsearch)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[MemoryStore]:
    """An empty store of each backend, schema ensured, closed (and removed) afterwards."""
    if request.param == "sqlite":
        yield from _sqlite_store(tmp_path)
    else:
        yield from _elasticsearch_store(request)


@pytest.fixture(params=["sqlite", pytest.param("elasticsearch", marks=pytest.mark.elasticsearch)])
def make_client(
    request: pytest.FixtureRequest,
    make_settings: Callable[..., Settings],
    redis_client: object,  # the test's Redis keys are removed afterwards
) -> Iterator[Callable[[str], MemoryClient]]:
    """Build MemoryClients on fresh stores of each backend: ``make_client("b")`` is a client
    on its own empty store (SQLite file or ES index) sharing the test's Redis; all closed
    afterwards."""
    clients: list[MemoryClient] = []

    def build(name: str = "main") -> MemoryClient:
        if request.param == "sqlite":
            settings = make_settings(data_dir=str(Path(make_settings().data_dir) / name))
        else:
            es_url: str = request.getfixturevalue("es_url")
            index = f"{request.getfixturevalue('es_index')}-{name}"
            settings = make_settings(
                store={"backend": "elasticsearch", "es_url": es_url, "es_index": index}
            )
        client = MemoryClient(settings)
        clients.append(client)
        return client

    yield build
    for client in clients:
        client.close()


@pytest.fixture
def client(make_client: Callable[[str], MemoryClient]) -> MemoryClient:
    """A MemoryClient on an empty store of each backend, with real Redis and embedder."""
    return make_client("main")
