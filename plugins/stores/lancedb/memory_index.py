"""An in-memory ANN index (faiss) that serves a collection's unfiltered searches.

Why it exists: every LanceDB query pays a fixed cost before it scans anything (planning,
reading the result rows, the hop into its runtime): about 3-4 ms on a 2-core machine, so a
top-10 search over 100k x 384 rows takes 8-14 ms at useful recall, and the engine's top-200
candidate retrieval 35 ms. faiss answers the same searches from memory in about a
millisecond, with exact inner-product scores. LanceDB stays the store of record; this
index is a cache of it (vectors, ids and metadata JSON), rebuilt from the table whenever it
may be stale.

Below ``exact_below`` rows the index is exact: a flat inner-product scan of the live rows in
label order by :func:`~.flat_scan.top_inner_products`, the kernel the read snapshot calls too,
so both rank alike by construction (same scores bit for bit, same order of ties). From there on it
is IVF with 8-bit scalar-quantised codes: about sqrt(rows) k-means partitions (trained on a
seeded sample), of which a search probes as many as the caller asks. The scan reads one byte
per dimension instead of four (it is bound by memory bandwidth: at 100k x 384 a probe depth
that reaches a 200-candidate pool took 6.5 ms over float32 codes, 3.6 ms over 8-bit ones), and
``REFINE`` times the rows asked for are re-scored exactly from a float32 copy of the vectors,
so the scores returned are exact inner products and ``get`` returns the stored vectors
bit for bit. Memory: ``dim * 5`` bytes per row (``dim * 4`` while exact) plus ids and
metadata; a deleted or replaced row leaves an empty slot until the next rebuild.

Thread safety: one lock per index; faiss's own threads are left to its defaults.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from polyrec.contracts import SearchRows
from polyrec.plugins.stores.lancedb.flat_scan import top_inner_products

__all__ = ["MemoryANN"]

_MIN_TRAIN_PER_PARTITION = 39  # faiss warns below this many training points per centroid
_MAX_TRAIN_PER_PARTITION = 256  # faiss samples down to this anyway
#: rows whose decoded metadata is kept (the hot ones: those searches and gets return)
DECODED_ROWS = 200_000
#: an IVF search ranks this many times the rows asked for by their 8-bit codes, then keeps
#: the best by exact inner product
REFINE = 2


class MemoryANN:
    """Item vectors with string ids and metadata JSON, searchable by inner product.

    ``get`` returns stored vectors by id (bit-exact copies). Both ``get`` and ``search``
    return metadata decoded (a fresh dict per row): the JSON of the rows returned is parsed
    once and the result kept for the ``DECODED_ROWS`` rows most recently decoded, so a hot
    item costs no JSON parsing. A row's label is never reused, so a kept decoding never
    goes stale: a replaced row gets a new label. ``partitions(rows)`` gives the
    IVF partition count for a build over ``rows`` rows.
    ``needs_rebuild`` turns true once the rows outgrow the kind of index built (past
    ``exact_below``, or ``retrain_growth`` times the rows an IVF index was trained on).
    """

    def __init__(
        self,
        dim: int,
        *,
        exact_below: int,
        partitions: Callable[[int], int],
        retrain_growth: float,
        seed: int = 0,
    ) -> None:
        self.dim = dim
        self._exact_below, self._partitions_for, self._growth, self._seed = (
            exact_below,
            partitions,
            retrain_growth,
            seed,
        )
        self._lock = threading.Lock()
        self._slot: dict[str, int] = {}  # item id -> faiss label
        self._ids: list[str | None] = []  # faiss label -> item id (None once deleted)
        self._metadata: list[str | None] = []  # faiss label -> metadata JSON
        self._decoded: dict[int, dict[str, Any]] = {}  # faiss label -> decoded metadata (hot rows)
        self._index: Any = None  # faiss IVF; None while exact
        # label -> float32 vector (the exact scan's rows; an IVF index's codes are 8-bit); rows
        # past len(self._ids) are spare capacity, so that upserts append without copying every time
        self._vectors = np.empty((0, dim), np.float32)
        self._live: tuple[np.ndarray, np.ndarray] | None = None  # exact: live rows and labels, once deletes left holes
        self.partitions = 0  # 0: exact
        self.trained_rows = 0

    def __len__(self) -> int:
        return len(self._slot)

    @property
    def needs_rebuild(self) -> bool:
        rows = len(self._slot)
        if self.partitions == 0:
            return rows >= self._exact_below
        return rows >= self._growth * self.trained_rows

    def rebuild(self, ids: Sequence[str], vectors: np.ndarray, metadata: Sequence[str]) -> None:
        """Replace the whole content (one row per id; ids unique)."""
        vectors = np.ascontiguousarray(vectors, dtype=np.float32).reshape(-1, self.dim)
        rows = len(ids)
        index: Any = None
        partitions = 0
        if rows >= self._exact_below:
            import faiss

            partitions = max(1, min(int(self._partitions_for(rows)), rows // _MIN_TRAIN_PER_PARTITION))
            index = faiss.IndexIVFScalarQuantizer(
                faiss.IndexFlatIP(self.dim),
                self.dim,
                partitions,
                faiss.ScalarQuantizer.QT_8bit,
                faiss.METRIC_INNER_PRODUCT,
            )
            index.set_direct_map_type(faiss.DirectMap.Hashtable)  # label -> list entry: cheap removals
            index.cp.seed = self._seed
            rng = np.random.default_rng(self._seed)
            sample = min(rows, _MAX_TRAIN_PER_PARTITION * partitions)
            index.train(vectors[np.sort(rng.choice(rows, sample, replace=False))])
        if rows and index is not None:
            index.add_with_ids(vectors, np.arange(rows, dtype=np.int64))
        with self._lock:
            self._index, self.partitions, self.trained_rows = index, partitions, rows
            self._vectors, self._live = vectors, None
            self._ids, self._metadata = list(ids), list(metadata)
            self._decoded = {}
            self._slot = {item_id: label for label, item_id in enumerate(self._ids)}

    def upsert(self, ids: Sequence[str], vectors: np.ndarray, metadata: Sequence[str]) -> None:
        """Add rows, replacing those with the same id (ids unique within the call)."""
        vectors = np.ascontiguousarray(vectors, dtype=np.float32).reshape(-1, self.dim)
        with self._lock:
            self._remove_locked(ids)
            labels = np.arange(len(self._ids), len(self._ids) + len(ids), dtype=np.int64)
            self._store_vectors_locked(len(self._ids), vectors)
            self._ids.extend(ids)
            self._metadata.extend(metadata)
            self._slot.update(zip(ids, labels.tolist(), strict=True))
            if len(ids) and self._index is not None:
                self._index.add_with_ids(vectors, labels)
            self._live = None

    def _store_vectors_locked(self, start: int, vectors: np.ndarray) -> None:
        end = start + len(vectors)
        if end > len(self._vectors) or not self._vectors.flags.writeable:  # grow by half: amortised appends
            grown = np.empty((max(end, len(self._vectors) * 3 // 2), self.dim), np.float32)
            grown[:start] = self._vectors[:start]
            self._vectors = grown
        self._vectors[start:end] = vectors

    def _vectors_locked(self, labels: np.ndarray) -> np.ndarray:
        if not len(labels):
            return np.empty((0, self.dim), np.float32)
        return self._vectors[labels]  # fancy indexing: a copy

    def delete(self, ids: Sequence[str]) -> None:
        with self._lock:
            self._remove_locked(ids)

    def _remove_locked(self, ids: Sequence[str]) -> None:
        labels = [self._slot.pop(item_id) for item_id in dict.fromkeys(ids) if item_id in self._slot]
        if not labels:
            return
        for label in labels:
            self._ids[label] = self._metadata[label] = None
            self._decoded.pop(label, None)
        self._live = None
        if self._index is not None:
            import faiss

            array = np.asarray(labels, dtype=np.int64)  # the only selector a hashtable direct map takes
            self._index.remove_ids(faiss.IDSelectorArray(len(array), faiss.swig_ptr(array)))

    def _decoded_locked(self, labels: Sequence[int]) -> list[dict[str, Any]]:
        out = []
        for label in labels:
            decoded = self._decoded.get(label)
            if decoded is None:
                decoded = self._decoded[label] = json.loads(self._metadata[label])  # type: ignore[arg-type]
            out.append(dict(decoded))  # a copy: callers may change theirs
        while len(self._decoded) > DECODED_ROWS:  # drop the oldest decodings (dicts keep insertion order)
            del self._decoded[next(iter(self._decoded))]
        return out

    def get(self, ids: Sequence[str]) -> tuple[list[str], np.ndarray, list[dict[str, Any]]]:
        """The rows of those ``ids`` that exist, in the order asked: ids, vectors, metadata."""
        with self._lock:
            found = [item_id for item_id in ids if item_id in self._slot]
            labels = np.fromiter((self._slot[item_id] for item_id in found), np.int64, count=len(found))
            vectors = self._vectors_locked(labels)
            metadata = self._decoded_locked(labels.tolist())
        return found, vectors, metadata

    def labels(self, ids: Sequence[str]) -> Any:
        """The live rows among ``ids`` for a filtered :meth:`search`, and how many there are: a
        faiss selector, or while exact their labels in order (right until the next rebuild:
        labels are not reused)."""
        with self._lock:
            labels = np.fromiter((self._slot[i] for i in ids if i in self._slot), np.int64)
            exact = self._index is None
        if exact:
            return np.unique(labels), len(labels)
        import faiss

        return faiss.IDSelectorBatch(labels), len(labels)

    def search(
        self, query: np.ndarray, k: int, nprobes: int, allowed: tuple[Any, int] | None = None
    ) -> tuple[list[str], np.ndarray, list[dict[str, Any]]]:
        """The top ``k`` rows by inner product, best first: ids, scores, metadata; only rows of
        ``allowed`` (from :meth:`labels`) when given."""
        ids, scores, metadata, _ = self._top(query, k, nprobes, allowed, with_vectors=False)
        return ids, scores, metadata

    def search_rows(
        self, query: np.ndarray, k: int, nprobes: int, allowed: tuple[Any, int] | None = None
    ) -> SearchRows:
        """:meth:`search` with the rows' vectors, read under the same lock (so they match the ids)."""
        ids, scores, metadata, vectors = self._top(query, k, nprobes, allowed, with_vectors=True)
        return SearchRows(ids, scores, vectors, metadata)  # type: ignore[arg-type]

    def _top(
        self, query: np.ndarray, k: int, nprobes: int, allowed: tuple[Any, int] | None, with_vectors: bool
    ) -> tuple[list[str], np.ndarray, list[dict[str, Any]], np.ndarray]:
        query = np.ascontiguousarray(query, dtype=np.float32).reshape(1, self.dim)
        selector, count = allowed if allowed is not None else (None, len(self._slot))
        with self._lock:
            k = min(k, len(self._slot), count)
            if k <= 0:
                return [], np.empty(0), [], np.empty((0, self.dim), np.float32)
            scores, labels, vectors = self._ranked_locked(query, k, nprobes, selector)
            ids = [self._ids[label] for label in labels]
            metadata = self._decoded_locked(labels.tolist())
            if with_vectors and vectors is None:
                vectors = self._vectors_locked(labels)
        if not with_vectors or vectors is None:
            vectors = np.empty((0, self.dim), np.float32)
        return ids, scores, metadata, vectors  # type: ignore[return-value]  # live labels only

    def _ranked_locked(
        self, query: np.ndarray, k: int, nprobes: int, selector: Any
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """The top ``k`` live labels with exact scores, best first, and their vectors when the
        exact re-scoring read them anyway."""
        if self._index is None:
            scores, labels = self._exact_locked(query[0], k, selector)
            return scores.astype(np.float64), labels, None
        fetch = min(REFINE * k, len(self._slot))
        scores, labels = self._search_locked(query, fetch, nprobes, selector)
        found = labels[0] >= 0
        if found.sum() < k and nprobes < self.partitions:  # too few rows in the probed partitions
            scores, labels = self._search_locked(query, fetch, self.partitions, selector)
            found = labels[0] >= 0
        labels, scores = labels[0][found], scores[0][found]
        vectors = self._vectors[labels]
        exact = vectors @ query[0]
        top = np.argsort(-exact, kind="stable")[:k]  # ties: the codes' order
        return exact[top].astype(np.float64), labels[top], vectors[top]

    def _exact_locked(self, query: np.ndarray, k: int, allowed: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """Exact top ``k``: the live rows (of ``allowed`` labels) scanned in label order."""
        if allowed is not None:
            labels = allowed[[self._ids[label] is not None for label in allowed.tolist()]]
            scores, rows = top_inner_products(self._vectors[labels], query, k)
            return scores, labels[rows]
        used = len(self._ids)
        if used == len(self._slot):  # no deletes since the rebuild: the rows are the labels
            return top_inner_products(self._vectors[:used], query, k)
        if self._live is None:  # compacted once per write, not per search
            labels = np.flatnonzero([item_id is not None for item_id in self._ids])
            self._live = (self._vectors[labels], labels)
        vectors, labels = self._live
        scores, rows = top_inner_products(vectors, query, k)
        return scores, labels[rows]

    def _search_locked(
        self, query: np.ndarray, k: int, nprobes: int, selector: Any = None
    ) -> tuple[np.ndarray, np.ndarray]:
        import faiss

        params = faiss.SearchParametersIVF(nprobe=min(nprobes, self.partitions))
        if selector is not None:
            params.sel = selector
        return self._index.search(query, k, params=params)
