"""Load: 1,000 users x 20 turns pushed from 8 threads, all consolidated by a real worker.

The turn texts repeat across users (20 distinct sentences), so the embedding cache keeps the
local model from dominating the run: this test is about the buffer, the dispatcher and the
queue losing nothing under concurrency, not about embedding throughput.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from memlane.client import MemoryClient
from memlane.config import Settings
from tests.support.worker_proc import (
    Cluster,
    flush_db,
    fresh_db_url,
    wait_until,
    worker_settings_overrides,
)

pytestmark = [pytest.mark.slow, pytest.mark.celery, pytest.mark.redis]

USERS = 1000
TURNS = 20
THREADS = 8
TS = "2024-10-26T21:26:00+08:00"


@pytest.fixture
def settings(make_settings: Callable[..., Settings], redis_url: str) -> Iterator[Settings]:
    """A Redis database of the test's own, batches of 20 turns, fast dispatch."""
    url = fresh_db_url(redis_url)
    yield make_settings(
        redis={"url": url}, **worker_settings_overrides(batch_max_turns=TURNS, idle_s=0.5)
    )
    flush_db(url)


@pytest.mark.timeout(420)
def test_twenty_thousand_turns_from_eight_threads_are_all_consolidated(
    settings: Settings, tmp_path: Path
) -> None:
    """Total store count == 20,000, every buffer empty, no dead letters."""
    users = [f"load-{i:04d}" for i in range(USERS)]
    sentences = [f"load turn {j}: 我今天练习了第{j}首吉他曲。" for j in range(TURNS)]
    with Cluster(settings, tmp_path / "procs") as cluster, MemoryClient(settings) as client:
        cluster.worker(concurrency=2)
        cluster.beat()

        def push(user: str) -> int:
            # One shared client across threads: redis-py's pool and Services' lock make it safe.
            ids = client.add_turns(
                user, [{"role": "user", "content": s, "ts": TS} for s in sentences]
            )
            return len(set(ids))

        t0 = time.monotonic()
        with ThreadPoolExecutor(THREADS) as pool:
            pushed = sum(pool.map(push, users))
        push_s = time.monotonic() - t0
        assert pushed == USERS * TURNS

        buf = client.services.buffer
        wait_until(lambda: not buf.pending_users(), 360, "the buffer to drain", interval=1.0)
        store = client.services.store
        counts = {u: store.count(u) for u in users}
        total_s = time.monotonic() - t0
        print(f"\npushed {pushed} turns in {push_s:.1f} s; consolidated all in {total_s:.1f} s")
        assert sum(counts.values()) == USERS * TURNS, {
            u: c for u, c in counts.items() if c != TURNS
        }
        assert all(c == TURNS for c in counts.values())
        assert buf.dead_letters() == []
        assert all(buf.length(u) == 0 for u in users[:: USERS // 50])
