"""numpy's BLAS on one thread around memlane's own matrix products (``threadpoolctl``).

OpenBLAS runs a product above a small size on a thread per core, and its threads then spin for
a while waiting for more work. The local model's OpenMP threads run right after (the next
query's embedding) and share the cores with them: on the 2-core development machine a query
embedding took 31 ms instead of 10, and ``retrieve`` p50 40 ms instead of 19 (2,000 memories).
memlane's products are small (a user's vectors times one query: 2,000 x 384 takes 78 us on one
thread, 23 us on two), so they run on one thread.

The BLAS thread count is process-wide: it is set to one while any memlane product runs (a
count of the callers inside, under a lock) and given back when the last one leaves.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

_lock = threading.Lock()
_inside = 0
_limiter: Any = None  # threadpoolctl's limiter while a caller is inside; it restores the count
_controller: Any = None


@contextmanager
def one_thread() -> Iterator[None]:
    """Run the block with numpy's BLAS on one thread."""
    global _inside, _limiter, _controller
    with _lock:
        if _inside == 0:
            if _controller is None:
                from threadpoolctl import ThreadpoolController

                _controller = ThreadpoolController()
            _limiter = _controller.limit(limits=1, user_api="blas")
        _inside += 1
    try:
        yield
    finally:
        with _lock:
            _inside -= 1
            if _inside == 0 and _limiter is not None:
                _limiter.restore_original_limits()
                _limiter = None
