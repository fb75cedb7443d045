"""A client-started embedded Redis never outlives the last memlane process that uses it.

Real subprocesses on fresh data directories: a ``MemoryClient`` that is never closed (as in the
README example) and the CLI commands exit, and no ``redis-server`` is left; the turns are still
there for the next process (the AOF); a server shared by two processes lives until both exit.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import psutil
import pytest

from tests.support.up_proc import ROOT, cmdlines, redis_servers, up_env
from tests.support.worker_proc import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.redis]

PUSH_AND_FORGET_TO_CLOSE = textwrap.dedent(
    """
    import sys
    from memlane.client import MemoryClient
    from memlane.config import load_settings

    client = MemoryClient(load_settings(environ={}, data_dir=sys.argv[1]))
    client.add_turns(sys.argv[2], [{"role": "user", "content": "I play the guitar."}])
    print(open(sys.argv[1] + "/redis.pid").read().strip(), client.pending(sys.argv[2]), flush=True)
    if len(sys.argv) > 3:  # hold the server until told to go
        sys.stdin.readline()
    """
)


def client_proc(data: Path, user: str, hold: bool = False) -> subprocess.Popen[str]:
    """A Python process that pushes one turn through an unclosed MemoryClient."""
    return subprocess.Popen(
        [sys.executable, "-c", PUSH_AND_FORGET_TO_CLOSE, str(data), user, *(["hold"] * hold)],
        env=up_env(data),
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def first_line(proc: subprocess.Popen[str]) -> tuple[int, int]:
    """The redis-server pid and the pending count the client printed."""
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line, proc.stderr.read() if proc.stderr else ""
    pid, pending = line.split()
    return int(pid), int(pending)


def assert_gone(pid: int) -> None:
    """The server process exited."""
    wait_until(lambda: not psutil.pid_exists(pid) or _zombie(pid), 30, f"redis-server {pid} exit")


def _zombie(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.Error:
        return True


@pytest.mark.timeout(120)
def test_an_unclosed_client_leaves_no_redis_server_behind(tmp_path: Path) -> None:
    """The process exits without close(): its server stops, and the next process sees the turn."""
    data = (tmp_path / "data").resolve()
    with client_proc(data, "u1") as proc:  # `with` closes the pipes and reaps the process
        server, pending = first_line(proc)
        assert pending == 1
        assert proc.wait(timeout=60) == 0, proc.stderr.read() if proc.stderr else ""
    assert_gone(server)
    assert redis_servers(data) == []

    with client_proc(data, "u2") as again:
        server2, pending2 = first_line(again)
        assert again.wait(timeout=60) == 0
    assert server2 != server and pending2 == 1
    assert_gone(server2)
    check = subprocess.run(
        [sys.executable, "-m", "worker.cli", "stats"],
        env=up_env(data),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert '"pending_turns": 2' in check.stdout, check.stdout + check.stderr  # u1's turn survived
    assert redis_servers(data) == []


@pytest.mark.timeout(120)
def test_a_shared_server_lives_until_its_last_user_exits(tmp_path: Path) -> None:
    """Two processes share one server; the first to exit leaves it to the second."""
    data = (tmp_path / "data").resolve()
    first = client_proc(data, "u1", hold=True)
    second = client_proc(data, "u2", hold=True)
    with first, second:  # closes the pipes and reaps both, whatever happens
        _share_then_exit(data, first, second)


def _share_then_exit(
    data: Path, first: subprocess.Popen[str], second: subprocess.Popen[str]
) -> None:
    try:
        server, _ = first_line(first)
        server_b, _ = first_line(second)
        assert server_b == server and len(redis_servers(data)) == 1
        assert first.stdin is not None and second.stdin is not None
        first.stdin.write("go\n")
        first.stdin.flush()
        assert first.wait(timeout=60) == 0
        assert [p.pid for p in redis_servers(data)] == [server]  # still used by the second
        second.stdin.write("go\n")
        second.stdin.flush()
        assert second.wait(timeout=60) == 0
        assert_gone(server)
    finally:
        for proc in (first, second):
            if proc.poll() is None:
                proc.kill()
        for leftover in redis_servers(data):
            leftover.kill()


@pytest.mark.timeout(240)
def test_cli_commands_leave_no_redis_server_behind(tmp_path: Path) -> None:
    """push, stats, retrieve and forget each start the directory's server and stop it again."""
    data = (tmp_path / "data").resolve()
    commands = [
        ["push", "u1", "I play the guitar."],
        ["stats"],
        ["retrieve", "u1", "guitar", "--pending"],
        ["forget", "u1"],
    ]
    for args in commands:
        out = subprocess.run(
            [sys.executable, "-m", "worker.cli", *args],
            env=up_env(data),
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert out.returncode == 0, f"{args}: {out.stdout}{out.stderr}"
        assert redis_servers(data) == [], f"{args} left {cmdlines(redis_servers(data))}"
        if args[0] == "retrieve":
            assert "guitar" in out.stdout
