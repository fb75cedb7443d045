"""``memlane up`` supervision, reproduced with real processes and real signals.

One supervisor per data directory; its children die with it; a supervisor started after a
killed one stops the leftovers first; a killed Redis is restarted on the same socket and the
worker reconnects; a client never starts a second server while a supervisor owns the directory.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from memlane.buffer.embedded import start_daemon
from memlane.client import MemoryClient
from memlane.errors import RedisUnavailable
from tests.support.up_proc import (
    ROOT,
    Up,
    client_settings,
    cmdlines,
    redis_servers,
    running_up,
    tree,
    up_env,
)
from tests.support.worker_proc import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.celery]


def turns(tag: str, n: int) -> list[dict[str, str]]:
    """``n`` distinct user turns."""
    return [{"role": "user", "content": f"{tag}: I practised guitar scale {i}."} for i in range(n)]


@pytest.mark.timeout(240)
def test_a_second_up_on_the_same_data_dir_is_refused(tmp_path: Path) -> None:
    """The second ``memlane up`` exits 2 naming the first; the first keeps serving."""
    data = tmp_path / "data"
    with running_up(data, tmp_path / "up1.log") as first:
        pids = first.wait_ready()
        second = subprocess.run(
            [sys.executable, "-m", "worker.cli", "up", "--concurrency", "1"],
            env=up_env(data),
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert second.returncode == 2, second.stdout + second.stderr
        assert f"already running on {data.resolve()} (pid {first.pid})" in second.stderr
        assert first.state() is not None  # the refused one did not touch the state file
        assert [p.pid for p in redis_servers(data)] == [pids["redis"]]
        with MemoryClient(client_settings(data)) as client:
            client.add_turns("u-second", turns("second", 3))
            assert client.flush("u-second", wait=True, timeout=90)
            assert client.services.store.count("u-second") == 3


@pytest.mark.timeout(300)
def test_kill_9_of_the_supervisor_takes_its_whole_tree_down(tmp_path: Path) -> None:
    """Redis, the worker, its pool and beat die with a SIGKILLed supervisor; a restart runs one."""
    data = tmp_path / "data"
    first = Up(data, tmp_path / "up1.log").start()
    try:
        first.wait_ready()
        children = tree(first.pid)
        assert len(children) >= 4, cmdlines(children)  # redis, worker + pool, beat
        first.signal(signal.SIGKILL)
        first.wait(30)
        _gone, alive = psutil.wait_procs(children, timeout=30)
        assert alive == [], cmdlines(alive)
        assert redis_servers(data) == []
    finally:
        first.cleanup()

    with running_up(data, tmp_path / "up2.log") as second:
        pids = second.wait_ready()
        assert [p.pid for p in redis_servers(data)] == [pids["redis"]]
        workers = [
            p for p in psutil.process_iter(["cmdline", "environ"]) if _serves(p, data, "worker")
        ]
        # Celery workers of this directory: the consolidation worker and the control worker
        # (both `worker.cli worker`) with their pools, none left over from the killed tree.
        ours = {pids[name] for name in ("worker", "control")}
        ours |= {c.pid for name in ("worker", "control") for c in tree(pids[name])}
        assert {p.pid for p in workers} <= ours


def _serves(proc: psutil.Process, data: Path, role: str) -> bool:
    try:
        cmd = proc.info["cmdline"] or []
        env = proc.info["environ"] or {}
    except psutil.Error:
        return False
    return role in cmd and env.get("MEMLANE_DATA_DIR") == str(data.resolve())


@pytest.mark.timeout(300)
def test_leftovers_of_a_killed_supervisor_are_stopped_before_a_restart(tmp_path: Path) -> None:
    """A stopped (SIGSTOP) Redis outlives its killed supervisor; the next ``up`` stops it first."""
    data = tmp_path / "data"
    first = Up(data, tmp_path / "up1.log").start()
    try:
        old = first.wait_ready()
        os.kill(old["redis"], signal.SIGSTOP)  # it cannot act on its parent-death SIGTERM
        first.signal(signal.SIGKILL)
        first.wait(30)
        assert psutil.Process(old["redis"]).status() == psutil.STATUS_STOPPED
    finally:
        first.proc = None  # keep cleanup() off the leftover: the next supervisor must handle it

    with running_up(data, tmp_path / "up2.log") as second:
        pids = second.wait_ready()
        assert not psutil.pid_exists(old["redis"]) or _zombie(old["redis"])
        assert [p.pid for p in redis_servers(data)] == [pids["redis"]]
        assert "leftover_child" in second.log()


def _zombie(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.Error:
        return True


@pytest.mark.timeout(300)
def test_killed_redis_is_restarted_and_no_client_starts_a_second_one(tmp_path: Path) -> None:
    """kill -9 of Redis: clients get RedisUnavailable and start no server of their own, worker
    and beat log a few lines instead of a flood; the supervisor restarts Redis on the same
    socket, the worker reconnects and nothing is lost."""
    data = tmp_path / "data"
    settings = client_settings(data)
    with running_up(data, tmp_path / "up.log") as up, MemoryClient(settings) as client:
        pids = up.wait_ready()
        client.add_turns("u-crash", turns("before", 5))
        assert client.flush("u-crash", wait=True, timeout=90)

        lines_before = len(up.log().splitlines())
        up.signal(signal.SIGSTOP)  # the supervisor cannot restart Redis while it is stopped
        try:
            os.kill(pids["redis"], signal.SIGKILL)
            wait_until(lambda: not redis_servers(data), 30, "Redis to die")
            with MemoryClient(settings) as other, pytest.raises(RedisUnavailable) as err:
                other.add_turns("u-crash", turns("during", 1))
            assert f"memlane up (pid {up.pid})" in str(err.value)
            assert redis_servers(data) == []  # no client started a second server
            # Hold the outage until the worker has retried three times (2 + 4 + 6 s).
            wait_until(lambda: "(3/100)" in up.log(), 90, "three reconnect attempts")
            outage_lines = up.log().splitlines()[lines_before:]
        finally:
            up.signal(signal.SIGCONT)
        # Before the fix beat alone logged a ~145-line traceback every dispatch (0.5 s here).
        assert len(outage_lines) < 80, "\n".join(outage_lines[-80:])
        assert sum("beat_send_failed" in line for line in outage_lines) == 1

        def restarted() -> int | None:
            state = up.state() or {}
            pid = state.get("children", {}).get("redis", {}).get("pid")
            return pid if pid not in (None, pids["redis"]) and psutil.pid_exists(pid) else None

        new_redis = wait_until(restarted, 60, "Redis to be restarted", interval=0.05)
        assert [p.pid for p in redis_servers(data)] == [new_redis]
        # The same client object reconnects to the same socket; the worker consumes again.
        wait_until(lambda: _pushes(client), 30, "the client to reconnect")
        assert client.flush("u-crash", wait=True, timeout=120)
        assert client.services.store.count("u-crash") == 8
        assert client.services.buffer.dead_letters() == []
    assert "child_exited" in up.log() and "child_restarted" in up.log()


def _pushes(client: MemoryClient) -> bool:
    try:
        client.add_turns("u-crash", turns("after", 3))
    except RedisUnavailable:
        return False
    return True


@pytest.mark.timeout(240)
def test_up_takes_over_a_server_a_client_started(tmp_path: Path) -> None:
    """A daemon a client started on the directory is shut down (its turns kept) and replaced."""
    data = (tmp_path / "data").resolve()
    start_daemon(data, appendonly=True)
    daemon = redis_servers(data)
    assert len(daemon) == 1
    settings = client_settings(data)
    with MemoryClient(settings) as client:
        client.add_turns("u-early", turns("early", 4))
    with running_up(data, tmp_path / "up.log") as up:
        pids = up.wait_ready()
        assert not daemon[0].is_running() or daemon[0].status() == psutil.STATUS_ZOMBIE
        assert [p.pid for p in redis_servers(data)] == [pids["redis"]]
        with MemoryClient(settings) as client:
            assert client.flush("u-early", wait=True, timeout=120)
            assert client.services.store.count("u-early") == 4
