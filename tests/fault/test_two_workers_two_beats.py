"""Two workers and two beats on one Redis: every batch is consolidated exactly once."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from memlane.client import MemoryClient
from memlane.config import Settings
from memlane.ids import raw_memory_id
from tests.support.worker_proc import Cluster, consolidated_batch_ids, iter_ids, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.celery]

USERS = [f"pair-{i:02d}" for i in range(50)]
TURNS_PER_USER = 10


@pytest.mark.timeout(300)
def test_two_workers_two_beats_process_each_batch_once(
    fault_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    """50 users x 10 turns; store count == turns, no duplicate ids, one log line per batch."""
    settings = fault_settings(batching={"batch_max_turns": 4, "dispatch_interval_s": 0.3})
    with Cluster(settings, tmp_path / "procs") as cluster, MemoryClient(settings) as client:
        for name in ("worker-a", "worker-b"):
            cluster.worker(name, concurrency=2)
        for name in ("beat-a", "beat-b"):
            cluster.beat(name)
        expected = {}
        for user in USERS:
            ids = client.add_turns(
                user,
                [{"role": "user", "content": f"{user} says {i}"} for i in range(TURNS_PER_USER)],
            )
            expected[user] = {raw_memory_id(user, t) for t in ids}
        store = client.services.store
        total = len(USERS) * TURNS_PER_USER
        wait_until(
            lambda: (
                sum(store.count(u) for u in USERS) == total
                and not client.services.buffer.pending_users()
            ),
            180,
            "every turn to be consolidated",
            interval=0.5,
        )
        for user in USERS:
            ids = list(iter_ids(store, user))
            assert len(ids) == len(set(ids)) == TURNS_PER_USER, user
            assert set(ids) == expected[user]
        assert client.services.buffer.dead_letters() == []

        # Both workers did work, and no batch id was logged as consolidated twice. A worker logs
        # a batch just after its commit, so the last lines may trail the store by a moment.
        # 10 turns in batches of at most 4: at least 3 batches per user.
        def logged() -> dict[str, list[str]]:
            return {p.name: consolidated_batch_ids(p.log_text()) for p in cluster.procs}

        wait_until(
            lambda: len({b for ids in logged().values() for b in ids}) >= 3 * len(USERS),
            30,
            "every batch's log line",
            interval=0.5,
        )
        per_worker = logged()
        assert per_worker["worker-a"] and per_worker["worker-b"], {
            k: len(v) for k, v in per_worker.items()
        }
        counts = Counter(b for ids in per_worker.values() for b in ids)
        twice = {b: n for b, n in counts.items() if n != 1}
        assert not twice, f"batches consolidated more than once: {twice}"
        assert len(counts) >= 3 * len(USERS)
