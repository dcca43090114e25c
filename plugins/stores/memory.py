"""The ``memory`` store: numpy arrays in a dict, exact search, nothing persisted.

Meant for tests, notebooks and small catalogs, and the plainest reading of the store
contract. Record and provenance checks are the ones every built-in store applies
(:mod:`polyrec.plugins.stores.checks`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any, ClassVar

import numpy as np

from polyrec.contracts import (
    Collection,
    ComponentConfig,
    Event,
    EventLog,
    Hit,
    VectorRecord,
    VectorStore,
    hookimpl,
    matcher,
    validate_filter,
)
from polyrec.contracts.event_keys import event_keys
from polyrec.plugins.stores.checks import MetadataValue, check_provenance, validate_query, validate_records

__all__ = ["MemoryCollection", "MemoryEventLog", "MemoryStore", "register_stores"]


def _copy_metadata(metadata: Mapping[str, MetadataValue]) -> dict[str, MetadataValue]:
    return {key: list(value) if isinstance(value, list) else value for key, value in metadata.items()}


class MemoryCollection(Collection):
    """Vectors in one float32 matrix, rows addressed through an id -> row dict."""

    def __init__(self, name: str, dim: int, provenance: Mapping[str, str], plugin: str) -> None:
        self.name, self.dim, self.provenance, self._plugin = name, dim, dict(provenance), plugin
        self._ids: list[str] = []
        self._rows: dict[str, int] = {}
        self._vectors = np.empty((0, dim), dtype=np.float32)
        self._metadata: list[dict[str, MetadataValue]] = []

    def upsert(self, records: Sequence[VectorRecord]) -> None:
        batch = validate_records(records, dim=self.dim, collection=self.name, plugin=self._plugin)
        new_rows = []
        for position, item_id in enumerate(batch.ids):
            row = self._rows.get(item_id)
            if row is None:
                new_rows.append(position)
                continue
            self._vectors[row] = batch.vectors[position]
            self._metadata[row] = batch.metadata[position]
        for position in new_rows:
            self._rows[batch.ids[position]] = len(self._ids)
            self._ids.append(batch.ids[position])
            self._metadata.append(batch.metadata[position])
        if new_rows:
            self._vectors = np.concatenate([self._vectors, batch.vectors[new_rows]])

    def _record(self, row: int) -> VectorRecord:
        return VectorRecord(
            id=self._ids[row], vector=self._vectors[row].copy(), metadata=_copy_metadata(self._metadata[row])
        )

    def get(self, ids: Sequence[str]) -> list[VectorRecord]:
        return [self._record(self._rows[item_id]) for item_id in ids if item_id in self._rows]

    def delete(self, ids: Sequence[str]) -> int:
        doomed = {self._rows[item_id] for item_id in set(ids) if item_id in self._rows}
        if not doomed:
            return 0
        keep = [row for row in range(len(self._ids)) if row not in doomed]
        self._ids = [self._ids[row] for row in keep]
        self._metadata = [self._metadata[row] for row in keep]
        self._vectors = self._vectors[keep]
        self._rows = {item_id: row for row, item_id in enumerate(self._ids)}
        return len(doomed)

    def search(self, vector: np.ndarray, k: int, filter: Mapping[str, Any] | None = None) -> list[Hit]:
        query = validate_query(vector, self.dim, collection=self.name)
        conditions = validate_filter(filter)
        if k <= 0 or not self._ids:
            return []
        rows = np.arange(len(self._ids))
        if conditions:
            passes = matcher(conditions)  # validated once, not once per row
            rows = rows[[passes(metadata) for metadata in self._metadata]]
        scores = self._vectors[rows] @ query
        if k < len(rows):
            top = np.argpartition(-scores, k - 1)[:k]
            rows, scores = rows[top], scores[top]
        order = np.argsort(-scores, kind="stable")
        return [
            Hit(id=self._ids[row], score=float(scores[i]), metadata=_copy_metadata(self._metadata[row]))
            for i, row in ((i, rows[i]) for i in order)
        ]

    def count(self) -> int:
        return len(self._ids)

    def scan(self, batch_size: int = 10_000) -> Iterator[list[VectorRecord]]:
        if batch_size <= 0:
            raise ValueError("batch_size must be positive")
        snapshot = list(range(len(self._ids)))
        for start in range(0, len(snapshot), batch_size):
            yield [self._record(row) for row in snapshot[start : start + batch_size]]


class MemoryEventLog(EventLog):
    """Events in a list, in the order they were appended, and the set of their keys."""

    def __init__(self) -> None:
        self._events: list[Event] = []
        self._keys: list[str] = []
        self._known: set[str] = set()

    def append(self, events: Sequence[Event]) -> int:
        checked = [event if isinstance(event, Event) else Event.model_validate(event) for event in events]
        before = len(self._events)
        for event, key in zip(checked, event_keys(checked), strict=True):
            if key not in self._known:
                self._known.add(key)
                self._events.append(event)
                self._keys.append(key)
        return len(self._events) - before

    def read(self, user: str | None = None) -> list[Event]:
        return [event for event in self._events if user is None or event.user == user]

    def count(self) -> int:
        return len(self._events)

    def erase_user(self, user: str) -> int:
        kept = [(event, key) for event, key in zip(self._events, self._keys, strict=True) if event.user != user]
        erased = len(self._events) - len(kept)
        self._events, self._keys = [event for event, _ in kept], [key for _, key in kept]
        self._known = set(self._keys)
        return erased


class MemoryStore(VectorStore):
    """Exact, in-process, non-persistent store (``store = {plugin = "memory"}``)."""

    name: ClassVar[str] = "memory"
    exact: ClassVar[bool] = True

    def __init__(self, config: ComponentConfig | None = None, **params: Any) -> None:
        super().__init__(config, **params)
        self._collections: dict[str, MemoryCollection] = {}
        self._events = MemoryEventLog()

    def open(self, collection: str, *, dim: int, provenance: Mapping[str, str]) -> MemoryCollection:
        wanted = {str(key): str(value) for key, value in provenance.items()}
        existing = self._collections.get(collection)
        if existing is not None:
            check_provenance(
                collection=collection,
                location="the memory store",
                stored_dim=existing.dim,
                stored=existing.provenance,
                dim=dim,
                provenance=wanted,
                remedy="Use a new memory store (or another collection name) for the new configuration.",
            )
            return existing
        if dim <= 0:
            raise ValueError(f"collection {collection!r}: dim must be positive, got {dim}")
        opened = MemoryCollection(collection, dim, wanted, self.name)
        self._collections[collection] = opened
        return opened

    def drop(self, collection: str) -> bool:
        return self._collections.pop(collection, None) is not None

    def events(self) -> MemoryEventLog:
        return self._events

    def close(self) -> None:
        """Nothing to release; the data lives as long as this object."""


@hookimpl
def register_stores(register: Any) -> None:
    register(MemoryStore)
