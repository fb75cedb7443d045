"""Outages over HTTP: a stopped redis-server, a cut Elasticsearch. 503 with Retry-After, fast.

The server is a real ``memlane serve`` process. Redis is a real standalone ``redis-server`` (the
wheel's binary, AOF on) that the test shuts down and starts again on the same port and files;
Elasticsearch sits behind a TCP proxy the test cuts (:mod:`tests.support.tcp_proxy`).
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import redis

from memlane import MemoryClient, Settings
from tests.support.api_proc import ApiServer, create_key, free_port
from tests.support.redis_proc import REDIS_SERVER, pings, stop
from tests.support.tcp_proxy import TcpProxy
from tests.support.worker_proc import wait_until

pytestmark = [pytest.mark.slow]
BOUND_S = 5.0  # an outage is answered within this, never a hang
TURN = {"turns": [{"role": "user", "content": "I like sailing"}]}


@dataclass
class RedisProc:
    """A standalone redis-server on a loopback port, restartable on the same files."""

    port: int
    workdir: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:<port>/0``."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisProc:
        """Start (or restart) the server and wait until it answers."""
        argv = [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1"]
        argv += ["--dir", str(self.workdir), "--appendonly", "yes", "--save", ""]
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(self._pings, 30, f"redis-server on {self.port}")
        return self

    def _pings(self) -> bool:
        client = redis.Redis.from_url(self.url)
        try:
            return pings(client)
        finally:
            client.close()

    def stop(self) -> None:
        """SIGTERM (the server writes its AOF) and reap."""
        if self.proc is not None and self.proc.poll() is None:
            stop(self.proc)


@pytest.fixture
def redis_proc(tmp_path: Path) -> Iterator[RedisProc]:
    """A redis-server of the test's own."""
    workdir = tmp_path / "redis"
    workdir.mkdir()
    server = RedisProc(free_port(), workdir).start()
    yield server
    server.stop()


def timed(call: Callable[[], httpx.Response]) -> tuple[httpx.Response, float]:
    """The response and how long it took."""
    start = time.monotonic()
    response = call()
    return response, time.monotonic() - start


def assert_unavailable(response: httpx.Response, elapsed: float, kind: str) -> None:
    """503 naming what is down, with Retry-After, within BOUND_S."""
    assert response.status_code == 503, response.text
    assert response.json()["error"]["type"] == kind
    assert int(response.headers["Retry-After"]) >= 1
    assert elapsed < BOUND_S, f"took {elapsed:.1f} s"


@pytest.mark.timeout(180)
def test_redis_stopped_gives_503_fast_and_everything_is_back_after_a_restart(
    make_settings: Callable[..., Settings], redis_proc: RedisProc, tmp_path: Path
) -> None:
    """Push, search and readyz answer 503 (Retry-After) while Redis is down; healthz stays 200;
    after Redis restarts on its AOF the key still works and the earlier turn is still there."""
    settings = make_settings(redis={"url": redis_proc.url})
    key = create_key(settings, "acme")
    with ApiServer(settings, tmp_path / "serve.log") as server, server.client(key) as http:
        assert http.post("/v1/users/u1/turns", json=TURN).status_code == 202
        redis_proc.stop()
        for call in (
            lambda: http.post("/v1/users/u1/turns", json=TURN),
            lambda: http.post("/v1/users/u1/search", json={"query": "sailing"}),
            lambda: http.get("/v1/users/u1/pending"),
        ):
            assert_unavailable(*timed(call), "RedisUnavailable")
        ready, elapsed = timed(lambda: http.get("/readyz"))
        assert ready.status_code == 503 and elapsed < BOUND_S
        assert ready.json()["checks"]["redis"] != "ok" and "Retry-After" in ready.headers
        assert http.get("/healthz").status_code == 200
        redis_proc.start()
        second = {"turns": [{"role": "user", "content": "and rowing"}]}
        assert http.post("/v1/users/u1/turns", json=second).status_code == 202
        assert http.get("/v1/users/u1/pending").json()["pending"] == 2
        assert http.get("/readyz").status_code == 200


@pytest.fixture
def proxy(es_url: str) -> Iterator[TcpProxy]:
    """A cuttable proxy in front of the session's Elasticsearch node."""
    p = TcpProxy.for_url(es_url).start()
    yield p
    p.stop()


@pytest.mark.elasticsearch
@pytest.mark.timeout(180)
def test_store_cut_gives_503_on_reads_while_pushes_still_succeed(
    make_settings: Callable[..., Settings], es_index: str, proxy: TcpProxy, tmp_path: Path
) -> None:
    """Search, the memory list, export and readyz answer 503 while Elasticsearch is cut; a push
    needs only Redis (202); once the store is back, search answers again."""
    store = {"backend": "elasticsearch", "es_url": proxy.url, "es_index": es_index}
    settings = make_settings(store={**store, "es_timeout_s": 2})
    key = create_key(settings, "acme")
    with MemoryClient(settings) as local:
        local.import_memories("@acme/u2", [{"content": "u2 keeps bees"}])
    extra = {"store__es_timeout_s": 2}
    with (
        ApiServer(settings, tmp_path / "serve.log", extra=extra) as server,
        server.client(key) as http,
    ):
        assert http.post("/v1/users/u2/search", json={"query": "bees"}).json()["results"]
        proxy.cut()
        search = lambda: http.post("/v1/users/u2/search", json={"query": "bees"})  # noqa: E731
        assert_unavailable(*timed(search), "StoreUnavailable")
        for call in (
            lambda: http.get("/v1/users/u2/memories"),
            lambda: http.get("/v1/users/u2/export"),  # 503 before the stream starts
        ):
            assert_unavailable(*timed(call), "StoreUnavailable")
        ready, elapsed = timed(lambda: http.get("/readyz"))
        assert ready.status_code == 503 and elapsed < BOUND_S, ready.text
        assert ready.json()["checks"] == {**ready.json()["checks"], "redis": "ok"}
        assert ready.json()["checks"]["store"] != "ok"
        assert http.post("/v1/users/u2/turns", json=TURN).status_code == 202
        proxy.restore()
        hits = wait_until(lambda: search().json().get("results"), 30, "search to answer")
        assert hits[0]["memory"]["content"] == "u2 keeps bees"
