"""Who owns a data directory: the ``memlane up`` lock, its state file and the start lock.

``memlane up`` holds an exclusive ``flock`` on ``<data_dir>/supervisor.lock`` for as long as it
runs. The kernel drops the lock when the process dies, however it dies, so a stale lock can
never block a restart, and a second ``memlane up`` on the same directory is refused. Next to it
the supervisor keeps ``supervisor.json``: its pid, the embedded Redis URL and its children.

``<data_dir>/redis.lock`` serialises everything that starts or stops the embedded Redis of the
directory (the supervisor, clients, a client exiting), so two processes never both decide that
no server runs and start one each on the same append-only file.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from memlane.errors import ServiceError

SUPERVISOR_LOCK = "supervisor.lock"
SUPERVISOR_STATE = "supervisor.json"
START_LOCK = "redis.lock"


class FileLock:
    """An ``flock`` on one file; released by :meth:`release` or when the process dies."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def acquire(self, exclusive: bool = True, timeout: float = 0.0) -> bool:
        """Try for up to ``timeout`` seconds; True when the lock is held."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)  # not inherited by children
        mode = (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, mode)
            except OSError as e:
                if e.errno not in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EACCES):
                    os.close(fd)
                    raise ServiceError(f"cannot lock {self.path}: {e}") from e
                if time.monotonic() >= deadline:
                    os.close(fd)
                    return False
                time.sleep(0.05)
                continue
            self._fd = fd
            return True

    def release(self) -> None:
        """Drop the lock (closing the descriptor releases it)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def is_locked(path: Path) -> bool:
    """True when another process holds an exclusive lock on ``path``."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError as e:
        if e.errno in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EACCES):
            return True
        raise ServiceError(f"cannot probe lock {path}: {e}") from e
    finally:
        os.close(fd)  # also drops the probe's shared lock
    return False


@contextlib.contextmanager
def start_lock(data_path: Path, timeout: float = 60.0) -> Iterator[None]:
    """Hold the directory's start lock: only one process at a time starts or stops its Redis."""
    lock = FileLock(data_path / START_LOCK)
    if not lock.acquire(exclusive=True, timeout=timeout):
        raise ServiceError(
            f"another process has been starting or stopping the embedded Redis of {data_path} "
            f"for more than {timeout:.0f} s"
        )
    try:
        yield
    finally:
        lock.release()


def supervisor_state(data_path: Path) -> dict[str, Any] | None:
    """The state of the ``memlane up`` that owns ``data_path`` now, or None when none runs."""
    if not is_locked(data_path / SUPERVISOR_LOCK):
        return None
    return read_state(data_path) or {}


def read_state(data_path: Path) -> dict[str, Any] | None:
    """The last state file written in ``data_path`` (by a live or a killed supervisor)."""
    try:
        state = json.loads((data_path / SUPERVISOR_STATE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return state if isinstance(state, dict) else None


def write_state(data_path: Path, state: dict[str, Any]) -> None:
    """Replace the state file atomically (readers never see half of it)."""
    target = data_path / SUPERVISOR_STATE
    tmp = target.with_name(f".{target.name}.{os.getpid()}")
    tmp.write_text(json.dumps(state, indent=2), encoding="utf-8")
    os.chmod(tmp, 0o600)
    os.replace(tmp, target)


def remove_state(data_path: Path) -> None:
    """Delete the state file (on a clean stop)."""
    with contextlib.suppress(FileNotFoundError):
        (data_path / SUPERVISOR_STATE).unlink()
