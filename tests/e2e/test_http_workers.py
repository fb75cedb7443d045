"""End to end over HTTP with real workers on Elasticsearch: push, flush, search, list, export.

A real ``memlane serve``, a real Celery worker and beat (:class:`tests.support.worker_proc.
Cluster`) on the test's own Redis database, and the real Elasticsearch node; raw mode (no LLM).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from memlane import Settings
from tests.support.api_proc import ApiServer, create_key
from tests.support.worker_proc import Cluster, fresh_db_url, merge, worker_settings_overrides

pytestmark = [pytest.mark.slow, pytest.mark.celery, pytest.mark.elasticsearch]


@pytest.mark.timeout(300)
def test_turns_pushed_over_http_are_consolidated_and_found_by_a_tenant(
    make_settings: Callable[..., Settings],
    redis_url: str,
    es_index: str,
    es_url: str,
    tmp_path: Path,
) -> None:
    """A tenant pushes two turns, flushes (workers store them), then finds them by search (not
    pending), lists them with their source turn ids, and exports them; another tenant's alice
    sees none of it."""
    tree = merge(
        {"redis": {"url": fresh_db_url(redis_url)}},
        {"store": {"backend": "elasticsearch", "es_url": es_url, "es_index": es_index}},
        worker_settings_overrides(),
    )
    settings = make_settings(**tree)
    acme, other = create_key(settings, "acme"), create_key(settings, "other")
    with (
        Cluster(settings, tmp_path / "procs") as cluster,
        ApiServer(settings, tmp_path / "serve.log") as server,
        server.client(acme) as http,
        server.client(other) as stranger,
    ):
        cluster.worker(concurrency=1)
        cluster.beat()
        turns = [
            {"role": "user", "content": "我的爱好是吉他。", "ts": "2024-10-26T21:26:00+08:00"},
            {"role": "user", "content": "I adopted a cat named Miso", "turn_id": "cat-1"},
        ]
        pushed = http.post("/v1/users/alice/turns", json={"turns": turns})
        assert pushed.status_code == 202, pushed.text
        flushed = http.post("/v1/users/alice/flush", json={"wait": True, "timeout": 120})
        assert flushed.json() == {"flushed": True}, cluster.tails()
        hits = http.post(
            "/v1/users/alice/search",
            json={"query": "你知道我的乐器爱好是什么?", "now": "2024-10-27T10:00:00+08:00"},
        ).json()["results"]
        assert hits[0]["memory"]["content"].endswith("我的爱好是吉他。")
        assert hits[0]["pending"] is False and hits[0]["memory"]["user_id"] == "alice"
        listed = http.get("/v1/users/alice/memories").json()["memories"]
        assert sorted(t for m in listed for t in m["source_turn_ids"]) == sorted(
            pushed.json()["turn_ids"]
        )
        lines = http.get("/v1/users/alice/export").text.splitlines()
        assert json.loads(lines[0])["counts"]["memories"] == 2
        assert stranger.get("/v1/users/alice/memories").json()["memories"] == []
        assert stranger.post("/v1/users/alice/search", json={"query": "cat"}).json() == {
            "results": []
        }
