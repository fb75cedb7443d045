"""An LLM endpoint that echoes the API key in its error body: the key never leaves memlane.

The key is deliberately not ``sk-``-shaped, so only redaction of the configured value itself
can catch it: in the worker's logs (``llm_call_failed``, ``batch_dead_lettered``), in the
dead-letter reason stored in Redis, and in ``memlane chat``'s output.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from memlane.client import MemoryClient
from memlane.config import Settings
from tests.support.llm_server import LLMServer
from tests.support.worker_proc import (
    ROOT,
    Cluster,
    child_env,
    flush_db,
    fresh_db_url,
    wait_until,
    worker_settings_overrides,
)

pytestmark = [pytest.mark.celery, pytest.mark.redis]

KEY = "mlk_live_7Hq2vT9xZ4pL8wN3"


@pytest.fixture
def settings(
    make_settings: Callable[..., Settings], redis_url: str, llm_server: LLMServer
) -> Iterator[Settings]:
    """A database of the test's own; chat and embeddings on the fake server, with KEY."""
    url = fresh_db_url(redis_url)
    llm_server.add_rule(lambda _body: True, fault="401_echo")  # every chat call is refused
    yield make_settings(
        redis={"url": url},
        llm={"base_url": llm_server.url, "model": "fake-llm", "timeout_s": 5, "api_key": KEY},
        embedding={"base_url": llm_server.url, "model": "fake-embed"},
        **worker_settings_overrides(max_attempts=1),
    )
    flush_db(url)


def _echoed_key(server: LLMServer) -> bool:
    """The server was really sent the key, so its error bodies really carried it."""
    return any(r.headers.get("authorization") == f"Bearer {KEY}" for r in server.requests)


@pytest.mark.timeout(180)
def test_the_key_echoed_by_the_endpoint_is_in_no_log_and_no_dead_letter(
    settings: Settings, llm_server: LLMServer, tmp_path: Path
) -> None:
    """The batch is dead-lettered for the 401; its stored reason and every log line lack KEY."""
    extra: dict[str, object] = {"llm__base_url": llm_server.url, "llm__api_key": KEY}
    with (
        Cluster(settings, tmp_path / "procs", extra_env=extra) as cluster,
        MemoryClient(settings) as client,
    ):
        cluster.worker(concurrency=1)
        cluster.beat()
        client.add_turns("u1", [{"role": "user", "content": "I play the guitar."}])
        letters = wait_until(
            lambda: client.services.buffer.dead_letters("u1"), 120, "the dead letter"
        )
        wait_until(lambda: "batch_dead_lettered" in cluster.logs(), 30, "the log line")
        logs = cluster.logs()
    assert _echoed_key(llm_server)
    reason = letters[0]["reason"]
    assert "401" in reason and "***" in reason and KEY not in reason
    raw = redis.Redis.from_url(settings.redis.url or "")
    try:
        stored = b"".join(raw.hvals(client.services.keys.dead))
    finally:
        raw.close()
    assert KEY.encode() not in stored and b"Incorrect API key provided" in stored
    assert "llm_call_failed" in logs and "batch_dead_lettered" in logs
    assert KEY not in logs


@pytest.mark.timeout(120)
def test_memlane_chat_never_prints_the_echoed_key(
    settings: Settings, llm_server: LLMServer
) -> None:
    """`memlane chat`: the model's failure is shown with the key masked."""
    env = child_env(settings, llm__base_url=llm_server.url, llm__api_key=KEY, llm__max_retries=0)
    out = subprocess.run(
        [sys.executable, "-m", "worker.cli", "chat", "--user", "u1"],
        input="what do I play?\n/quit\n",
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert _echoed_key(llm_server)
    assert "the chat model failed" in out.stdout and "***" in out.stdout
    assert KEY not in out.stdout and KEY not in out.stderr
