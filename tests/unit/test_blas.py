"""memlane's matrix products run with numpy's BLAS on one thread, and give the count back."""

from __future__ import annotations

import threading

import numpy as np
from threadpoolctl import threadpool_info, threadpool_limits

from memlane.blas import one_thread
from memlane.store.vectors import normalise_rows, top_k


def blas_threads() -> set[int]:
    return {int(i["num_threads"]) for i in threadpool_info() if i["user_api"] == "blas"}


def test_one_thread_inside_and_the_callers_count_after() -> None:
    with threadpool_limits(limits=2, user_api="blas"):
        assert blas_threads() == {2}
        with one_thread():
            assert blas_threads() == {1}
            with one_thread():  # nested (or another thread inside at the same time)
                assert blas_threads() == {1}
            assert blas_threads() == {1}  # still one: the outer caller is inside
        assert blas_threads() == {2}


def test_concurrent_callers_leave_the_count_as_they_found_it() -> None:
    m = normalise_rows(np.random.default_rng(0).random((3000, 384), dtype=np.float32))
    q = m[7]
    with threadpool_limits(limits=2, user_api="blas"):
        errors: list[BaseException] = []

        def search() -> None:
            try:
                for _ in range(50):
                    assert top_k(m, q, 1)[0][0] == 7
            except BaseException as e:  # noqa: BLE001 - reported below
                errors.append(e)

        threads = [threading.Thread(target=search) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == [] and blas_threads() == {2}
