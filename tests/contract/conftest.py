"""The ``store`` fixture: the same contract suite runs on every backend.

Each test gets an empty store of its own: a fresh SQLite file, or a uniquely named
Elasticsearch index deleted afterwards. Writes must be visible to the next read (no refresh
calls in the tests).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

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
