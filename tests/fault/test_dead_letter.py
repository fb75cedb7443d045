"""A permanently failing batch is dead-lettered with its turns kept; ``memlane replay`` fixes it.

The failure is real: the worker embeds through an OpenAI-compatible endpoint that answers 400
(a non-retryable ``LLMError``), with ``max_attempts=1``. After a restart with the local model,
``memlane replay`` (a real subprocess) consolidates the parked batches.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from memlane.client import MemoryClient
from memlane.config import Settings
from memlane.ids import raw_memory_id
from tests.support.http_stub import RefusingEndpoint
from tests.support.worker_proc import Cluster, iter_ids, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.celery]

USERS = ["dl-a", "dl-b"]
TURNS = 7


@pytest.mark.timeout(240)
def test_failing_batch_is_dead_lettered_then_replayed(
    fault_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    """Dead letters keep every turn and show in stats; replay stores them and drops the letters."""
    settings = fault_settings(batching={"batch_max_turns": 5, "max_attempts": 1})
    with (
        RefusingEndpoint(status=400) as endpoint,
        Cluster(settings, tmp_path / "procs") as cluster,
        MemoryClient(settings) as client,
    ):
        broken = cluster.worker(
            "worker-broken", concurrency=1, embedding__base_url=endpoint.base_url
        )
        cluster.beat()
        pushed = {
            u: client.add_turns(u, [{"role": "user", "content": f"{u} {i}"} for i in range(TURNS)])
            for u in USERS
        }
        buf = client.services.buffer
        wait_until(
            lambda: sum(len(d["entries"]) for d in buf.dead_letters()) == TURNS * len(USERS),
            90,
            "every batch to be dead-lettered",
        )
        assert endpoint.requests >= 2
        for user in USERS:
            assert client.pending(user) == 0
            letters = buf.dead_letters(user)
            assert all("400" in d["reason"] and d["reason"].startswith("LLMError") for d in letters)
            kept = [e.turn.turn_id for d in letters for e in buf.dead_letter_entries(d)]
            assert sorted(kept) == sorted(pushed[user])
            assert client.services.store.count(user) == 0

        stats = cluster.run("stats")
        assert stats.returncode == 0, stats.stderr
        assert json.loads(stats.stdout)["dead_letters"] == len(buf.dead_letters()) >= 4

        broken.stop()
        cluster.worker("worker-fixed", concurrency=1)  # the local embedding model again
        replay = cluster.run("replay", "--timeout", "90", timeout=150)
        assert replay.returncode == 0, replay.stdout + replay.stderr
        assert "all replayed" in replay.stdout

        assert buf.dead_letters() == []
        store = client.services.store
        for user in USERS:
            ids = list(iter_ids(store, user))
            assert len(ids) == len(set(ids)) == TURNS
            assert set(ids) == {raw_memory_id(user, t) for t in pushed[user]}
        assert json.loads(cluster.run("stats").stdout)["dead_letters"] == 0
