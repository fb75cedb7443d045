"""The inspector's pending-and-failed view and its store outage, in a real headless Chromium.

The dead letter is made for real: a worker embeds through an endpoint that answers 400 (a
non-retryable error, one attempt), then a worker with the local model replays what the page's
Replay button queued. The outage is real too: Elasticsearch sits behind a TCP proxy the test
cuts (:mod:`tests.support.tcp_proxy`).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

from memlane import MemoryClient, Settings
from memlane.buffer.usage import UsageRecorder
from memlane.llm.chat import Usage
from tests.support.api_proc import ApiServer, create_key
from tests.support.browser import Inspector
from tests.support.http_stub import RefusingEndpoint
from tests.support.inspector_site import es_settings
from tests.support.services import EsService, RedisService, delete_indices
from tests.support.tcp_proxy import TcpProxy
from tests.support.worker_proc import (
    Cluster,
    flush_db,
    fresh_db_url,
    wait_until,
    worker_settings_overrides,
)

pytestmark = [pytest.mark.browser, pytest.mark.redis, pytest.mark.slow]
TURNS = ["我周六下午要去上吉他课", "My sister's name is Lina", "I moved to Suzhou last year"]


@pytest.fixture
def worker_settings(make_settings: Callable[..., Settings], redis_url: str) -> Iterator[Settings]:
    """Settings on a Redis database of the test's own, fast batching, one attempt per batch."""
    url = fresh_db_url(redis_url)
    overrides = worker_settings_overrides(batch_max_turns=5, max_attempts=1)
    yield make_settings(redis={"url": url}, **overrides)
    flush_db(url)


@pytest.mark.celery
@pytest.mark.timeout(360)
def test_a_dead_letter_shows_its_reason_and_replay_stores_its_turns(
    chromium: webdriver.Chrome, worker_settings: Settings, tmp_path: Path
) -> None:
    """Pending and failed work: the dead letter with its reason and turns, today's LLM usage
    and the chart; Replay (by keyboard) queues it and the turns become memories."""
    settings = worker_settings
    tenant = f"t{uuid.uuid4().hex[:8]}"
    key = create_key(settings, tenant)
    uid = f"@{tenant}/fay"
    with (
        RefusingEndpoint(status=400) as endpoint,
        Cluster(settings, tmp_path / "procs") as cluster,
        ApiServer(settings, tmp_path / "serve.log") as server,
        MemoryClient(settings) as local,
    ):
        broken = cluster.worker(
            "worker-broken", concurrency=1, embedding__base_url=endpoint.base_url
        )
        cluster.beat()
        local.add_turns(uid, [{"role": "user", "content": c} for c in TURNS])
        buf = local.services.buffer
        # A failing batch is split down to single turns before it is parked: one letter each.
        wait_until(
            lambda: sum(len(d["entries"]) for d in buf.dead_letters(uid)) == len(TURNS),
            120,
            "fay's turns to be dead-lettered",
        )
        now = datetime.now(UTC)
        for days_ago, tokens in ((0, 1200), (1, 300), (4, 2500), (9, 800)):
            at = now - timedelta(days=days_ago)
            UsageRecorder(local.services.redis, local.services.keys, clock=lambda at=at: at).record(
                uid, Usage("qwen2.5-7b-instruct", tokens, tokens // 4)
            )
        broken.stop()
        cluster.worker("worker-fixed", concurrency=1)  # the local embedding model again

        page = Inspector(chromium, server.url)
        page.width(1280)
        chromium.get_log("browser")
        page.login(key)
        page.wait_text("fay", "ul.users")
        assert page.facts(page.find("ul.users > li"))["dead letters"] == "3"
        page.go("/u/fay/work")
        letter = page.wait_text("LLMError", "ul.letters > li")
        letters = page.find_all("ul.letters > li")
        assert len(letters) == 3
        assert all("Reason: LLMError" in li.text and "1 turn" in li.text for li in letters)
        shown = {
            li.find_element(By.CSS_SELECTOR, "details").get_attribute("textContent")
            for li in letters
        }
        assert all(any(t in s for s in shown) for t in TURNS)
        today = page.facts(page.wait_text("LLM calls", "#usage"))
        assert (today["LLM calls"], today["prompt tokens"], today["completion tokens"]) == (
            "1",
            "1,200",
            "300",
        )
        assert today["by model"] == "qwen2.5-7b-instruct: 1 call, 1,200 + 300 tokens"
        bars = page.find_all("#usage svg.chart rect.bar")
        assert len(bars) == 30
        tall = [float(b.get_attribute("height") or 0) for b in bars]
        assert max(tall) == tall[-5] > tall[-1] > tall[-2] > 0  # 4 days ago is the highest
        letter.find_element(By.TAG_NAME, "summary").click()  # show the turns in the picture
        page.screenshot("inspector-work-1280.png", 1280)
        page.screenshot("inspector-work-390.png", 390)
        assert page.overflow_x() == 0
        assert page.unnamed_controls() == []
        page.width(1280)

        buttons = page.find_all("ul.letters button")
        assert all(b.accessible_name.startswith("Replay batch ") for b in buttons)
        for button in buttons:  # queued one after another, before the first comes back
            button.send_keys(Keys.ENTER)
        page.wait_text("was replayed", "#banner", timeout=150)
        page.wait_text("No dead letters", "#dead-letters")
        assert buf.dead_letters(uid) == []
        page.go("/u/fay")
        timeline = page.wait_text("我周六下午要去上吉他课", "ol.timeline")
        assert all(t in timeline.text for t in TURNS)
        assert page.console_errors() == []


@pytest.fixture
def proxied_es(es_service: EsService) -> Iterator[TcpProxy]:
    """A cuttable proxy in front of the session's Elasticsearch node."""
    proxy = TcpProxy.for_url(es_service.url).start()
    yield proxy
    proxy.stop()


@pytest.mark.elasticsearch
@pytest.mark.timeout(240)
def test_a_store_outage_shows_a_readable_error_and_the_page_recovers(
    chromium: webdriver.Chrome,
    redis_service: RedisService,
    es_service: EsService,
    proxied_es: TcpProxy,
    tmp_path: Path,
) -> None:
    """With Elasticsearch cut, the search and users views say 503 StoreUnavailable in words
    (never a blank page); after it is back, "Try again" shows the results."""
    index = f"memlane-test-{uuid.uuid4().hex[:12]}"
    settings = es_settings(tmp_path, redis_service.url, proxied_es.url, index, es_timeout_s=2)
    key = create_key(settings, "acme")
    with MemoryClient(settings) as local:
        local.import_memories("@acme/gus", [{"content": "Gus plays the guitar in a band."}])
    extra = {"store__es_timeout_s": 2}
    try:
        with ApiServer(settings, tmp_path / "serve.log", extra=extra) as server:
            page = Inspector(chromium, server.url)
            page.width(1280)
            chromium.get_log("browser")
            page.login(key)
            page.go("/u/gus/search?q=guitar")
            page.wait_text("Gus plays the guitar", "ol.results")

            proxied_es.cut()
            page.go("/u/gus/search?q=band")
            error = page.wait_text("503 StoreUnavailable", "[role=alert]", timeout=20)
            assert "try again in" in error.text
            assert page.find("h1").text == "The memory store is not answering"
            page.go("/users")
            page.wait_text("503 StoreUnavailable", "[role=alert]", timeout=20)
            page.screenshot("inspector-outage-390.png", 390)
            page.width(1280)

            proxied_es.restore()
            page.go("/u/gus/search?q=band")  # fails until the proxy passes traffic again

            def recovered(_: webdriver.Chrome) -> bool:
                if page.find_all("ol.results"):
                    return True
                for button in page.find_all("button"):
                    if button.text == "Try again":
                        button.click()
                return False

            page.wait(recovered, 60, "the search to answer again")
            page.wait_text("Gus plays the guitar", "ol.results")
            assert page.console_errors(allowed=("status of 503",)) == []
    finally:
        delete_indices(es_service.url, index)
