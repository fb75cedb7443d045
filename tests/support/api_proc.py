"""A real ``memlane serve`` (uvicorn) subprocess on a loopback port, and an HTTP client for it.

:class:`ApiServer` runs ``python -m worker.cli serve`` with the settings of a test (through
``MEMLANE_*`` variables, like the workers of :mod:`tests.support.worker_proc`), waits until
``/healthz`` answers, and can be stopped, killed and restarted on the same port.
:func:`create_key` makes API keys straight in the test's Redis, as ``memlane keys create`` does.
"""

from __future__ import annotations

import contextlib
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import redis

from memlane.config import Settings
from service.apikeys import KeyStore
from tests.support.worker_proc import ROOT, child_env, wait_until


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def create_key(
    settings: Settings, tenant: str | None, rate: float = 1000.0, burst: int = 1000
) -> str:
    """A new API key in the test's Redis (None: an admin key)."""
    assert settings.redis.url is not None
    client = redis.Redis.from_url(settings.redis.url)
    try:
        return KeyStore(client, settings.redis.key_prefix).create(tenant, rate, burst)[1]
    finally:
        client.close()


@dataclass
class ApiServer:
    """One ``memlane serve`` process for a test's settings."""

    settings: Settings
    log_path: Path
    port: int = field(default_factory=free_port)
    extra: dict[str, object] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60) -> ApiServer:
        """Start the server and wait until ``/healthz`` answers."""
        argv = [sys.executable, "-m", "worker.cli", "serve", "--port", str(self.port)]
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                argv,
                env=child_env(self.settings, **self.extra),
                cwd=ROOT,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        wait_until(self._healthy, timeout, f"memlane serve on {self.url}", interval=0.1)
        return self

    def _healthy(self) -> bool:
        assert self.proc is not None and self.proc.poll() is None, self.tail()
        try:
            return httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self, sig: signal.Signals = signal.SIGTERM, timeout: float = 30) -> None:
        """Stop the server (SIGTERM: uvicorn finishes requests in flight; SIGKILL: at once)."""
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=30)

    def restart(self) -> ApiServer:
        """Stop and start again on the same port."""
        self.stop()
        return self.start()

    def client(self, key: str | None, timeout: float = 60) -> httpx.Client:
        """An HTTP client for this server, sending ``key`` as the bearer token."""
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=timeout)

    def tail(self, lines: int = 60) -> str:
        """The end of the server's log."""
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def __enter__(self) -> ApiServer:
        return self.start()

    def __exit__(self, exc_type: Any, *_: Any) -> None:
        if exc_type is not None:
            print(f"\n===== memlane serve log =====\n{self.tail(120)}", file=sys.stderr)
        self.stop()


@contextlib.contextmanager
def backend_settings(
    request: Any, tmp: Path, redis_url: str, **overrides: Any
) -> Iterator[Settings]:
    """Settings of a service on ``request.param``'s store ("sqlite" or "elasticsearch": then a
    fresh index, deleted afterwards), with its own Redis key prefix, in Asia/Shanghai."""
    from memlane.config import load_settings
    from tests.support.services import delete_indices

    store: dict[str, Any] = {"backend": request.param, "es_refresh_interval": "50ms"}
    index = f"memlane-test-{uuid.uuid4().hex[:12]}"
    if request.param == "elasticsearch":
        store.update(es_url=request.getfixturevalue("es_service").url, es_index=index)
    try:
        yield load_settings(
            environ={},
            data_dir=str(tmp / "data"),
            timezone="Asia/Shanghai",
            redis={"url": redis_url, "key_prefix": f"t{uuid.uuid4().hex[:12]}"},
            store=store,
            **overrides,
        )
    finally:
        if request.param == "elasticsearch":
            delete_indices(store["es_url"], index)
