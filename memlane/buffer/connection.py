"""Connections to Redis: a configured server, or the embedded server of the data directory."""

from __future__ import annotations

import atexit
import contextlib
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from memlane.buffer import embedded as er
from memlane.config import Settings
from memlane.datadir import start_lock, supervisor_state
from memlane.errors import MemlaneError, RedisUnavailable, ServiceError


@dataclass
class _Embedded:
    """A client-started server this process uses, and the connection that says so."""

    url: str
    data_path: Path
    pid: int
    user: redis.Redis


_embedded: dict[str, _Embedded] = {}
_lock = threading.Lock()
_at_exit: list[bool] = []


def embedded_redis_url(settings: Settings) -> str:
    """The URL of the data directory's embedded Redis; never a second server on its files.

    When ``memlane up`` owns the directory this is its server, and RedisUnavailable when that
    server is down (the supervisor restarts it). Otherwise it is the server another client
    started, or one started now; this process then counts as one of its users, and the last
    user to exit shuts it down (:func:`_release_at_exit`).
    """
    key = str(settings.data_path)
    with _lock:
        mine = _embedded.get(key)
        if mine is not None and mine.pid == os.getpid() and _answers(mine.user):
            return mine.url
        _embedded.pop(key, None)
        return _resolve(settings)


def _resolve(settings: Settings) -> str:
    data = settings.data_path
    data.mkdir(parents=True, exist_ok=True)
    with start_lock(data):
        state = supervisor_state(data)
        if state is not None:
            return _supervised_url(data, state)
        sock = er.socket_path(data)
        if not er.answers(sock):
            er.stop_strays(data)
            er.start_daemon(data, settings.redis.embedded_appendonly)
        # Connected inside the start lock, so a user exiting right now already counts us.
        user = er.client(sock, name=er.user_name())
        if not _answers(user):
            raise ServiceError(f"embedded Redis on {sock} stopped answering as it started")
    url = er.url_for(sock)
    _embedded[str(data)] = _Embedded(url, data, os.getpid(), user)
    if not _at_exit:
        atexit.register(_release_at_exit)
        _at_exit.append(True)
    return url


def _supervised_url(data: Path, state: dict[str, object]) -> str:
    owner = f"memlane up (pid {state.get('pid', '?')})"
    url = state.get("redis_url")
    if not isinstance(url, str) or not url.startswith("unix://"):
        raise ServiceError(
            f"{owner} runs {data} on a configured Redis (redis.url); configure the same "
            "redis.url here instead of the embedded server"
        )
    if not er.answers(Path(url[len("unix://") :])):
        raise RedisUnavailable(
            f"{owner} owns {data} but its Redis is not answering; the supervisor restarts "
            "it by itself: retry shortly"
        )
    return url


def _answers(conn: redis.Redis) -> bool:
    try:
        return bool(conn.ping())
    except redis.RedisError:
        return False


def _release(entry: _Embedded, force: bool) -> None:
    """Stop using a client-started server; shut it down when nobody else uses it (or ``force``)."""
    entry.user.close()
    with start_lock(entry.data_path, timeout=10):
        if supervisor_state(entry.data_path) is not None:
            return  # memlane up took the directory over; its server is not ours to stop
        sock = er.socket_path(entry.data_path)
        if er.answers(sock) and (force or er.other_users(sock) == 0):
            er.shutdown(sock, er.server_pid(entry.data_path))


def _release_at_exit() -> None:
    """At interpreter exit: the last memlane process using a client-started server stops it."""
    with _lock:
        mine = [e for e in _embedded.values() if e.pid == os.getpid()]  # not a fork's parent's
        _embedded.clear()
    for entry in mine:
        with contextlib.suppress(MemlaneError, OSError, redis.RedisError):
            _release(entry, force=False)


def shutdown_embedded() -> None:
    """Stop every client-started embedded server this process uses, even if others use it too."""
    with _lock:
        mine = [e for e in _embedded.values() if e.pid == os.getpid()]
        _embedded.clear()
    for entry in mine:
        _release(entry, force=True)


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
        # A short, bounded retry: an outage surfaces as RedisUnavailable within about a
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
