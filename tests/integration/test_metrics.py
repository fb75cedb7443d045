"""Prometheus metrics move with real work: a real ``memlane serve``, a real prefork worker with
its own exporter (multiprocess mode), real Redis and SQLite, and the fake LLM server as the chat
model and the embedding endpoint (the only fake), so every call it counts can be checked
against what the server received.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families

from memlane import Settings
from tests.support.api_proc import ApiServer, create_key, free_port
from tests.support.llm_server import DEFAULT_REPLY, LLMServer, request_text
from tests.support.worker_proc import (
    Cluster,
    fresh_db_url,
    merge,
    wait_until,
    worker_settings_overrides,
)

pytestmark = [pytest.mark.slow, pytest.mark.celery, pytest.mark.redis]

MODEL = "fake-llm"
HAPPY, POISON = "metrics-happy-u7", "metrics-poison-u9"
MALFORMED = 'Sure! Here you go: {"observations": [{"content": "The user likes'

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(url: str, headers: dict[str, str] | None = None) -> tuple[str, Samples]:
    """The page at ``url`` and its samples by (name, sorted labels)."""
    resp = httpx.get(url, headers=headers, timeout=30)
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"].startswith("text/plain")
    samples: Samples = {}
    for family in text_string_to_metric_families(resp.text):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return resp.text, samples


def value(samples: Samples, name: str, **labels: str) -> float:
    """One sample's value (0 when the series does not exist yet)."""
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum of every series of ``name`` whose labels include ``labels``."""
    want = set(labels.items())
    return sum(v for (n, lab), v in samples.items() if n == name and want <= set(lab))


def tokens(text: str) -> int:
    """The fake server's token count of a text (four characters a token, at least one)."""
    return max(1, len(text) // 4)


@pytest.fixture
def settings(
    make_settings: Callable[..., Settings], redis_url: str, llm_server: LLMServer
) -> Iterator[Settings]:
    """A Redis database of the test's own; embeddings from the fake server; dead letters at the
    first bad output."""
    url = fresh_db_url(redis_url)
    tree = merge(
        {"redis": {"url": url}},
        {"embedding": {"base_url": llm_server.url, "dims": 384, "model": "fake-embed"}},
        worker_settings_overrides(batch_max_turns=20, max_attempts=1),
    )
    yield make_settings(**tree)
    client = redis.Redis.from_url(url)
    client.flushdb()
    client.close()


@pytest.mark.timeout(300)
def test_metrics_move_with_real_work_and_name_no_user(
    settings: Settings, llm_server: LLMServer, tmp_path: Path
) -> None:
    """Buffered turns show on the service before a worker runs; then the worker's exporter counts
    one batch of six turns per stage, one retry after an LLM 500 (an error by model), the LLM
    calls and tokens the fake server answered, its embedding calls, one dead letter after bad
    output; the service counts one retrieve; and no user id appears anywhere on either page."""
    llm_server.add_rule("POISON", fault="malformed", scope="all")
    key = create_key(settings, "acme")
    port = free_port()
    worker_env: dict[str, object] = {
        "llm__base_url": llm_server.url,
        "llm__model": MODEL,
        "llm__timeout_s": 5,
        "metrics__worker_port": port,
    }
    with (
        Cluster(settings, tmp_path / "procs") as cluster,
        ApiServer(settings, tmp_path / "serve.log") as server,
        server.client(key) as http,
    ):
        turns = [{"role": "user", "content": f"I play the guitar, day {i}"} for i in range(6)]
        pushed = http.post(f"/v1/users/{HAPPY}/turns", json={"turns": turns})
        assert pushed.status_code == 202, pushed.text
        _, before = scrape(f"{server.url}/metrics")
        assert value(before, "memlane_buffered_turns") == 6
        assert value(before, "memlane_buffered_users") == 1
        assert value(before, "memlane_oldest_pending_age_seconds") >= 0
        assert value(before, "memlane_redis_up") == 1

        llm_server.fail_next(1, "500")  # the batch's first extraction: a retry, then success
        cluster.worker(concurrency=2, **worker_env)
        cluster.beat(**worker_env)
        flushed = http.post(f"/v1/users/{HAPPY}/flush", json={"wait": True, "timeout": 120})
        assert flushed.json() == {"flushed": True}, cluster.tails()

        poison = [{"role": "user", "content": f"POISON {i}"} for i in range(3)]
        assert http.post(f"/v1/users/{POISON}/turns", json={"turns": poison}).status_code == 202
        worker_url = f"http://127.0.0.1:{port}/metrics"
        wait_until(
            lambda: value(scrape(worker_url)[1], "memlane_dead_letters_total") >= 1,
            120,
            "the poison batch's dead letter",
        )
        found = http.post(f"/v1/users/{HAPPY}/search", json={"query": "guitar"})
        assert found.status_code == 200 and found.json()["results"], found.text

        worker_page, w = scrape(worker_url)
        service_page, s = scrape(f"{server.url}/metrics")
        chats = llm_server.chat_requests()
        embeds = llm_server.embedding_calls

    assert value(w, "memlane_batches_consolidated_total") == 1
    assert value(w, "memlane_turns_consolidated_total") == 6
    assert value(w, "memlane_batch_seconds_count") == 1
    for stage in ("extract", "embed", "store"):
        assert value(w, "memlane_batch_stage_seconds_count", stage=stage) == 1, stage
    assert value(w, "memlane_dead_letters_total") == 1
    assert value(w, "memlane_task_retries_total", task="memlane.consolidate") == 1
    assert value(w, "memlane_llm_errors_total", model=MODEL, error="LLMUnavailable") == 1

    # The first chat request got the 500; the others were answered: one extraction of the
    # happy batch (no observations, so no arbitration) and one malformed of the poison batch.
    answered = chats[1:]
    assert len(chats) == 3
    assert total(w, "memlane_llm_calls_total", model=MODEL) == len(answered)
    assert value(w, "memlane_llm_tokens_total", model=MODEL, kind="prompt") == sum(
        tokens(request_text(b, "all")) for b in answered
    )
    completion = [
        MALFORMED if "POISON" in request_text(b, "all") else json.dumps(DEFAULT_REPLY)
        for b in answered
    ]
    assert value(w, "memlane_llm_tokens_total", model=MODEL, kind="completion") == sum(
        tokens(c) for c in completion
    )

    # Every /embeddings request the fake server got was counted by one of the two processes.
    worker_embeds = total(w, "memlane_embedding_calls_total")
    service_embeds = total(s, "memlane_embedding_calls_total")
    assert worker_embeds >= 1 and value(s, "memlane_embedding_calls_total", kind="query") == 1
    assert worker_embeds + service_embeds == embeds
    assert value(w, "memlane_embedding_texts_total", kind="passage") >= 6

    assert value(s, "memlane_retrieve_seconds_count", pending="false") == 1
    assert value(s, "memlane_buffered_turns") == 0
    assert value(s, "memlane_dead_letters_parked") == 1
    assert value(w, "memlane_dead_letters_parked") == 1  # the worker reads Redis too
    for page in (worker_page, service_page):
        assert HAPPY not in page and POISON not in page and "acme" not in page


@pytest.mark.timeout(120)
def test_metrics_can_require_an_admin_key(settings: Settings, tmp_path: Path) -> None:
    """With ``metrics.require_key``, /metrics refuses no key and a tenant's key (401) and
    answers an admin key; with ``metrics.enabled`` false it is not there (404)."""
    admin, tenant = create_key(settings, None), create_key(settings, "acme")
    extra = {"metrics__require_key": "true"}
    with ApiServer(settings, tmp_path / "serve.log", extra=extra) as server:
        assert httpx.get(f"{server.url}/metrics").status_code == 401
        as_tenant = {"Authorization": f"Bearer {tenant}"}
        assert httpx.get(f"{server.url}/metrics", headers=as_tenant).status_code == 401
        _, samples = scrape(f"{server.url}/metrics", {"Authorization": f"Bearer {admin}"})
        assert value(samples, "memlane_redis_up") == 1
    off = {"metrics__enabled": "false"}
    with ApiServer(settings, tmp_path / "serve-off.log", extra=off) as server:
        assert httpx.get(f"{server.url}/metrics").status_code == 404
