"""Elasticsearch unreachable for ~10 s during consolidation: tasks retry, nothing is lost.

The worker talks to the real node through a localhost TCP proxy. The test cuts the proxy
(listener closed, open connections reset) while batches are in flight, waits until the worker
has logged retries and at least 10 s have passed, restores it, and checks that every turn ends
up in the index exactly once and nothing was dead-lettered.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from memlane.client import MemoryClient
from memlane.config import Settings
from memlane.ids import raw_memory_id
from memlane.store import build_store
from tests.support.tcp_proxy import TcpProxy
from tests.support.worker_proc import Cluster, iter_ids, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.celery, pytest.mark.elasticsearch]

USERS = [f"es-{i:02d}" for i in range(12)]
TURNS_PER_USER = 15
OUTAGE_S = 10.0


@pytest.fixture
def proxy(es_url: str) -> Iterator[TcpProxy]:
    """A cuttable proxy in front of the session's Elasticsearch node."""
    p = TcpProxy.for_url(es_url).start()
    yield p
    p.stop()


@pytest.mark.timeout(300)
def test_es_outage_retries_and_loses_nothing(
    fault_settings: Callable[..., Settings],
    es_url: str,
    es_index: str,
    proxy: TcpProxy,
    tmp_path: Path,
) -> None:
    """All turns land in ES exactly once after a 10 s outage; retries were logged."""
    store_cfg = {"backend": "elasticsearch", "es_index": es_index, "es_timeout_s": 3}
    batching = {"batch_max_turns": 5, "backoff_base_s": 0.5, "backoff_max_s": 5, "lease_ttl_s": 30}
    worker_settings = fault_settings(store={**store_cfg, "es_url": proxy.url}, batching=batching)
    direct = fault_settings(store={**store_cfg, "es_url": es_url}, batching=batching)
    direct_store = build_store(direct)
    direct_store.ensure_schema()
    with (
        Cluster(worker_settings, tmp_path / "procs") as cluster,
        MemoryClient(direct) as client,
    ):
        expected = {}
        for user in USERS:
            ids = client.add_turns(
                user,
                [{"role": "user", "content": f"{user} note {i}"} for i in range(TURNS_PER_USER)],
            )
            expected[user] = {raw_memory_id(user, t) for t in ids}
        total = len(USERS) * TURNS_PER_USER

        def stored() -> int:
            return sum(direct_store.count(u) for u in USERS)

        worker = cluster.worker(concurrency=2)
        cluster.beat()
        wait_until(lambda: stored() > 0, 120, "the first batch to reach ES", interval=0.05)
        proxy.cut()
        cut_at = time.monotonic()
        wait_until(
            lambda: (
                "consolidate_retry" in worker.log_text() and time.monotonic() - cut_at >= OUTAGE_S
            ),
            60,
            "retries during a 10 s outage",
        )
        # (Not an equality with the count at the cut: a bulk that reached ES just before it
        # becomes visible up to one refresh interval later.)
        assert stored() < total, "the outage came too late to hit any batch"
        proxy.restore()

        wait_until(
            lambda: stored() == total and not client.services.buffer.pending_users(),
            180,
            "every turn to reach ES after the outage",
            interval=0.5,
        )
        for user in USERS:
            ids = list(iter_ids(direct_store, user))
            assert len(ids) == len(set(ids)) == TURNS_PER_USER, user
            assert set(ids) == expected[user]
        assert client.services.buffer.dead_letters() == []
        assert worker.log_text().count("consolidate_retry") >= 1
    direct_store.close()


@pytest.mark.timeout(120)
def test_transient_store_failures_do_not_use_up_attempts(
    fault_settings: Callable[..., Settings], es_url: str, es_index: str, proxy: TcpProxy
) -> None:
    """In-process: more failed tries than max_attempts in an outage, then success, no parking."""
    from memlane.errors import StoreUnavailable
    from memlane.services import Services
    from pipelines.consolidation.run import ConsolidationPorts, consolidate_user

    settings = fault_settings(
        store={"backend": "elasticsearch", "es_index": es_index, "es_url": proxy.url},
        batching={"max_attempts": 2},
    )
    svc = Services(settings)
    try:
        store = svc.store  # schema ensured through the proxy while it is up
        ports = ConsolidationPorts(svc.buffer, svc.leases, store, svc.embedder, svc.attempts)
        with MemoryClient(settings, services=svc) as client:
            ids = client.add_turns(
                "flaky", [{"role": "user", "content": f"n{i}"} for i in range(3)]
            )
            token = svc.leases.acquire("flaky")
            assert token is not None
            proxy.cut()
            for _ in range(4):  # twice max_attempts
                with pytest.raises(StoreUnavailable):
                    consolidate_user(ports, "flaky", token, 20, 2)
            proxy.restore()
            result = consolidate_user(ports, "flaky", token, 20, 2)
            assert result.dead_lettered == []
            assert (result.turns, result.memories) == (3, 3)
            assert sorted(iter_ids(store, "flaky")) == sorted(
                raw_memory_id("flaky", t) for t in ids
            )
            assert svc.buffer.dead_letters() == []
    finally:
        svc.close()
