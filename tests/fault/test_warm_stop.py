"""Stopping ``memlane up`` is warm and never costs a batch an attempt.

The batch is really slow: the LLM endpoint (the fake OpenAI-compatible server, the suite's only
fake) takes seconds to answer its extraction. SIGTERM to the supervisor lets it finish within the
grace period; with a grace shorter than the batch the worker is cold-stopped, its task handed
back, and the interrupted attempt given back. Stopping it many more times than ``max_attempts``
dead-letters nothing, and the batch is consolidated exactly once.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from memlane.client import MemoryClient
from memlane.config import Settings
from memlane.models import MemoryKind
from tests.support.llm_server import LLMServer, extraction_reply
from tests.support.up_proc import Up, client_settings, cmdlines, tree
from tests.support.worker_proc import consolidated_batch_ids, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.celery]

SLOW_S = 6.0
MAX_ATTEMPTS = 2
USER = "slow-user"
TURNS = [
    {"role": "user", "content": "slow: I moved to Lisbon last spring."},
    {"role": "user", "content": "slow: I play the cello on weekends."},
]
LISBON = extraction_reply({"content": "User moved to Lisbon.", "source_turns": [1]})


def observations(client: MemoryClient) -> list[str]:
    """The user's observations (the turns are also kept raw beside them, by default)."""
    stored = client.services.store.list(USER).memories
    return [m.content for m in stored if m.kind is MemoryKind.OBSERVATION]


def slow_server(delay_s: float) -> LLMServer:
    """The fake LLM: extraction of the test's batch takes ``delay_s`` seconds."""
    server = LLMServer().start()

    def slowly(_body: dict[str, Any]) -> dict[str, Any]:
        time.sleep(delay_s)
        return LISBON

    server.add_rule("slow:", slowly, scope="all")
    return server


@pytest.fixture
def slow_llm() -> Iterator[LLMServer]:
    """Extraction takes ``SLOW_S`` seconds."""
    server = slow_server(SLOW_S)
    yield server
    server.stop()


@pytest.fixture
def stuck_llm() -> Iterator[LLMServer]:
    """Extraction takes longer than any test waits."""
    server = slow_server(120)
    yield server
    server.stop()


def llm_env(server: LLMServer) -> dict[str, object]:
    """LLM mode against the fake server (chat and embeddings), a tight attempt budget."""
    return {
        "llm__base_url": server.url,
        "llm__model": "fake-llm",
        "llm__timeout_s": 30,
        "llm__max_retries": 0,
        "embedding__base_url": server.url,
        "embedding__model": "fake-embed",
        "batching__max_attempts": MAX_ATTEMPTS,
        "batching__batch_max_turns": 50,
    }


def settings_for(data: Path, server: LLMServer) -> Settings:
    """The test client's settings: same directory, same endpoints, as the supervisor's."""
    return client_settings(
        data,
        llm={"base_url": server.url, "model": "fake-llm"},
        embedding={"base_url": server.url, "model": "fake-embed"},
    )


def start_up(data: Path, log: Path, server: LLMServer, grace: float) -> Up:
    """``memlane up`` with the given stop grace, ready."""
    up = Up(data, log, ["--concurrency", "1", "--grace", str(grace)], llm_env(server)).start()
    try:
        up.wait_ready()
    except BaseException:
        up.cleanup()
        raise
    return up


def wait_for_chat_call(server: LLMServer, seen: int, client: MemoryClient) -> None:
    """Block until the LLM got extraction request number ``seen + 1``: a batch is in flight."""

    def in_flight() -> bool:
        parked = client.services.buffer.dead_letters()
        assert parked == [], f"dead-lettered after {seen} stops: {parked}"
        return server.chat_calls > seen

    wait_until(in_flight, 120, "the batch's extraction request")


@pytest.mark.timeout(180)
def test_sigterm_lets_the_running_batch_finish(tmp_path: Path, slow_llm: LLMServer) -> None:
    """With a grace longer than the batch, SIGTERM waits for it: stored once, one LLM call."""
    data = tmp_path / "data"
    up = start_up(data, tmp_path / "up.log", slow_llm, grace=60)
    try:
        with MemoryClient(settings_for(data, slow_llm)) as client:
            client.add_turns(USER, TURNS)
            wait_for_chat_call(slow_llm, 0, client)
        stop_sent = time.monotonic()
        up.signal(signal.SIGTERM)
        assert up.wait(90) == 0
        took = time.monotonic() - stop_sent
    except BaseException:
        print(up.log_tail(150))
        raise
    finally:
        up.cleanup()
    log = up.log()
    assert len(consolidated_batch_ids(log)) == 1, log[-5000:]
    assert log.index("batch_consolidated") < log.index("memlane_down")
    assert "worker_cold_stop" not in log
    assert took < 60
    assert slow_llm.chat_calls == 1
    with MemoryClient(settings_for(data, slow_llm)) as client:
        assert client.pending(USER) == 0
        assert observations(client) == ["User moved to Lisbon."]


@pytest.mark.timeout(600)
def test_stops_beyond_max_attempts_dead_letter_nothing(tmp_path: Path, slow_llm: LLMServer) -> None:
    """Five cold stops mid-batch with max_attempts=2: no dead letter, consolidated once."""
    data = tmp_path / "data"
    stops = MAX_ATTEMPTS + 3
    logs: list[Up] = []
    with MemoryClient(settings_for(data, slow_llm)) as client:
        for round_ in range(stops):
            up = start_up(data, tmp_path / f"up{round_}.log", slow_llm, grace=1)
            logs.append(up)
            try:
                if round_ == 0:
                    client.add_turns(USER, TURNS)
                # Nothing was parked by the stops so far, and every turn is still buffered.
                assert client.services.buffer.dead_letters() == []
                assert client.pending(USER) == len(TURNS)
                wait_for_chat_call(slow_llm, round_, client)
                up.signal(signal.SIGTERM)
                assert up.wait(60) == 0
            except BaseException:
                print(up.log_tail(150))
                raise
            finally:
                up.cleanup()
            assert "worker_cold_stop" in up.log()

        last = start_up(data, tmp_path / "last.log", slow_llm, grace=60)
        logs.append(last)
        try:
            assert client.flush(USER, wait=True, timeout=180)
            assert client.services.buffer.dead_letters() == []
            assert observations(client) == ["User moved to Lisbon."]
            assert client.services.redis.hlen(client.services.keys.attempts) == 0
        except BaseException:
            print(last.log_tail(150))
            raise
        finally:
            last.signal(signal.SIGTERM)
            last.wait(90)
            last.cleanup()
    all_logs = "\n".join(u.log() for u in logs)
    assert len(consolidated_batch_ids(all_logs)) == 1
    assert "batch_dead_lettered" not in all_logs
    assert slow_llm.chat_calls == stops + 1


@pytest.mark.timeout(180)
def test_pool_processes_die_with_a_killed_worker(tmp_path: Path, stuck_llm: LLMServer) -> None:
    """kill -9 of the worker's main process takes its busy pool process down too."""
    data = tmp_path / "data"
    up = start_up(data, tmp_path / "up.log", stuck_llm, grace=1)
    try:
        with MemoryClient(settings_for(data, stuck_llm)) as client:
            client.add_turns(USER, TURNS)
            wait_for_chat_call(stuck_llm, 0, client)
        state = up.state()
        assert state is not None
        worker = state["children"]["worker"]["pid"]
        pool = tree(worker)
        assert pool, "the worker has no pool process"
        os.kill(worker, signal.SIGKILL)
        # The pool process is blocked in the 120 s LLM call; without PR_SET_PDEATHSIG it would
        # outlive its worker until then.
        _gone, alive = psutil.wait_procs(pool, timeout=20)
        assert alive == [], cmdlines(alive)
    except BaseException:
        print(up.log_tail(150))
        raise
    finally:
        up.cleanup()
