"""``memlane up``: one supervised process tree that SIGTERM takes down completely."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from memlane.datadir import is_locked
from tests.support.api_proc import free_port


def _redis_socket(proc: subprocess.Popen[str]) -> str:
    """The embedded Redis socket, read from the `memlane_up` log line."""
    assert proc.stdout is not None
    for line in proc.stdout:
        match = re.search(r"redis=unix://(\S+\.socket)", line)
        if match:
            return match.group(1)
    raise AssertionError("memlane up never logged its Redis socket")


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_sigterm_leaves_no_process_behind(tmp_path: Path) -> None:
    """Redis, the worker (with its pool) and beat all exit when `memlane up` gets SIGTERM, and
    the data directory is free again (no state file, the lock released)."""
    data = tmp_path / "data"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEMLANE_")}
    env["MEMLANE_DATA_DIR"] = str(data)
    env["MEMLANE_SERVICE__PORT"] = str(free_port())  # the HTTP API child; tests run side by side
    proc = subprocess.Popen(
        [sys.executable, "-m", "worker.cli", "up", "--concurrency", "2"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    socket = _redis_socket(proc)
    # Keep draining the children's output so a full pipe can never stall them.
    drain = threading.Thread(target=lambda: [None for _ in proc.stdout or []], daemon=True)
    drain.start()
    assert redis.Redis(unix_socket_path=socket).ping()
    root = psutil.Process(proc.pid)
    deadline = time.monotonic() + 60
    tree: list[psutil.Process] = []
    while time.monotonic() < deadline:  # worker main + 2 pool children + beat
        tree = root.children(recursive=True)
        if len(tree) >= 4:
            break
        time.sleep(0.2)
    assert len(tree) >= 4, [p.cmdline() for p in tree]
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 0
    _gone, alive = psutil.wait_procs(tree, timeout=15)
    assert alive == []
    # Every writer of the pipe is gone, so the drain reaches EOF; close our end of it.
    drain.join(timeout=15)
    assert proc.stdout is not None and not drain.is_alive()
    proc.stdout.close()
    with pytest.raises(redis.ConnectionError):
        redis.Redis(unix_socket_path=socket, retry=Retry(NoBackoff(), 0)).ping()
    assert not (data / "supervisor.json").exists()
    assert not is_locked(data / "supervisor.lock")
