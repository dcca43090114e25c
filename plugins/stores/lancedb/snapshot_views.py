"""A collection and an event log that read from the read snapshot while it is current.

Each read first asks whether its table is still at the snapshot's manifest
(:mod:`~polyrec.plugins.stores.lancedb.snapshot`). Once it is not, or at the first write or
any call the snapshot cannot answer (index upkeep, bulk writes, ...), the object opens its
LanceDB table (``open_full``) and hands everything to it from then on.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from polyrec.contracts import Collection, Event, EventLog, Hit, SearchRows, VectorRecord, matches, validate_filter
from polyrec.plugins.stores.checks import validate_query
from polyrec.plugins.stores.lancedb.flat_scan import top_inner_products
from polyrec.plugins.stores.lancedb.snapshot import CollectionRows, EventRows

__all__ = ["SnapshotCollection", "SnapshotEventLog"]

_FILTERS_KEPT = 64  # filters whose passing rows a collection keeps


class _FullWhenNeeded:
    """Reads from the snapshot while it is current; the LanceDB object for everything else."""

    def __init__(self, watch: Any, open_full: Callable[[], Any]) -> None:
        self._watch, self._open_full = watch, open_full
        self._full: Any = None
        self._lock = threading.Lock()

    def _lance(self) -> Any:
        with self._lock:
            if self._full is None:
                self._full = self._open_full()
            return self._full

    def _fresh(self) -> bool:
        """True while reads may come from the snapshot (never again once it went stale)."""
        if self._full is not None:
            return False
        if self._watch.current():
            return True
        self._lance()
        return False

    def __getattr__(self, name: str) -> Any:
        # what the snapshot does not offer (index_info, bulk_writer, ...): ask the LanceDB object
        if name.startswith("__") or name in {"_watch", "_open_full", "_full", "_lock", "_passing", "_rows"}:
            raise AttributeError(name)
        return getattr(self._lance(), name)


class SnapshotCollection(_FullWhenNeeded, Collection):
    """A collection read from the snapshot (see the module docstring)."""

    def __init__(self, rows: CollectionRows, open_full: Callable[[], Collection]) -> None:
        super().__init__(rows.watch, open_full)
        self.name, self.dim, self.provenance = rows.name, rows.dim, dict(rows.provenance)
        self._rows = rows
        self._passing: OrderedDict[str, np.ndarray] = OrderedDict()

    # -- writes: LanceDB's --

    def upsert(self, records: Sequence[VectorRecord]) -> None:
        self._lance().upsert(records)

    def delete(self, ids: Sequence[str]) -> int:
        return int(self._lance().delete(ids))

    def erase(self, ids: Sequence[str]) -> int:
        return int(self._lance().erase(ids))

    def create_index(self) -> bool:
        return bool(self._lance().create_index())

    def bulk_writer(self) -> Any:
        return self._lance().bulk_writer()

    def commit_bulk(self, receipts: Sequence[Any], replaced: Sequence[str]) -> None:
        self._lance().commit_bulk(receipts, replaced)

    # -- reads --

    def _records(self, rows: Sequence[int]) -> list[VectorRecord]:
        vectors = self._rows.vectors[np.asarray(rows, dtype=np.int64)]  # a copy, as LanceDB's reads are
        return [
            VectorRecord.model_construct(id=self._rows.ids[row], vector=vectors[n], metadata=self._rows.metadata(row))
            for n, row in enumerate(rows)
        ]

    def get(self, ids: Sequence[str]) -> list[VectorRecord]:
        if not self._fresh():
            return self._full.get(ids)
        if not ids:
            return []
        row_of = self._rows.row_of()
        return self._records([row_of[item_id] for item_id in ids if item_id in row_of])

    def search(self, vector: np.ndarray, k: int, filter: Mapping[str, Any] | None = None) -> list[Hit]:
        if not self._fresh():
            return self._full.search(vector, k, filter)
        scores, found = self._top(vector, k, filter)
        return [
            Hit.model_construct(id=self._rows.ids[row], score=float(score), metadata=self._rows.metadata(row))
            for row, score in zip(found.tolist(), scores.tolist(), strict=True)
        ]

    def search_rows(self, vector: np.ndarray, k: int, filter: Mapping[str, Any] | None = None) -> SearchRows:
        """:meth:`search` as columns with the rows' vectors, read from the snapshot's arrays: no
        hit or record object per row (the base class's search-then-get built two per candidate,
        ~4x the call at 2,000 items)."""
        if not self._fresh():
            return self._full.search_rows(vector, k, filter)
        scores, found = self._top(vector, k, filter)
        rows = found.tolist()
        return SearchRows(
            [self._rows.ids[row] for row in rows],
            scores.astype(np.float64),
            self._rows.vectors[found],  # a copy, as LanceDB's reads are
            [self._rows.metadata(row) for row in rows],
        )

    def _top(self, vector: np.ndarray, k: int, filter: Mapping[str, Any] | None) -> tuple[np.ndarray, np.ndarray]:
        """Scores and rows of the top ``k`` passing rows, best first."""
        query = validate_query(vector, self.dim, collection=self.name)
        if k <= 0:
            return np.empty(0, np.float32), np.empty(0, np.int64)
        # faiss's flat kernel without ``import faiss`` (a tenth of a one-shot command): what
        # LanceCollection's exact in-memory index returns, scores and order of ties alike (see flat_scan)
        passing = None if not validate_filter(filter) else self._passing_rows(filter)
        vectors = self._rows.vectors if passing is None else self._rows.vectors[passing]
        scores, rows = top_inner_products(vectors, query, k)
        return scores, rows if passing is None else passing[rows]

    def _passing_rows(self, filter: Mapping[str, Any]) -> np.ndarray:
        """The rows ``filter`` passes (ascending), kept for the last filters asked."""
        normal = validate_filter(filter)
        key = json.dumps(normal, sort_keys=True, default=repr)
        with self._lock:
            found = self._passing.get(key)
            if found is not None:
                self._passing.move_to_end(key)
                return found
        rows = self._rows
        found = np.fromiter((row for row in range(len(rows.ids)) if matches(rows.metadata(row), normal)), np.int64)
        with self._lock:
            self._passing[key] = found
            while len(self._passing) > _FILTERS_KEPT:
                self._passing.popitem(last=False)
        return found

    def count(self) -> int:
        return len(self._rows.ids) if self._fresh() else int(self._full.count())

    def scan(self, batch_size: int = 10_000) -> Iterator[list[VectorRecord]]:
        if batch_size <= 0:
            raise ValueError("batch_size must be positive")
        if not self._fresh():
            yield from self._full.scan(batch_size)
            return
        total = len(self._rows.ids)
        for start in range(0, total, batch_size):
            yield self._records(range(start, min(start + batch_size, total)))


class SnapshotEventLog(_FullWhenNeeded, EventLog):
    """The event log read from the snapshot (see the module docstring)."""

    def __init__(self, rows: EventRows, open_full: Callable[[], EventLog]) -> None:
        super().__init__(rows.watch, open_full)
        self._rows = rows

    def append(self, events: Sequence[Event]) -> int | None:
        return self._lance().append(events)

    def erase_user(self, user: str) -> int:
        return int(self._lance().erase_user(user))

    def read(self, user: str | None = None) -> list[Event]:
        if not self._fresh():
            return self._full.read(user)
        rows, log = self._rows.rows_of(user), self._rows
        users, items, kinds, ids = log.users, log.items, log.kinds, log.ids
        user_codes, item_codes = log.user_codes[rows].tolist(), log.item_codes[rows].tolist()
        kind_codes, values, stamps = log.kind_codes[rows].tolist(), log.values[rows].tolist(), log.timestamps[rows]
        return [
            Event.model_construct(user=users[u], item=items[i], kind=kinds[k], value=v, timestamp=t, id=ids[row])
            for row, u, i, k, v, t in zip(rows.tolist(), user_codes, item_codes, kind_codes, values, stamps.tolist())
        ]

    def count(self) -> int:
        return len(self._rows) if self._fresh() else int(self._full.count())

    def users(self) -> list[str]:
        if not self._fresh():
            return list(self._full.users())
        present = np.unique(self._rows.user_codes)
        return sorted(self._rows.users[code] for code in present.tolist())

    def item_counts(self) -> dict[str, int]:
        if not self._fresh():
            return dict(self._full.item_counts())
        counts = np.bincount(self._rows.item_codes, minlength=len(self._rows.items))
        return {self._rows.items[code]: int(n) for code, n in enumerate(counts.tolist()) if n}
