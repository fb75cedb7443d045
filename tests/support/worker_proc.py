"""Real Celery worker and beat processes for integration and fault tests.

Each process runs ``python -m worker.cli worker|beat`` in its own process group (so a
``kill -9`` of the group takes the prefork pool children with it) and gets its settings only
through ``MEMLANE_*`` environment variables derived from a :class:`Settings` object. Output
goes to a log file per process; :class:`Cluster` prints the tails of every log when the test
body raises, and always stops what it started.

Celery's queues (``consolidate``, ``reflect``, ``maintenance``) are not under memlane's key
prefix, so tests that run workers use a Redis database of their own (:func:`with_db`).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import redis

from memlane.config import Settings

ROOT = Path(__file__).resolve().parents[2]
# Databases 1..15 rotate between worker tests; 0 is left to tests that share prefixes.
_DBS = itertools.cycle(range(1, 16))


def with_db(url: str, db: int) -> str:
    """The same Redis server, another database: ``unix://...?db=N`` or ``redis://h:p/N``."""
    parts = urlsplit(url)
    if parts.scheme == "unix":
        path, _, query = url[len("unix://") :].partition("?")
        params = dict(parse_qsl(query))
        params["db"] = str(db)
        return f"unix://{path}?{urlencode(params)}"
    return urlunsplit(parts._replace(path=f"/{db}"))


def fresh_db_url(url: str) -> str:
    """A URL for the next rotating database of ``url``'s server, emptied first."""
    db_url = with_db(url, next(_DBS))
    client = redis.Redis.from_url(db_url)
    try:
        client.flushdb()
    finally:
        client.close()
    return db_url


def flush_db(url: str) -> None:
    """Empty the database of ``url`` (Celery queues, buffer keys, everything)."""
    client = redis.Redis.from_url(url)
    try:
        client.flushdb()
    finally:
        client.close()


def settings_env(settings: Settings, **extra: object) -> dict[str, str]:
    """``MEMLANE_*`` variables that rebuild ``settings`` in a child process.

    ``extra`` adds or overrides variables by their setting path, e.g.
    ``embedding__base_url="http://127.0.0.1:9/v1"`` or ``batching__max_attempts=1``.
    """
    s = settings
    values: dict[str, object] = {
        "data_dir": str(s.data_path),
        "timezone": s.timezone,
        "redis__url": s.redis.url,
        "redis__key_prefix": s.redis.key_prefix,
        "store__backend": s.store.backend.value,
        "store__sqlite_path": str(s.sqlite_file),
        "store__es_url": s.store.es_url,
        "store__es_index": s.store.es_index,
        "store__es_timeout_s": s.store.es_timeout_s,
        "embedding__base_url": s.embedding.base_url,
        "embedding__dims": s.embedding.dims,
        "embedding__model": s.embedding.model,
        "embedding__timeout_s": s.embedding.timeout_s,
        "log__format": s.log.format.value,
        "log__level": s.log.level,
    }
    for name, value in s.batching.model_dump().items():
        values[f"batching__{name}"] = value
    for name, value in s.worker.model_dump().items():
        values[f"worker__{name}"] = value
    values.update(extra)
    env = {}
    for name, value in values.items():
        if value is not None:
            env[f"MEMLANE_{name.upper()}"] = str(value)
    return env


def child_env(settings: Settings, **extra: object) -> dict[str, str]:
    """The parent's environment without its own ``MEMLANE_*`` variables, plus ``settings``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEMLANE_")}
    env.pop("MEMLANE_CONFIG", None)
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.update(settings_env(settings, **extra))
    return env


@dataclass
class Proc:
    """One memlane process (worker, beat or a CLI command) in its own process group."""

    name: str
    argv: list[str]
    env: dict[str, str]
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Proc:
        """Start (or restart) the process, appending to its log file."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            log.write(f"\n===== start {' '.join(self.argv)} =====\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                self.argv,
                env=self.env,
                cwd=ROOT,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self

    @property
    def pid(self) -> int:
        """The pid of the group leader."""
        assert self.proc is not None, f"{self.name} was never started"
        return self.proc.pid

    def alive(self) -> bool:
        """True while the group leader runs."""
        return self.proc is not None and self.proc.poll() is None

    def group_pids(self) -> list[int]:
        """Every live process of the group (leader and pool children)."""
        pids = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            fields = stat.rsplit(")", 1)[1].split()
            if fields[0] != "Z" and self.proc is not None and int(fields[2]) == self.pid:
                pids.append(int(entry.name))
        return pids

    def kill(self) -> None:
        """SIGKILL the whole process group (leader and pool children), then reap."""
        self._signal(signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait(timeout=30)
        wait_until(lambda: not self.group_pids(), 30, f"{self.name}'s group to die")

    def stop(self, grace_s: float = 10.0) -> None:
        """SIGTERM the group, SIGKILL it after ``grace_s``; always reaps the leader."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self._signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=grace_s)
        self._signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def _signal(self, sig: signal.Signals) -> None:
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, sig)

    def log_text(self) -> str:
        """The whole log so far."""
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def tail(self, lines: int = 60) -> str:
        """The last lines of the log."""
        return "\n".join(self.log_text().splitlines()[-lines:])


def _python_cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "worker.cli", *args]


@dataclass
class Cluster:
    """Workers and beats for one test; stops them all and prints log tails on failure."""

    settings: Settings
    log_dir: Path
    extra_env: dict[str, object] = field(default_factory=dict)
    procs: list[Proc] = field(default_factory=list)

    def env(self, **extra: object) -> dict[str, str]:
        """The child environment for this cluster's settings (plus per-process extras)."""
        return child_env(self.settings, **{**self.extra_env, **extra})

    def worker(
        self,
        name: str = "worker",
        concurrency: int = 2,
        hostname: str | None = None,
        **extra: object,
    ) -> Proc:
        """Start a prefork worker on every memlane queue."""
        argv = _python_cli(
            "worker",
            "--concurrency",
            str(concurrency),
            "--hostname",
            hostname or f"{name}-{os.getpid()}@%h",
        )
        return self._start(Proc(name, argv, self.env(**extra), self.log_dir / f"{name}.log"))

    def beat(self, name: str = "beat", **extra: object) -> Proc:
        """Start a beat; each beat keeps its schedule file in a data dir of its own."""
        extra = {"data_dir": str(self.log_dir / f"{name}-data"), **extra}
        argv = _python_cli("beat")
        return self._start(Proc(name, argv, self.env(**extra), self.log_dir / f"{name}.log"))

    def run(
        self, *args: str, timeout: float = 120, **extra: object
    ) -> subprocess.CompletedProcess[str]:
        """Run a one-shot ``memlane`` command (``stats``, ``replay``) with this cluster's env."""
        return subprocess.run(
            _python_cli(*args),
            env=self.env(**extra),
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def _start(self, proc: Proc) -> Proc:
        self.procs.append(proc)
        return proc.start()

    def tails(self, lines: int = 60) -> str:
        """The log tail of every process, labelled."""
        return "\n".join(
            f"----- {p.name} (pid {p.proc.pid if p.proc else '-'}, log {p.log_path}) -----\n"
            f"{p.tail(lines)}"
            for p in self.procs
        )

    def logs(self) -> str:
        """Every process's full log, concatenated."""
        return "\n".join(p.log_text() for p in self.procs)

    def stop(self) -> None:
        """Stop every process (SIGTERM, then SIGKILL of the group)."""
        for proc in self.procs:
            proc._signal(signal.SIGTERM)
        for proc in self.procs:
            proc.stop(grace_s=10)

    def __enter__(self) -> Cluster:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is not None:
            print(
                f"\n===== process logs ({exc_type.__name__}) =====\n{self.tails()}", file=sys.stderr
            )
        self.stop()


def wait_until(
    predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.1
) -> Any:
    """Poll ``predicate`` until it returns something truthy; raise after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


BATCH_ID = re.compile(r"batch_id['\"]?[=:]\s*['\"]?(b-[0-9a-f]+)")


def consolidated_batch_ids(log_text: str) -> list[str]:
    """Batch ids of every ``batch_consolidated`` log line (console or JSON format)."""
    return [
        m.group(1)
        for line in log_text.splitlines()
        if "batch_consolidated" in line and (m := BATCH_ID.search(line))
    ]


def worker_settings_overrides(**batching: object) -> dict[str, Any]:
    """Fast batching for tests: dispatch every 0.5 s, idle after 0.5 s, short leases."""
    base: dict[str, object] = {
        "idle_s": 0.5,
        "dispatch_interval_s": 0.5,
        "lease_ttl_s": 30,
        "max_wait_s": 5,
        "backoff_base_s": 0.5,
        "backoff_max_s": 5,
    }
    base.update(batching)
    return {"batching": base}


def merge(*trees: Mapping[str, Any]) -> dict[str, Any]:
    """Shallow-merge settings override trees, merging the nested section dicts."""
    out: dict[str, Any] = {}
    for tree in trees:
        for key, value in tree.items():
            if isinstance(value, Mapping) and isinstance(out.get(key), dict):
                out[key] = {**out[key], **value}
            else:
                out[key] = value
    return out


def iter_ids(store: Any, user_id: str) -> Iterator[str]:
    """Every memory id of the user in a store, following list cursors."""
    cursor = None
    while True:
        page = store.list(user_id, limit=1000, cursor=cursor)
        yield from (m.id for m in page.memories)
        cursor = page.cursor
        if cursor is None:
            return
