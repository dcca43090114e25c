"""engine.threads.one_blas_thread: BLAS at one thread inside, the previous limits after,
also when blocks overlap (requests answered on several threads)."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from polyrec.engine.threads import one_blas_thread

threadpoolctl = pytest.importorskip("threadpoolctl")


def blas_threads() -> list[int]:
    np.ones((2, 2)) @ np.ones((2, 2))  # BLAS loaded
    return [info["num_threads"] for info in threadpoolctl.threadpool_info() if info["user_api"] == "blas"]


def test_one_thread_inside_and_the_previous_limits_after() -> None:
    before = blas_threads()
    if not before:
        pytest.skip("no BLAS library that threadpoolctl can see")
    with threadpoolctl.threadpool_limits(2, user_api="blas"):  # a known starting point
        start = blas_threads()
        with one_blas_thread():
            assert set(blas_threads()) == {1}
        assert blas_threads() == start
    assert blas_threads() == before


def test_a_block_overlapping_another_runs_under_its_limit() -> None:
    if not blas_threads():
        pytest.skip("no BLAS library that threadpoolctl can see")
    with threadpoolctl.threadpool_limits(2, user_api="blas"):
        start = blas_threads()
        inside: list[list[int]] = []
        entered, release = threading.Event(), threading.Event()

        def other_request() -> None:
            with one_blas_thread():
                entered.set()
                release.wait(10)
                inside.append(blas_threads())

        worker = threading.Thread(target=other_request)
        with one_blas_thread():
            worker.start()
            assert entered.wait(10)
            release.set()
            worker.join(10)
            assert inside == [[1] * len(start)]
        assert blas_threads() == start
        with one_blas_thread():  # the limit can be taken again once released
            assert set(blas_threads()) == {1}
        assert blas_threads() == start


def test_a_blas_library_loaded_after_the_first_block_is_limited_too() -> None:
    """A request answered before torch or faiss was imported must not leave their BLAS unlimited later."""
    import importlib

    with one_blas_thread():
        pass
    for name in ("scipy.linalg", "faiss", "torch"):  # each may bring a BLAS of its own
        try:
            importlib.import_module(name)
        except ImportError:
            continue
    if not blas_threads():
        pytest.skip("no BLAS library that threadpoolctl can see")
    with threadpoolctl.threadpool_limits(2, user_api="blas"), one_blas_thread():
        assert set(blas_threads()) == {1}
