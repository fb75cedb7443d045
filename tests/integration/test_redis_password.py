"""A password-protected redis-server: workers, beat and `memlane up` authenticate, never log it."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pytest
import redis

from memlane.client import MemoryClient
from memlane.config import Settings
from tests.support.llm_server import LLMServer
from tests.support.redis_proc import redis_server
from tests.support.worker_proc import (
    ROOT,
    Cluster,
    child_env,
    wait_until,
    worker_settings_overrides,
)
from worker.app import create_app

pytestmark = [pytest.mark.celery, pytest.mark.redis]

PASSWORD = "pw #with spaces:and@signs/9Zq"  # also proves the raw-string rule for secrets


@dataclass
class ProtectedRedis:
    """A redis-server that requires a password, on TCP and on a unix socket."""

    port: int
    socket_path: Path
    proc: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        """The TCP URL without credentials."""
        return f"redis://127.0.0.1:{self.port}/0"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def protected_redis(tmp_path: Path) -> Iterator[ProtectedRedis]:
    """redis-server with --requirepass on a free port and a socket, in a temp dir of its own."""
    workdir = tmp_path / "redis-pw"
    workdir.mkdir()
    port = _free_port()
    sock = workdir / "redis.sock"
    args = ["--port", str(port), "--bind", "127.0.0.1", "--requirepass", PASSWORD,
            "--unixsocket", str(sock), "--unixsocketperm", "700", "--appendonly", "no",
            "--logfile", str(workdir / "redis.log")]  # fmt: skip
    client = redis.Redis(host="127.0.0.1", port=port, password=PASSWORD)
    with redis_server(workdir, args, client) as proc:
        with pytest.raises(redis.AuthenticationError):  # the password is really required
            redis.Redis(host="127.0.0.1", port=port).ping()
        yield ProtectedRedis(port, sock, proc)


@pytest.fixture
def fast_embedder() -> Iterator[LLMServer]:
    """The fake endpoint's hash embeddings: the workers need no local model here."""
    server = LLMServer().start()
    yield server
    server.stop()


def _settings(
    make_settings: Callable[..., Settings],
    url: str,
    server: LLMServer,
    password: str | None = None,
) -> Settings:
    return make_settings(
        redis={"url": url, "password": password},
        embedding={"base_url": server.url, "model": "fake-embed"},
        **worker_settings_overrides(batch_max_turns=5),
    )


@pytest.mark.timeout(180)
def test_worker_and_beat_use_the_password_from_the_environment(
    protected_redis: ProtectedRedis,
    make_settings: Callable[..., Settings],
    fast_embedder: LLMServer,
    tmp_path: Path,
) -> None:
    """MEMLANE_REDIS__PASSWORD reaches Celery: pushed turns are consolidated, nothing logs it."""
    settings = _settings(make_settings, protected_redis.url, fast_embedder, password=PASSWORD)
    extra: dict[str, object] = {
        "redis__password": PASSWORD
    }  # worker and beat get it from the environment only
    with (
        Cluster(settings, tmp_path / "procs", extra_env=extra) as cluster,
        MemoryClient(settings) as client,
    ):
        cluster.worker(concurrency=1)
        cluster.beat()
        turns = [{"role": "user", "content": f"fact {i}"} for i in range(7)]
        ids = client.add_turns("pw-user", turns)
        assert client.flush("pw-user", wait=True, timeout=120), "not consolidated"
        assert client.services.store.count("pw-user") == len(ids)
        stats = cluster.run("stats")
        assert stats.returncode == 0, stats.stderr
        logs = cluster.logs() + stats.stdout + stats.stderr
    assert "batch_consolidated" in logs
    assert "Authentication required" not in logs and "NOAUTH" not in logs
    assert PASSWORD not in logs


@pytest.mark.parametrize("transport", ["tcp", "unix"])
def test_the_celery_broker_authenticates_without_a_password_in_its_url(
    protected_redis: ProtectedRedis, make_settings: Callable[..., Settings], transport: str
) -> None:
    """kombu connects over TCP (broker_password) and a socket; a wrong password is refused."""
    url = (
        protected_redis.url if transport == "tcp" else f"unix://{protected_redis.socket_path}?db=0"
    )

    def connects(password: str) -> bool:
        settings = make_settings(redis={"url": url, "password": password})
        conn = create_app(settings).connection_for_write()
        try:
            conn.ensure_connection(max_retries=1)
            return bool(conn.default_channel.client.ping())
        except Exception:  # noqa: BLE001 - any failure to authenticate is the answer
            return False
        finally:
            conn.release()

    assert connects(PASSWORD)
    assert not connects("wrong-password")
    settings = make_settings(redis={"url": url, "password": PASSWORD})
    assert PASSWORD not in create_app(settings).connection_for_write().as_uri()


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_memlane_up_with_the_password_in_the_url_never_logs_it(
    protected_redis: ProtectedRedis,
    make_settings: Callable[..., Settings],
    fast_embedder: LLMServer,
    tmp_path: Path,
) -> None:
    """`redis://:pw@host` (no user name): up, worker and beat run and print it masked."""
    settings = _settings(make_settings, protected_redis.url, fast_embedder)
    quoted = quote(PASSWORD, safe="")
    url_with_password = f"redis://:{quoted}@127.0.0.1:{protected_redis.port}/0"
    env = child_env(settings, redis__url=url_with_password)
    log_path = tmp_path / "up.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "worker.cli", "up", "--concurrency", "1"],
            env=env,
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    client_settings = settings.model_copy(
        update={"redis": settings.redis.model_copy(update={"url": url_with_password})}
    )
    try:
        with MemoryClient(client_settings) as client:
            client.add_turns("up-user", [{"role": "user", "content": "guitar"}])
            assert client.flush("up-user", wait=True, timeout=120), log_path.read_text()
            assert client.services.store.count("up-user") == 1
        wait_until(lambda: "memlane_up" in log_path.read_text(), 30, "the memlane_up line")
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    text = log_path.read_text()
    assert "redis://***@127.0.0.1" in text  # the URL is logged, its password masked
    for shown in (PASSWORD, quoted):
        assert shown not in text
