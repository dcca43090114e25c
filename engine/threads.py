"""One BLAS thread while a request is answered.

A recommendation multiplies small matrices (a few hundred candidates by a history of at
most ``history_length`` items). OpenBLAS splits even those over all its threads, and on a
machine whose cores are busy the product then waits for threads to be scheduled: measured
at load 12 on 2 cores, a (230 x 384) @ (384 x 50) product took 32 ms p50 with the default
threads and 0.2 ms with one. :func:`one_blas_thread` holds BLAS at one thread for the
block. The limit is process-wide (BLAS has no per-thread setting, and threadpoolctl lets
only the thread that set a limit restore it), so of overlapping blocks (requests answered
on several threads) the first sets it and restores it when it ends; the others run under
it meanwhile, except that a BLAS threaded with OpenMP counts threads per calling thread, so
each block limits that one on its own thread. Without ``threadpoolctl`` it does nothing.
"""

from __future__ import annotations

import contextlib
import sys
import threading
from collections.abc import Iterator
from typing import Any

__all__ = ["one_blas_thread"]

_lock = threading.Lock()
_held = False  # a block (on some thread) holds the limit


_found: tuple[int, Any] = (-1, None)  # (len(sys.modules) when scanned, the controller)


def _controller() -> Any:
    """A threadpoolctl controller of the BLAS libraries loaded now.

    Scanning the loaded libraries costs a few ms, so it is redone only when modules were
    imported since the last scan: a BLAS library (torch's, faiss's, ...) arrives only with an
    import, and one loaded after the first request must be limited too.
    """
    global _found
    loaded = len(sys.modules)
    if _found[0] != loaded:
        try:
            from threadpoolctl import ThreadpoolController
        except ImportError:
            _found = (loaded, None)
        else:
            _found = (len(sys.modules), ThreadpoolController())
    return _found[1]


def _claim() -> bool:
    global _held
    with _lock:
        if _held:
            return False
        _held = True
        return True


def _release() -> None:
    global _held
    with _lock:
        _held = False


@contextlib.contextmanager
def one_blas_thread() -> Iterator[None]:
    """BLAS on one thread for the block (see the module docstring)."""
    controller = _controller()
    if controller is None:
        yield
        return
    if not _claim():
        # another block holds the process-wide limit; a BLAS threaded with OpenMP keeps its
        # thread count per calling thread, so this thread limits (and restores) its own
        with controller.select(threading_layer="openmp").limit(limits=1, user_api="blas"):
            yield
        return
    # set and restored on this thread, by the libraries' own calls: what controller.limit does,
    # without its object and its info() of every library (~0.04 ms a request, against ~0.01)
    blas = [library for library in controller.lib_controllers if library.user_api == "blas"]
    try:
        before = [library.get_num_threads() for library in blas]
        for library in blas:
            library.set_num_threads(1)
        try:
            yield
        finally:
            for library, threads in zip(blas, before, strict=True):
                library.set_num_threads(threads)
    finally:
        _release()
