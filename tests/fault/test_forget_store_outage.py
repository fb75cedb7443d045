"""forget_user during an Elasticsearch outage says the store is unavailable, not "user is busy".

A real worker is retrying a batch against the cut store while holding the user's lease (as it
does between retries). forget_user, through the same cut proxy, must not wait for that lease:
it fails fast with StoreUnavailable naming the store, having already removed the buffered
turns and fenced the worker off. Once the store is back, forget_user succeeds and the worker's
retry writes nothing back.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from memlane.client import MemoryClient
from memlane.config import Settings
from memlane.errors import StoreUnavailable
from memlane.models import MemoryFilter
from tests.support.llm_server import LLMServer
from tests.support.tcp_proxy import TcpProxy
from tests.support.worker_proc import Cluster, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.celery, pytest.mark.elasticsearch]

USER = "outage-user"
EVERY = MemoryFilter(include_superseded=True)


@pytest.fixture
def proxy(es_url: str) -> Iterator[TcpProxy]:
    """A cuttable proxy in front of the session's Elasticsearch node."""
    p = TcpProxy.for_url(es_url).start()
    yield p
    p.stop()


@pytest.mark.timeout(240)
def test_forget_during_store_outage_names_the_store(
    fault_settings: Callable[..., Settings],
    es_url: str,
    es_index: str,
    proxy: TcpProxy,
    llm_server: LLMServer,
    tmp_path: Path,
) -> None:
    """Worker retrying with the lease held; forget_user raises StoreUnavailable within seconds."""
    store_cfg = {"backend": "elasticsearch", "es_index": es_index, "es_timeout_s": 2}
    embedding = {"base_url": llm_server.url}  # the fake server's embeddings: no model to load
    via_proxy = fault_settings(store={**store_cfg, "es_url": proxy.url}, embedding=embedding)
    direct = fault_settings(store={**store_cfg, "es_url": es_url}, embedding=embedding)
    with (
        Cluster(via_proxy, tmp_path / "procs") as cluster,
        MemoryClient(via_proxy) as client,
        MemoryClient(direct) as observer,
    ):
        observer.services.store.ensure_schema()
        worker = cluster.worker(concurrency=1)
        cluster.beat()
        proxy.cut()
        client.add_turns(USER, [{"role": "user", "content": f"secret {i}"} for i in range(3)])
        wait_until(lambda: "consolidate_retry" in worker.log_text(), 90, "a retry in the outage")
        assert client.services.leases.holder(USER) is not None  # held across the retry

        started = time.monotonic()
        with pytest.raises(StoreUnavailable, match="memory store is unavailable") as err:
            client.forget_user(USER)
        assert time.monotonic() - started < 30
        assert "busy" not in str(err.value)
        assert client.pending(USER) == 0  # the buffer (Redis) was reachable: turns are gone
        assert client.services.leases.tombstone(USER) is not None

        proxy.restore()
        assert client.forget_user(USER) == 0
        # The worker's next retry finds itself fenced off and writes nothing.
        wait_until(
            lambda: (
                "user_forgotten_during_task" in worker.log_text()
                or "batch_consolidated" in worker.log_text()
            ),
            60,
            "the worker's retry after the outage",
        )
        assert "user_forgotten_during_task" in worker.log_text()
        assert observer.services.store.count(USER, EVERY) == 0
