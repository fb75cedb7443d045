"""``memlane up`` as a real subprocess for supervision tests, and probes of its process tree.

:class:`Up` starts ``python -m worker.cli up`` on a data directory with fast batching, logs to a
file, and always cleans up: SIGKILL of the supervisor (its children follow it through
PR_SET_PDEATHSIG) and of anything still running on the directory's socket.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from memlane.buffer.embedded import socket_path
from memlane.config import Settings, load_settings
from tests.support.api_proc import free_port
from tests.support.worker_proc import ROOT, wait_until, worker_settings_overrides

FAST: dict[str, Any] = worker_settings_overrides()["batching"]


def up_env(data_dir: Path, **extra: object) -> dict[str, str]:
    """The environment of a ``memlane`` process on ``data_dir``: embedded Redis, fast batching."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEMLANE_")}
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env["MEMLANE_DATA_DIR"] = str(data_dir)
    values: dict[str, object] = {f"batching__{k}": v for k, v in FAST.items()}
    values["service__port"] = free_port()  # memlane up's HTTP API; tests may run side by side
    values.update(extra)
    env.update({f"MEMLANE_{k.upper()}": str(v) for k, v in values.items()})
    return env


def client_settings(data_dir: Path, **overrides: Any) -> Settings:
    """Settings of a client on ``data_dir`` with no redis.url: it finds the embedded server."""
    return load_settings(environ={}, data_dir=str(data_dir), batching=FAST, **overrides)


def redis_servers(data_dir: Path) -> list[psutil.Process]:
    """Every live redis-server serving ``data_dir``'s socket."""
    sock = str(socket_path(data_dir.resolve()))
    found = []
    for p in psutil.process_iter(["cmdline", "status"]):
        with contextlib.suppress(psutil.Error):
            cmd = " ".join(p.info["cmdline"] or [])
            if "redis-server" in cmd and sock in cmd and p.info["status"] != psutil.STATUS_ZOMBIE:
                found.append(p)
    return found


def tree(pid: int) -> list[psutil.Process]:
    """The live descendants of ``pid``."""
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        return []


def cmdlines(procs: list[psutil.Process]) -> list[str]:
    """Command lines, for assertion messages."""
    out = []
    for p in procs:
        with contextlib.suppress(psutil.Error):
            out.append(f"{p.pid}: {' '.join(p.cmdline())}")
    return out


@dataclass
class Up:
    """One ``memlane up`` process on ``data_dir``."""

    data_dir: Path
    log_path: Path
    args: list[str] = field(default_factory=lambda: ["--concurrency", "1"])
    env_extra: dict[str, object] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None
    api_port: int = field(default_factory=free_port)

    @property
    def api_url(self) -> str:
        """Where this supervisor's HTTP API listens."""
        return f"http://127.0.0.1:{self.api_port}"

    def start(self) -> Up:
        """Start the supervisor (appending to its log)."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "worker.cli", "up", *self.args],
                env=up_env(self.data_dir, **{"service__port": self.api_port, **self.env_extra}),
                cwd=ROOT,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        return self

    @property
    def pid(self) -> int:
        """The supervisor's pid."""
        assert self.proc is not None
        return self.proc.pid

    def state(self) -> dict[str, Any] | None:
        """The supervisor's state file, once it names this supervisor."""
        try:
            state = json.loads((self.data_dir / "supervisor.json").read_text())
        except (OSError, ValueError):
            return None
        return state if state.get("pid") == self.pid else None

    def wait_ready(self, timeout: float = 120) -> dict[str, int]:
        """Wait for Redis, the worker with its pool, beat, and the API answering ``/healthz``;
        returns their pids. (The API may bind after the worker is ready: on a slow machine a
        test that called it at once got a refused connection.)"""

        def ready() -> dict[str, int] | None:
            assert self.proc is not None and self.proc.poll() is None, self.log_tail()
            state = self.state()
            if not state or set(state["children"]) != {"redis", "worker", "control", "beat", "api"}:
                return None
            pids = {k: v["pid"] for k, v in state["children"].items()}
            pool = tree(pids["worker"])
            # The consolidation worker's own line (the control worker logs "control@... ready.").
            if not pool or not re.search(r"memlane@\S+ ready\.", self.log()):
                return None
            return pids if self.api_answers() else None

        return wait_until(ready, timeout, "memlane up to be ready", interval=0.2)

    def api_answers(self) -> bool:
        """Whether the API answers ``/healthz`` with 200 now."""
        try:
            with urllib.request.urlopen(f"{self.api_url}/healthz", timeout=2) as resp:
                return bool(resp.status == 200)
        except OSError:
            return False

    def signal(self, sig: signal.Signals) -> None:
        """Send ``sig`` to the supervisor only."""
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, sig)

    def wait(self, timeout: float) -> int:
        """Wait for the supervisor to exit; its exit code."""
        assert self.proc is not None
        return self.proc.wait(timeout=timeout)

    def log(self) -> str:
        """The whole log so far."""
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = 80) -> str:
        """The end of the log, for assertion messages."""
        return "\n".join(self.log().splitlines()[-lines:])

    def cleanup(self) -> None:
        """Kill the supervisor and anything left on its data directory."""
        if self.proc is not None and self.proc.poll() is None:
            self.signal(signal.SIGKILL)
            self.proc.wait(timeout=30)
        for server in redis_servers(self.data_dir):
            with contextlib.suppress(psutil.Error):
                server.kill()


@contextlib.contextmanager
def running_up(data_dir: Path, log_path: Path, *args: str, **env: object) -> Any:
    """Start ``memlane up``, yield it ready, and always clean it up (log tail on failure)."""
    up = Up(data_dir, log_path, list(args) or ["--concurrency", "1"], dict(env)).start()
    try:
        up.wait_ready()
        yield up
    except BaseException:
        print(f"\n===== memlane up log =====\n{up.log_tail(150)}", file=sys.stderr)
        raise
    finally:
        up.cleanup()
