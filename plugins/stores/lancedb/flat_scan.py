"""An exact inner-product top-k with faiss's own flat kernel, without ``import faiss`` where it can.

Why: ``import faiss`` costs about 0.1 s on a 2-core machine, most of it running the SWIG
Python layer (``swigfaiss.py`` defines some 1,500 classes), a tenth of a one-shot
``polyrec recommend``. The read snapshot's unfiltered search needs one function of it:
``faiss::knn_inner_product``, the C++ function ``IndexFlatIP.search`` runs. Called on the
same rows, in the same order, it gives what :class:`~.memory_index.MemoryANN`'s exact index
gives (labels are rows there): the same scores bit for bit and the same order of ties.

Where the installed faiss has one compiled extension (``_swigfaiss``: the wheels that pick
SIMD code at run time) it is loaded on its own, under the name faiss itself gives it, so a
later ``import faiss`` finds and reuses it. A faiss with per-CPU variants of the extension
(``swigfaiss_avx2.py``, ...), among which faiss's loader chooses, is imported as usual, as
is any faiss this loading fails on.
"""

from __future__ import annotations

import importlib.util
import sys
import threading
from pathlib import Path
from types import ModuleType

import numpy as np

__all__ = ["top_inner_products"]

_EXTENSION = "faiss._swigfaiss"
_lock = threading.Lock()


def _load_kernel() -> ModuleType:
    """A module with faiss's ``knn_inner_product`` and ``swig_ptr``: faiss's extension alone when possible."""
    with _lock:
        if "faiss" in sys.modules:
            return sys.modules["faiss"]
        if _EXTENSION in sys.modules:
            return sys.modules[_EXTENSION]
        try:
            return _extension_alone()
        except Exception:  # an unexpected faiss layout: the whole package, as MemoryANN does
            sys.modules.pop(_EXTENSION, None)
        import faiss

        return faiss


def _extension_alone() -> ModuleType:
    spec = importlib.util.find_spec("faiss")  # finds the package without running its __init__
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("faiss is not installed")
    folder = Path(next(iter(spec.submodule_search_locations)))
    if any(folder.glob("swigfaiss_*.py")):  # per-CPU variants: faiss's loader chooses
        raise ImportError("faiss has per-CPU extensions")
    found = sorted(folder.glob("_swigfaiss.*so")) + sorted(folder.glob("_swigfaiss.*pyd"))
    if len(found) != 1:
        raise ImportError(f"expected one faiss extension in {folder}, found {len(found)}")
    extension = importlib.util.spec_from_file_location(_EXTENSION, found[0])
    if extension is None or extension.loader is None:
        raise ImportError(f"cannot load {found[0]}")
    module = importlib.util.module_from_spec(extension)
    sys.modules[_EXTENSION] = module  # where faiss's swigfaiss.py looks for it (``from . import _swigfaiss``)
    extension.loader.exec_module(module)
    if not (callable(getattr(module, "knn_inner_product", None)) and callable(getattr(module, "swig_ptr", None))):
        raise ImportError("the faiss extension has no knn_inner_product")
    return module


def top_inner_products(vectors: np.ndarray, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` rows of ``vectors`` (float32, ``(n, d)``, C order) with the largest inner product
    with ``query`` (``(d,)``), best first, as faiss's exact flat index ranks them: scores
    (float32) and row numbers (int64)."""
    query = np.ascontiguousarray(query, dtype=np.float32).reshape(1, -1)
    dim = query.shape[1]
    vectors = np.ascontiguousarray(vectors, dtype=np.float32).reshape(-1, dim)
    rows = vectors.shape[0]
    k = min(int(k), rows)
    if k <= 0:
        return np.empty(0, np.float32), np.empty(0, np.int64)
    scores, labels = np.empty((1, k), np.float32), np.empty((1, k), np.int64)
    kernel = _load_kernel()
    ptr = kernel.swig_ptr
    kernel.knn_inner_product(ptr(query), ptr(vectors), dim, 1, rows, k, ptr(scores), ptr(labels), None)
    found = labels[0] >= 0
    return scores[0][found], labels[0][found]
