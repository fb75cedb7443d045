"""A server restart loses nothing: every push answered 202 is kept, and a client that retries
what it never got an answer for (same turn ids) ends with each turn exactly once."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from memlane import MemoryClient, Settings
from tests.support.api_proc import ApiServer, create_key
from tests.support.worker_proc import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.redis]
TURNS = 150


@pytest.mark.timeout(240)
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_pushes_across_a_restart_are_all_kept_exactly_once(
    make_settings: Callable[..., Settings], tmp_path: Path, sig: signal.Signals
) -> None:
    """A client pushes turns one by one, retrying on connection errors and 503, while the server
    is stopped (graceful or SIGKILL) and started again: the buffer ends with every turn once,
    and a memory stored before the restart is still found."""
    settings = make_settings()
    key = create_key(settings, "acme", rate=10_000, burst=10_000)
    server = ApiServer(settings, tmp_path / "serve.log").start()
    acknowledged: list[str] = []
    try:
        with server.client(key) as http:
            mems = {"memories": [{"content": "stored before the restart"}]}
            assert http.post("/v1/users/rita/memories", json=mems).status_code == 201
        pusher = threading.Thread(target=_push_all, args=(server.url, key, acknowledged))
        pusher.start()
        wait_until(lambda: len(acknowledged) >= TURNS // 3, 60, "a third of the pushes")
        server.stop(sig)
        server.start()
        pusher.join(timeout=120)
        assert not pusher.is_alive()
        with server.client(key) as http:
            found = http.post("/v1/users/rita/search", json={"query": "restart"}).json()
        assert [r["memory"]["content"] for r in found["results"]] == ["stored before the restart"]
    finally:
        server.stop()
    assert len(acknowledged) == TURNS
    with MemoryClient(settings) as local:
        entries = local.services.buffer.read("@acme/rita", TURNS * 2)
    assert sorted(e.turn.turn_id for e in entries) == sorted(acknowledged)


def _push_all(url: str, key: str, acknowledged: list[str]) -> None:
    """Push turn i until it is acknowledged, for every i (fresh connections after an error)."""
    headers = {"Authorization": f"Bearer {key}"}
    for i in range(TURNS):
        body = {"turns": [{"role": "user", "content": f"turn {i}", "turn_id": f"id-{i}"}]}
        while True:
            try:
                r = httpx.post(f"{url}/v1/users/rita/turns", json=body, headers=headers, timeout=10)
            except httpx.TransportError:
                time.sleep(0.05)  # a client's retry pause while the server restarts
                continue
            if r.status_code == 202:
                acknowledged.extend(r.json()["turn_ids"])
                break
            assert r.status_code == 503, r.text
