"""Idle cores a worker may borrow to embed: one ``flock`` per core, shared by the host.

A worker process embeds with ``embedding.worker_threads`` threads (1 by default, so N busy
workers leave the cores to each other and to the bot). A worker that embeds *alone*, such as
one user's imported backlog, may use the idle cores too (up to ``embedding.worker_max_threads``
threads in all):

* a busy worker holds one slot, its own core, from the start of a task to its end
  (:meth:`Borrowing.task`); a worker that finds none free while some are only lent waits
  briefly for one, and flags that it waits (with every slot owned, as with more workers than
  cores, it goes on at once with its own threads);
* before each engine call a worker takes as many of the other free slots as it may use, unless
  someone waits, and gives them back after the call (tens of ms).

So two busy workers each hold one core and borrow nothing, and a lone one uses them all. A slot
is an exclusive ``flock`` on a file of a per-user directory under the system temp dir. The
kernel drops a lock when its process dies, even by ``kill -9``, so no slot is ever leaked. If
the directory cannot be used, nothing is borrowed.
"""

from __future__ import annotations

import fcntl
import os
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from memlane.logging import get_logger

log = get_logger(__name__)

OWN_WAIT_S = 0.5  # at a task's start, wait this long for a core held by a borrower
POLL_S = 0.002


def host_cores() -> int:
    """The cores this process may run on (its CPU affinity, else the CPU count)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def default_directory() -> Path:
    """``<tmp>/memlane-cores-<uid>``: one set of slots per user and host."""
    return Path(tempfile.gettempdir()) / f"memlane-cores-{os.getuid()}"


class CoreSlots:
    """``count`` slots (one per core) and a flag for workers waiting for one."""

    def __init__(self, count: int | None = None, directory: Path | None = None) -> None:
        self.count = count or host_cores()
        self.directory = directory or default_directory()
        self.usable = True

    def _open(self, name: str) -> int | None:
        if not self.usable:
            return None
        try:
            self.directory.mkdir(mode=0o700, exist_ok=True)
            return os.open(self.directory / name, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as e:
            log.warning("core_slots_unusable", directory=str(self.directory), error=str(e))
            self.usable = False
            return None

    def _try(self, name: str) -> int | None:
        """An exclusive lock on ``name`` without waiting: its descriptor, or None."""
        fd = self._open(name)
        if fd is None:
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
        except OSError:
            os.close(fd)
            return None

    def grab(self, want: int, own: bool = False) -> list[int]:
        """Lock up to ``want`` free slots without waiting; their descriptors.

        ``own``: the slot is a worker's own core for a task, marked by a second lock
        (``own-N``), so a worker starting a task can tell a lent core from an owned one.
        """
        held: list[int] = []
        taken = 0
        for i in range(self.count):
            if taken >= want or not self.usable:
                break
            fd = self._try(f"core-{i}")
            if fd is None:
                continue
            held.append(fd)
            taken += 1
            mark = self._try(f"own-{i}") if own else None
            if mark is not None:
                held.append(mark)
        return held

    @staticmethod
    def release(fds: list[int]) -> None:
        """Unlock and close slots taken by :meth:`grab`."""
        for fd in fds:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def lent_out(self) -> bool:
        """True if some slot is held by a borrower (taken, but no worker's own core)."""
        for i in range(self.count):
            free = self._try(f"core-{i}")
            if free is not None:
                CoreSlots.release([free])
                continue
            unowned = self._try(f"own-{i}")
            if unowned is not None:
                CoreSlots.release([unowned])
                return True
        return False

    def grab_waiting(self, wait_s: float) -> list[int]:
        """An own slot; if every slot is taken and some are only lent, wait up to ``wait_s``
        for a borrower to give one back (flagged, so borrowers take no more meanwhile). With
        every slot owned by busy workers (more workers than cores) it does not wait."""
        held = self.grab(1, own=True)
        if held or not self.lent_out():
            return held
        flag = self._open("waiting")
        if flag is None:
            return held
        try:
            fcntl.flock(flag, fcntl.LOCK_SH)  # borrowers see it and take nothing more
            deadline = time.monotonic() + wait_s
            while not held and time.monotonic() < deadline:
                time.sleep(POLL_S)
                held = self.grab(1, own=True)
                if not held and not self.lent_out():
                    break
            return held
        finally:
            fcntl.flock(flag, fcntl.LOCK_UN)
            os.close(flag)

    def someone_waits(self) -> bool:
        """True while another worker waits for a slot (:meth:`grab_waiting`)."""
        flag = self._open("waiting")
        if flag is None:
            return True
        try:
            fcntl.flock(flag, fcntl.LOCK_EX | fcntl.LOCK_NB)
            fcntl.flock(flag, fcntl.LOCK_UN)
            return False
        except OSError:
            return True
        finally:
            os.close(flag)


class Borrowing:
    """A worker process's policy: embed with ``floor`` threads, up to ``most`` on idle cores."""

    def __init__(self, floor: int, most: int, slots: CoreSlots | None = None) -> None:
        self.floor = floor
        self.most = max(floor, most)
        self.slots = slots or CoreSlots()
        self._own: list[int] = []
        self._in_task = False

    @contextmanager
    def task(self) -> Iterator[None]:
        """Hold this worker's own core for one task (see the module's doc)."""
        self.begin_task()
        try:
            yield
        finally:
            self.end_task()

    def begin_task(self) -> None:
        """Take this worker's own core for the task that starts (waiting briefly for one)."""
        self._in_task = True
        if not self._own:
            self._own = self.slots.grab_waiting(OWN_WAIT_S)

    def end_task(self) -> None:
        """Give this worker's core back: the task ended."""
        self._in_task = False
        CoreSlots.release(self._own)
        self._own = []

    @contextmanager
    def threads(self) -> Iterator[int]:
        """The thread count for one engine call; borrowed slots are held until it ends."""
        if self._in_task and not self._own:
            self._own = self.slots.grab(1, own=True)  # a core came free since the task began
        own = 1 if self._own else 0
        want = min(self.most, self.slots.count) - own
        extra = self.slots.grab(want) if want > 0 and not self.slots.someone_waits() else []
        try:
            yield max(self.floor, own + len(extra))
        finally:
            CoreSlots.release(extra)


_policy: Borrowing | None = None


def borrow_idle_cores(floor: int, most: int) -> Borrowing | None:
    """Let this process (a worker; its pool children inherit it) borrow idle cores to embed.

    ``most <= floor`` turns borrowing off. Returns the policy in force.
    """
    global _policy
    _policy = Borrowing(floor, most) if most > floor else None
    return _policy


def borrowing() -> Borrowing | None:
    """The process's borrowing policy, or None (a client process, or borrowing off)."""
    return _policy
