"""Slow model calls within the per-call budget hit no limit, with a real worker and beat.

The issue's local model took 40-110 s a call against a 60 s timeout, a 240 s soft limit and a
300 s lease. Here everything derives from ``llm.call_budget_s`` (``memlane.timing``); the test
scales it down: a budget of 5 s with every chat answer taking 4 s (80 % of the budget), one
worker process, and two users so that one waits in the queue while the other's run takes
several slow batches. Nothing may time out, be retried, lose its lease or be dead-lettered, and
every batch is extracted exactly once.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from memlane.client import MemoryClient
from memlane.config import Settings, load_settings
from memlane.models import MemoryFilter, MemoryKind
from tests.support.llm_server import LLMServer, extraction_reply, request_text
from tests.support.worker_proc import Cluster, consolidated_batch_ids, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.celery]

BUDGET_S, DELAY_S, OVERHEAD_S = 5.0, 4.0, 6.0
ITEM = re.compile(r"item-[a-z]\d")
USERS = {"slow-a": 6, "slow-b": 2}  # turns each; batches of 2 turns: 3 + 1 batches


def _observe(body: dict[str, Any]) -> dict[str, Any]:
    """One observation per batch naming every item its turns mention (not its memories)."""
    turns = request_text(body, "last_user").rsplit("<turns>", 1)[-1]
    items = sorted(set(ITEM.findall(turns)))
    return extraction_reply({"content": f"The user owns {' and '.join(items)}.", "subject": "x"})


def _items(client: MemoryClient, user: str) -> list[str]:
    found = client.services.store.list(user, MemoryFilter(), limit=100).memories
    return [i for m in found if m.kind is MemoryKind.OBSERVATION for i in ITEM.findall(m.content)]


@pytest.mark.timeout(300)
def test_calls_taking_most_of_the_budget_hit_no_limit(
    fault_settings: Callable[..., Settings], llm_server: LLMServer, tmp_path: Path
) -> None:
    """4 s calls under a 5 s budget: no timeout, soft limit, lost lease, retry or dead letter."""
    llm_server.reply_delay_s = DELAY_S
    llm_server.default_reply = _observe
    settings = fault_settings(
        embedding={"base_url": llm_server.url},
        batching={"lease_ttl_s": None, "batch_max_turns": 2, "max_wait_s": 1},
        worker={"batch_overhead_s": OVERHEAD_S},
    )
    llm_env = {
        "llm__base_url": llm_server.url,
        "llm__model": "fake-llm",
        "llm__call_budget_s": BUDGET_S,
    }
    timing = load_settings(
        environ={},
        llm={"base_url": llm_server.url, "call_budget_s": BUDGET_S},
        worker={"batch_overhead_s": OVERHEAD_S},
    ).timing
    assert timing.llm_timeout_s == BUDGET_S and 0.75 * timing.llm_timeout_s < DELAY_S
    assert timing.run_window_s < 3 * DELAY_S + OVERHEAD_S  # user a's run spans the window
    with (
        Cluster(settings, tmp_path / "procs", extra_env=llm_env) as cluster,
        MemoryClient(settings) as client,
    ):
        for user, count in USERS.items():
            letter = user[-1]
            turns = [{"role": "user", "content": f"I own item-{letter}{n}."} for n in range(count)]
            client.add_turns(user, turns)
        worker = cluster.worker(concurrency=1)  # the second user waits in the queue
        cluster.beat()
        wait_until(
            lambda: all(client.pending(u) == 0 for u in USERS), 240, "every batch consolidated"
        )
        wait_until(lambda: len(consolidated_batch_ids(worker.log_text())) >= 4, 30, "the log")
        log = worker.log_text()
        assert client.services.buffer.dead_letters() == []
        for user, count in USERS.items():
            assert sorted(_items(client, user)) == [f"item-{user[-1]}{n}" for n in range(count)]
        batches = consolidated_batch_ids(log)
        assert len(batches) == len(set(batches)) == 4  # each batch once
        assert llm_server.chat_calls == 4  # no call repeated after a timeout or a retry
        for failure in (
            "SoftTimeLimitExceeded",
            "TimeLimitExceeded",
            "lease_lost",
            "lease_heartbeat_lost",
            "llm_call_failed",
            "consolidate_retry",
        ):
            assert failure not in log, failure
