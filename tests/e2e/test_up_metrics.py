"""``memlane up`` with ``metrics.worker_port``: both of its workers serve metrics, on two ports.

The consolidating worker and the control worker are two Celery workers of one supervisor. With
one port for both, the second to start could not bind it and was restarted forever; the control
worker now serves one port above.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.support.up_proc import running_up, up_env
from tests.support.worker_proc import ROOT, wait_until


def _two_free_ports() -> int:
    """A port p with p and p + 1 both free right now."""
    for _ in range(50):
        with socket.socket() as a:
            a.bind(("127.0.0.1", 0))
            port = int(a.getsockname()[1])
            if port >= 65535:
                continue
            with socket.socket() as b:
                try:
                    b.bind(("127.0.0.1", port + 1))
                except OSError:
                    continue
                return port
    raise AssertionError("no two adjacent free ports")


def _scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        return resp.read().decode()


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_both_workers_of_up_serve_metrics_without_a_restart_loop(tmp_path: Path) -> None:
    """Worker on the port, control worker on port + 1; neither child is ever restarted."""
    port = _two_free_ports()
    with running_up(tmp_path / "data", tmp_path / "up.log", metrics__worker_port=port) as up:
        state = up.state()
        assert state is not None
        pids = {k: v["pid"] for k, v in state["children"].items()}
        pages = {
            p: wait_until(lambda p=p: _try(p), 60, f"metrics on :{p}") for p in (port, port + 1)
        }
        for page in pages.values():
            assert "memlane_buffered_turns" in page
        time.sleep(3)  # a crash-looping child would have exited by now (it did at once)
        state = up.state()
        assert state is not None
        assert {k: v["pid"] for k, v in state["children"].items()} == pids
        assert "child_exited" not in up.log() and "Traceback" not in up.log()
        assert f"'worker': {port}" in up.log() and f"'control': {port + 1}" in up.log()


def _try(port: int) -> str | None:
    try:
        return _scrape(port)
    except OSError:
        return None


@pytest.mark.timeout(120)
def test_a_busy_metrics_port_is_one_line_naming_the_setting(tmp_path: Path) -> None:
    """A worker whose metrics port is taken exits non-zero with one line, no traceback."""
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = int(held.getsockname()[1])
        env = up_env(tmp_path / "data", metrics__worker_port=port)
        done = subprocess.run(
            [sys.executable, "-m", "worker.cli", "worker", "--concurrency", "1"],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=100,
        )
    out = done.stdout + done.stderr
    assert done.returncode != 0
    assert "metrics.worker_port" in out and f":{port}" in out
    assert "Traceback" not in out
