"""kill -9 of a whole worker (main process and prefork pool) mid-consolidation loses nothing.

Turns of 20 users are consolidated into Elasticsearch by a real prefork worker. Once some but not
all are stored, the worker's process group gets SIGKILL. A fresh worker then finishes the job:
every turn is stored exactly once (deterministic ids), the buffer is empty, nothing was
dead-lettered. The dead worker's leases lapse after ``running_lease_ttl_s`` (its heartbeat is
gone) and beat re-dispatches.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from memlane.client import MemoryClient
from memlane.config import Settings
from memlane.ids import raw_memory_id
from tests.support.worker_proc import Cluster, iter_ids, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.celery, pytest.mark.elasticsearch]

USERS = [f"kill-{i:02d}" for i in range(20)]
TURNS_PER_USER = 20


@pytest.mark.timeout(300)
def test_sigkill_mid_batch_then_restart_consolidates_every_turn_once(
    fault_settings: Callable[..., Settings], es_url: str, es_index: str, tmp_path: Path
) -> None:
    """400 turns, worker group SIGKILLed part-way, restarted: store == turns, buffer empty."""
    settings = fault_settings(
        store={"backend": "elasticsearch", "es_url": es_url, "es_index": es_index},
        batching={
            "batch_max_turns": 5,
            "lease_ttl_s": 5,
            "running_lease_ttl_s": 5,
            "idle_s": 0.2,
        },
    )
    with Cluster(settings, tmp_path / "procs") as cluster, MemoryClient(settings) as client:
        expected: dict[str, set[str]] = {}
        for user in USERS:
            ids = client.add_turns(
                user,
                [
                    {"role": "user", "content": f"{user} turn {i}: I practised guitar scale {i}."}
                    for i in range(TURNS_PER_USER)
                ],
            )
            expected[user] = {raw_memory_id(user, t) for t in ids}
        total = len(USERS) * TURNS_PER_USER
        store = client.services.store

        def stored() -> int:
            return sum(store.count(u) for u in USERS)

        first = cluster.worker("worker-1", concurrency=2)
        cluster.beat()
        progress = wait_until(lambda: stored() or None, 120, "first memories", interval=0.05)
        assert progress < total, "everything was consolidated before the kill; push more turns"
        pool = first.group_pids()
        assert len(pool) >= 3, f"expected main process + 2 pool children, got {pool}"
        first.kill()
        assert not first.alive()
        at_kill = stored()
        assert at_kill < total

        cluster.worker("worker-2", concurrency=2)
        for user in USERS:
            assert client.flush(user, wait=True, timeout=120), f"{user} still pending"
        for user in USERS:
            ids = list(iter_ids(store, user))
            assert len(ids) == len(set(ids)) == TURNS_PER_USER, user
            assert set(ids) == expected[user], user
            assert store.count(user) == TURNS_PER_USER
        assert stored() == total
        buf = client.services.buffer
        assert buf.pending_users() == []
        assert all(buf.length(u) == 0 for u in USERS)
        assert buf.dead_letters() == []
