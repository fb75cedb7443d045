"""forget_user wins over a real prefork worker that is mid-batch when it runs.

Three ways a worker's write can come after the forget, each reproduced for real:

1. the worker is SIGSTOPped during a slow LLM call past its lease, the user is forgotten, the
   worker is SIGCONTed: its guard refuses the write;
2. the worker's bulk request is held in a TCP proxy in front of Elasticsearch (passed its guard,
   in flight) while the user is forgotten, then let through: the worker undoes it;
3. as 2, but the worker is SIGKILLed before the held bulk lands: the sweep of the forgotten
   user's recorded writes (run by dispatch on a restarted worker) deletes what landed.

Each time the test then polls for a while: the store, retrieve and the Redis cache stay empty.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from memlane.client import MemoryClient
from memlane.config import Settings
from memlane.models import MemoryFilter
from tests.support.llm_server import LLMServer, extraction_reply
from tests.support.tcp_proxy import TcpProxy
from tests.support.worker_proc import Cluster, Proc, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.celery, pytest.mark.elasticsearch]

USER = "pin-holder"
SECRET = "My bank PIN is 4921, please remember it."
EVERY = MemoryFilter(include_superseded=True)
QUIET_S = 6.0  # how long "keeps returning nothing" is watched (12 dispatch cycles)


@pytest.fixture
def proxy(es_url: str) -> Iterator[TcpProxy]:
    """A proxy in front of the session's Elasticsearch node that can hold requests."""
    p = TcpProxy.for_url(es_url).start()
    yield p
    p.stop()


def pool_children(worker: Proc) -> list[int]:
    """The prefork pool processes of a worker (its group without the main process)."""
    children = [pid for pid in worker.group_pids() if pid != worker.pid]
    assert children, "the worker has no pool process"
    return children


def signal_all(pids: list[int], sig: signal.Signals) -> None:
    """Send ``sig`` to each process."""
    for pid in pids:
        os.kill(pid, sig)


def stays_forgotten(client: MemoryClient, seconds: float) -> None:
    """For ``seconds``: no memory of USER in the store, retrieve finds nothing, no cache."""
    svc = client.services
    deadline = time.monotonic() + seconds
    while True:
        assert svc.store.count(USER, EVERY) == 0, "the forgotten user's memories came back"
        assert client.retrieve(USER, "what is my bank PIN?") == []
        cached = list(svc.redis.scan_iter(match=svc.keys.extraction("*")))
        assert cached == [], f"an extraction of the forgotten user is cached: {cached}"
        if time.monotonic() > deadline:
            return
        time.sleep(0.25)


@pytest.mark.timeout(240)
def test_worker_paused_past_its_lease_cannot_write_a_forgotten_user_back(
    fault_settings: Callable[..., Settings],
    es_url: str,
    es_index: str,
    llm_server: LLMServer,
    tmp_path: Path,
) -> None:
    """SIGSTOP mid-LLM-call, lease lapses, forget_user returns, SIGCONT: nothing comes back."""
    llm_server.timeout_sleep_s = 6.0  # the "timeout" fault is a slow answer: the client waits 60
    llm_server.add_rule(
        "4921",
        extraction_reply({"content": "The user's bank PIN is 4921.", "importance": 0.9}),
        fault="timeout",
    )
    settings = fault_settings(
        store={"backend": "elasticsearch", "es_url": es_url, "es_index": es_index},
        embedding={"base_url": llm_server.url},
        batching={"lease_ttl_s": 2, "running_lease_ttl_s": 2},
    )
    llm_env: dict[str, Any] = {
        "llm__base_url": llm_server.url,
        "llm__model": "fake-llm",
        "llm__timeout_s": 60,
    }
    with (
        Cluster(settings, tmp_path / "procs", extra_env=llm_env) as cluster,
        MemoryClient(settings) as client,
    ):
        worker = cluster.worker(concurrency=1)
        cluster.beat()
        client.add_turns(USER, [{"role": "user", "content": SECRET}])
        wait_until(lambda: llm_server.chat_calls >= 1, 90, "the worker to ask the LLM")
        pool = pool_children(worker)
        signal_all(pool, signal.SIGSTOP)
        try:
            leases = client.services.leases
            wait_until(lambda: leases.holder(USER) is None, 30, "the paused lease to lapse")
            client.forget_user(USER)
            assert client.services.store.count(USER, EVERY) == 0
        finally:
            signal_all(pool, signal.SIGCONT)
        wait_until(
            lambda: (
                "user_forgotten_during_task" in worker.log_text()
                or "batch_consolidated" in worker.log_text()
                or "lease_lost" in worker.log_text()
            ),
            60,
            "the resumed worker to finish its task",
        )
        stays_forgotten(client, QUIET_S)
        assert "user_forgotten_during_task" in worker.log_text()
        assert llm_server.chat_calls == 1  # the batch was not handed to anyone else


def _raw_settings(
    fault_settings: Callable[..., Settings], es_index: str, es: str, llm_server: LLMServer
) -> Settings:
    """Raw mode (no LLM), embeddings from the fake server, Elasticsearch at ``es``."""
    return fault_settings(
        store={"backend": "elasticsearch", "es_url": es, "es_index": es_index, "es_timeout_s": 60},
        embedding={"base_url": llm_server.url},
        batching={"running_lease_ttl_s": 3},
    )


def _hold_the_bulk(
    client: MemoryClient, proxy: TcpProxy, llm_server: LLMServer, cluster: Cluster
) -> Proc:
    """Start a worker and push the secret; return once its bulk write is held in the proxy."""
    worker = cluster.worker(concurrency=1)
    cluster.beat()
    proxy.hold(b"_bulk")
    client.add_turns(USER, [{"role": "user", "content": f"{SECRET} ({i})"} for i in range(3)])
    wait_until(lambda: proxy.held >= 1, 90, "the worker's bulk write to be in flight")
    assert [i.ids for i in client.services.leases.intents(USER)], "no write was recorded"
    return worker


@pytest.mark.timeout(240)
def test_write_in_flight_during_forget_is_undone_by_its_worker(
    fault_settings: Callable[..., Settings],
    es_url: str,
    es_index: str,
    proxy: TcpProxy,
    llm_server: LLMServer,
    tmp_path: Path,
) -> None:
    """A bulk that passed its guard lands after forget_user returned: the worker deletes it."""
    direct = _raw_settings(fault_settings, es_index, es_url, llm_server)
    worker_settings = _raw_settings(fault_settings, es_index, proxy.url, llm_server)
    with (
        Cluster(worker_settings, tmp_path / "procs") as cluster,
        MemoryClient(direct) as client,
    ):
        worker = _hold_the_bulk(client, proxy, llm_server, cluster)
        client.forget_user(USER)
        proxy.release()
        wait_until(
            lambda: "forgotten_user_write_undone" in worker.log_text(),
            60,
            "the worker to undo its write",
        )
        assert "memories=3" in worker.log_text()  # the bulk did land, then was deleted
        stays_forgotten(client, QUIET_S)
        assert client.services.leases.intents(USER) == []


@pytest.mark.timeout(300)
def test_write_of_a_killed_worker_landing_after_forget_is_swept(
    fault_settings: Callable[..., Settings],
    es_url: str,
    es_index: str,
    proxy: TcpProxy,
    llm_server: LLMServer,
    tmp_path: Path,
) -> None:
    """The worker dies with its bulk in flight; the bulk lands; the forget's sweep deletes it."""
    direct = _raw_settings(fault_settings, es_index, es_url, llm_server)
    worker_settings = _raw_settings(fault_settings, es_index, proxy.url, llm_server)
    with (
        Cluster(worker_settings, tmp_path / "procs") as cluster,
        MemoryClient(direct) as client,
    ):
        first = _hold_the_bulk(client, proxy, llm_server, cluster)
        client.forget_user(USER)
        first.kill()
        proxy.release()
        store = client.services.store
        wait_until(lambda: store.count(USER, EVERY) == 3, 60, "the dead worker's bulk to land")
        second = cluster.worker("worker-2", concurrency=1)
        wait_until(lambda: store.count(USER, EVERY) == 0, 90, "the sweep to delete the stray write")
        stays_forgotten(client, QUIET_S)
        assert "forgotten_user_writes_swept" in second.log_text()
        assert "forgotten_user_write_undone" not in cluster.logs()  # swept, not compensated
