"""Leases of running tasks are short and kept alive by a heartbeat thread.

- A worker SIGKILLed mid-batch frees its user after ``running_lease_ttl_s`` (15 s by default),
  not after ``lease_ttl_s`` (720 s by default, the allowance for waiting in the queue, derived from
  ``llm.call_budget_s``): a restarted worker
  consolidates the user within a minute.
- A single LLM call much longer than the running TTL does not lose the lease: dispatch does not
  hand the user to a second pool process (one extraction call, no lost lease).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from memlane.client import MemoryClient
from memlane.config import Settings
from memlane.config_sections import BatchingSettings
from memlane.models import MemoryFilter, MemoryKind
from tests.support.llm_server import LLMServer, extraction_reply
from tests.support.worker_proc import Cluster, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.celery, pytest.mark.elasticsearch]

USER = "heartbeat-user"
GUITAR = extraction_reply({"content": "The user plays the guitar.", "subject": "hobby"})


def _settings(
    fault_settings: Callable[..., Settings],
    es_url: str,
    es_index: str,
    server: LLMServer,
    **batching: Any,
) -> tuple[Settings, dict[str, Any]]:
    settings = fault_settings(
        store={"backend": "elasticsearch", "es_url": es_url, "es_index": es_index},
        embedding={"base_url": server.url},
        batching=batching,
    )
    llm_env = {"llm__base_url": server.url, "llm__model": "fake-llm", "llm__timeout_s": 60}
    return settings, llm_env


OBSERVATIONS = MemoryFilter(kinds=(MemoryKind.OBSERVATION,))


def _consolidated(client: MemoryClient) -> bool:
    """Nothing pending and exactly one observation (the turns are kept raw beside it)."""
    return client.pending(USER) == 0 and client.services.store.count(USER, OBSERVATIONS) == 1


@pytest.mark.timeout(240)
def test_killed_worker_frees_its_user_within_seconds(
    fault_settings: Callable[..., Settings],
    es_url: str,
    es_index: str,
    llm_server: LLMServer,
    tmp_path: Path,
) -> None:
    """SIGKILL mid-LLM-call with the default TTLs; a new worker finishes well before 60 s."""
    defaults = BatchingSettings()
    queue_lease = Settings().timing.lease_ttl_s
    assert queue_lease >= 300 and defaults.running_lease_ttl_s <= 15
    llm_server.timeout_sleep_s = 30.0  # the first extraction hangs until the worker is dead
    llm_server.add_rule("guitar", GUITAR, fault="timeout", times=1)
    llm_server.add_rule("guitar", GUITAR)
    settings, llm_env = _settings(
        fault_settings,
        es_url,
        es_index,
        llm_server,
        lease_ttl_s=queue_lease,
        running_lease_ttl_s=defaults.running_lease_ttl_s,
    )
    with (
        Cluster(settings, tmp_path / "procs", extra_env=llm_env) as cluster,
        MemoryClient(settings) as client,
    ):
        first = cluster.worker("worker-1", concurrency=1)
        cluster.beat()
        client.add_turns(USER, [{"role": "user", "content": "I play the guitar every evening."}])
        wait_until(lambda: llm_server.chat_calls >= 1, 90, "the worker to be mid-batch")
        assert client.services.leases.holder(USER) is not None
        first.kill()
        killed_at = time.monotonic()
        cluster.worker("worker-2", concurrency=1)
        wait_until(lambda: _consolidated(client), 120, "the restarted worker to consolidate")
        took = time.monotonic() - killed_at
        assert took < 60, f"the user stalled {took:.0f} s after the kill"
        assert llm_server.chat_calls == 2


@pytest.mark.timeout(240)
def test_heartbeat_keeps_the_lease_through_a_long_llm_call(
    fault_settings: Callable[..., Settings],
    es_url: str,
    es_index: str,
    llm_server: LLMServer,
    tmp_path: Path,
) -> None:
    """A 10 s extraction under a 3 s lease: one call, no lost lease, one memory."""
    llm_server.timeout_sleep_s = 10.0
    llm_server.add_rule("guitar", GUITAR, fault="timeout")
    settings, llm_env = _settings(
        fault_settings, es_url, es_index, llm_server, lease_ttl_s=3, running_lease_ttl_s=3
    )
    with (
        Cluster(settings, tmp_path / "procs", extra_env=llm_env) as cluster,
        MemoryClient(settings) as client,
    ):
        worker = cluster.worker(concurrency=2)  # a second pool process could take the user
        cluster.beat()
        client.add_turns(USER, [{"role": "user", "content": "I play the guitar every evening."}])
        wait_until(lambda: _consolidated(client), 120, "the slow batch to be consolidated")
        assert llm_server.chat_calls == 1
        assert "lease_lost" not in worker.log_text()
        assert "lease_heartbeat_lost" not in worker.log_text()
