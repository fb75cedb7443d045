"""Process plumbing for the supervisor: children that die with their parent, leftover cleanup."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
from collections.abc import Callable
from typing import Any

import psutil

from memlane.logging import get_logger

log = get_logger(__name__)
_PR_SET_PDEATHSIG = 1


def die_with_parent(sig: signal.Signals, parent_pid: int) -> None:
    """Ask the kernel to send ``sig`` to this process when its parent dies (Linux).

    The setting survives ``exec`` but not ``fork``, so every generation sets its own (the
    supervisor's children here, Celery's pool processes in :mod:`worker.lifecycle`). When the
    parent is already gone (it died between ``fork`` and this call) the process exits at once.
    """
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
    if os.getppid() != parent_pid:
        os._exit(1)


def child_preexec(sig: signal.Signals) -> Callable[[], None]:
    """A ``preexec_fn`` that ties the child to the calling process (see :func:`die_with_parent`)."""
    parent = os.getpid()

    def preexec() -> None:
        die_with_parent(sig, parent)

    return preexec


def identity(pid: int) -> dict[str, Any]:
    """What identifies a process beyond its pid (pids are reused): its start time."""
    try:
        return {"pid": pid, "started": psutil.Process(pid).create_time()}
    except psutil.Error:
        return {"pid": pid, "started": None}


def same_process(record: dict[str, Any]) -> psutil.Process | None:
    """The live process a recorded :func:`identity` names, or None if it is gone or reused."""
    try:
        proc = psutil.Process(int(record["pid"]))
        if record.get("started") is None or abs(proc.create_time() - record["started"]) > 0.01:
            return None
        return None if proc.status() == psutil.STATUS_ZOMBIE else proc
    except (psutil.Error, KeyError, TypeError, ValueError):
        return None


def kill_leftover(name: str, record: dict[str, Any], term_first: bool, timeout: float) -> None:
    """Stop a child a killed supervisor left behind (its whole process group).

    Redis gets SIGTERM first so it writes its files; the others are SIGKILLed at once, which
    the pipelines are built to survive (a killed worker loses nothing, duplicates nothing).
    """
    proc = same_process(record)
    if proc is None:
        return
    log.warning("leftover_child", child=name, pid=proc.pid)
    group = _members(proc)
    if term_first:
        with contextlib.suppress(psutil.Error):
            proc.send_signal(signal.SIGCONT)  # a stopped process cannot act on SIGTERM
            proc.terminate()
        _gone, alive = psutil.wait_procs([proc], timeout=timeout)
        group = [p for p in group if p.is_running()] if alive else []
    for p in group:
        with contextlib.suppress(psutil.Error):
            p.kill()
    psutil.wait_procs(group, timeout=timeout)


def _members(proc: psutil.Process) -> list[psutil.Process]:
    """The process and everything in its process group (a worker and its pool)."""
    try:
        pgid = os.getpgid(proc.pid)
    except OSError:
        return [proc]
    found = [proc]
    for p in psutil.process_iter():
        with contextlib.suppress(psutil.Error, OSError):
            if p.pid != proc.pid and os.getpgid(p.pid) == pgid:
                found.append(p)
    return found


def signal_pid(pid: int | None, sig: signal.Signals) -> None:
    """Send ``sig`` to one process (not its group), ignoring one that is already gone."""
    if pid is not None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


def signal_group(pid: int | None, sig: signal.Signals) -> None:
    """Send ``sig`` to the process group led by ``pid``, ignoring one that is already gone."""
    if pid is not None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, sig)
