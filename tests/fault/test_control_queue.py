"""Dispatch never waits behind consolidation: it runs on the control queue's own worker.

Reproduced with real processes: ``memlane up`` with two consolidation processes, both held by
batches whose extraction the LLM endpoint (the fake server, the suite's only fake) answers only
after a minute. Meanwhile new users push turns; dispatch must still lease each of them within
a few of its 0.5 s ticks, which it could not do if it shared the busy pool.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from memlane.client import MemoryClient
from tests.support.llm_server import LLMServer, extraction_reply, request_text
from tests.support.up_proc import Up, client_settings
from tests.support.worker_proc import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.celery]

HOLD_S = 60.0  # how long the LLM keeps each slow extraction: longer than the test measures
LEASE_BOUND_S = 6.0  # idle_s 0.5 + a 0.5 s tick, with headroom for a loaded 2-core machine


@pytest.fixture
def stalling_llm() -> Iterator[LLMServer]:
    """Extraction of a "slow:" batch takes ``HOLD_S``; any other batch is answered at once."""
    server = LLMServer().start()

    def slowly(_body: dict[str, Any]) -> dict[str, Any]:
        time.sleep(HOLD_S)
        return extraction_reply()

    server.add_rule("slow:", slowly, scope="all")
    server.add_rule(lambda _body: True, extraction_reply())
    yield server
    server.stop()


def chat_calls_about(server: LLMServer, word: str) -> int:
    """How many chat requests mention ``word``."""
    return sum(word in request_text(body) for body in server.chat_requests())


@pytest.mark.timeout(300)
def test_dispatch_keeps_its_schedule_while_every_consolidation_slot_is_busy(
    tmp_path: Path, stalling_llm: LLMServer
) -> None:
    """With both consolidation processes stuck on a slow LLM, each new user's turns are still
    leased by dispatch within a few ticks of becoming ready."""
    server, data = stalling_llm, tmp_path / "data"
    env = {
        "llm__base_url": server.url,
        "llm__model": "fake-llm",
        "llm__timeout_s": 120,
        "llm__max_retries": 0,
        "embedding__base_url": server.url,
        "embedding__model": "fake-embed",
    }
    up = Up(data, tmp_path / "up.log", ["--concurrency", "2"], env).start()
    try:
        up.wait_ready()
        settings = client_settings(
            data,
            llm={"base_url": server.url, "model": "fake-llm"},
            embedding={"base_url": server.url, "model": "fake-embed"},
        )
        with MemoryClient(settings) as client:
            for user in ("busy-a", "busy-b"):
                client.add_turns(user, [{"role": "user", "content": f"slow: {user} talks."}])
            wait_until(
                lambda: chat_calls_about(server, "slow:") >= 2, 120, "both slots held by the LLM"
            )
            leases = client.services.leases
            delays = []
            for n in range(5):
                user = f"new-{n}"
                client.add_turns(user, [{"role": "user", "content": f"{user}: I like tea."}])
                pushed = time.monotonic()
                wait_until(lambda u=user: leases.holder(u) is not None, 30, f"{user} leased")
                delays.append(time.monotonic() - pushed)
            # Had a slot freed up, a new user's batch would have reached the LLM.
            assert chat_calls_about(server, "new-") == 0, "a slot freed up: nothing was shown"
            assert max(delays) < LEASE_BOUND_S, delays
            assert client.services.store.count("new-0") == 0  # consolidation is still stuck
    except BaseException:
        print(up.log_tail(120))
        raise
    finally:
        up.cleanup()
