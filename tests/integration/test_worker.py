"""A real Celery prefork worker and beat (subprocesses) consolidate pushed turns."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from memlane.client import MemoryClient
from memlane.config import Settings
from memlane.ids import raw_memory_id
from tests.support.worker_proc import (
    Cluster,
    consolidated_batch_ids,
    flush_db,
    fresh_db_url,
    iter_ids,
    worker_settings_overrides,
)

pytestmark = [pytest.mark.celery, pytest.mark.redis]


@pytest.fixture
def settings(make_settings: Callable[..., Settings], redis_url: str) -> Iterator[Settings]:
    """Settings on a Redis database of the test's own (Celery queues are not prefixed)."""
    url = fresh_db_url(redis_url)
    yield make_settings(redis={"url": url}, **worker_settings_overrides(batch_max_turns=5))
    flush_db(url)


@pytest.mark.timeout(180)
def test_worker_and_beat_consolidate_pushed_turns(settings: Settings, tmp_path: Path) -> None:
    """Turns pushed by a client end up in the shared SQLite store; flush reports done."""
    with Cluster(settings, tmp_path / "procs") as cluster, MemoryClient(settings) as client:
        cluster.worker(concurrency=2)
        cluster.beat()
        pushed = {}
        for user in ["alice", "bob", "用户3"]:
            pushed[user] = client.add_turns(
                user,
                [{"role": "user", "content": f"{user} fact {i}: 我喜欢吉他。"} for i in range(12)],
            )
        for user, ids in pushed.items():
            assert client.flush(user, wait=True, timeout=90), f"{user} not consolidated"
            store = client.services.store
            assert store.count(user) == len(ids)
            assert sorted(iter_ids(store, user)) == sorted(raw_memory_id(user, t) for t in ids)
            assert client.watermark(user) is not None
        hits = client.retrieve("alice", "吉他", top_k=3)
        assert hits and hits[0].memory.user_id == "alice"

        stats = cluster.run("stats")
        assert stats.returncode == 0, stats.stderr
        report = json.loads(stats.stdout)
        assert report["pending_users"] == 0
        assert report["pending_turns"] == 0
        assert report["dead_letters"] == 0

        batches = consolidated_batch_ids(cluster.logs())
        assert len(batches) == len(set(batches)) >= 3 * 12 // 5


@pytest.mark.timeout(120)
def test_worker_picks_up_turns_pushed_before_it_started(settings: Settings, tmp_path: Path) -> None:
    """Turns buffered while no worker ran are consolidated once workers come up."""
    with Cluster(settings, tmp_path / "procs") as cluster, MemoryClient(settings) as client:
        ids = client.add_turns("early", [{"role": "user", "content": f"t{i}"} for i in range(7)])
        assert client.pending("early") == 7
        cluster.worker(concurrency=1)
        cluster.beat()
        assert client.flush("early", wait=True, timeout=90)
        assert client.services.store.count("early") == len(ids)
