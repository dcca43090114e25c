"""The ``memory`` store: numpy arrays in a dict, exact search, nothing persisted.

Meant for tests, notebooks and small catalogs, and the plainest reading of the store
contract. It also holds the record checks and the provenance check every built-in store
applies (:func:`validate_records`, :func:`check_provenance`), so that all of them accept
and reject the same input with the same messages.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from polyrec.contracts import (
    Collection,
    ComponentConfig,
    Event,
    EventLog,
    Hit,
    InvalidVectorError,
    ItemError,
    ProvenanceMismatchError,
    VectorRecord,
    VectorStore,
    hookimpl,
    matches,
    validate_filter,
)

__all__ = [
    "ValidBatch",
    "validate_records",
    "validate_query",
    "normalise_metadata",
    "check_provenance",
    "MemoryCollection",
    "MemoryEventLog",
    "MemoryStore",
    "register_stores",
]

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
MetadataValue = str | int | float | bool | list[str] | None


@dataclass
class ValidBatch:
    """An upsert batch that passed validation: one row per distinct id (the last one wins)."""

    ids: list[str]
    vectors: np.ndarray
    metadata: list[dict[str, MetadataValue]]


def _vector_problem(vector: Any, dim: int) -> tuple[np.ndarray | None, str | None]:
    try:
        with np.errstate(over="ignore", invalid="ignore"):  # overflow shows up as inf below
            array = np.asarray(vector, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        return None, f"vector is not numeric: {exc}"
    if array.shape != (dim,):
        return None, f"vector has shape {array.shape}, the collection holds ({dim},) vectors"
    bad = int(np.count_nonzero(~np.isfinite(array)))
    if bad:
        return None, f"vector has {bad} NaN/inf value(s) (after conversion to float32)"
    return array, None


def _metadata_value(value: Any) -> MetadataValue:
    """Return ``value`` as a plain Python scalar or ``list[str]``; raise ValueError if it cannot be."""
    if isinstance(value, np.generic):  # numpy scalars from pandas rows
        value = value.item()
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        if not INT64_MIN <= value <= INT64_MAX:
            raise ValueError(f"integer {value} does not fit in 64 bits")
        return value
    if isinstance(value, float):
        if math.isnan(value):
            raise ValueError("NaN is not a metadata value; use None for a missing value")
        return value
    if isinstance(value, list | tuple):
        elements = [element.item() if isinstance(element, np.generic) else element for element in value]
        if not all(isinstance(element, str) for element in elements):
            kinds = sorted({type(element).__name__ for element in elements if not isinstance(element, str)})
            raise ValueError(f"lists must hold only strings, this one holds {', '.join(kinds)}")
        return list(elements)
    raise ValueError(f"{type(value).__name__} is not a metadata type (str, int, float, bool, list[str] or None)")


def normalise_metadata(
    item_id: str, metadata: Mapping[str, Any], *, collection: str, plugin: str
) -> dict[str, MetadataValue]:
    """Check that metadata is flat (scalars or ``list[str]``) and return a plain copy.

    Raises :class:`ItemError` naming the item, the metadata key and the store plugin.
    """
    clean: dict[str, MetadataValue] = {}
    for key, value in metadata.items():
        if not isinstance(key, str):
            raise ItemError(item_id, repr(key), plugin, f"metadata keys must be strings (collection {collection!r})")
        try:
            clean[key] = _metadata_value(value)
        except ValueError as exc:
            raise ItemError(item_id, key, plugin, f"bad metadata value in collection {collection!r}: {exc}") from None
    return clean


def _check_record(record: VectorRecord, *, dim: int, collection: str, plugin: str) -> tuple[np.ndarray, dict]:
    vector, problem = _vector_problem(record.vector, dim)
    if problem is not None:
        raise InvalidVectorError(record.id, collection, plugin, problem)
    return vector, normalise_metadata(record.id, record.metadata, collection=collection, plugin=plugin)


def validate_records(records: Sequence[VectorRecord], *, dim: int, collection: str, plugin: str) -> ValidBatch:
    """Check a whole upsert batch before anything is written.

    Raises :class:`InvalidVectorError` (field = collection, plugin = store name) for the
    first record whose vector has the wrong shape or NaN/inf values, or :class:`ItemError`
    (field = metadata key) for unsupported metadata. Duplicate ids in one batch collapse to
    the last record.
    """
    last: dict[str, int] = {}
    for position, record in enumerate(records):
        last[record.id] = position
    batch = ValidBatch([], np.empty((0, dim), dtype=np.float32), [])
    rows: list[np.ndarray] = []
    errors: list[ItemError] = []
    for position in sorted(last.values()):
        try:
            vector, metadata = _check_record(records[position], dim=dim, collection=collection, plugin=plugin)
        except ItemError as error:
            errors.append(error)
            continue
        batch.ids.append(records[position].id)
        batch.metadata.append(metadata)
        rows.append(vector)
    if errors:
        first = errors[0]
        others = f"; {len(errors) - 1} more invalid record(s) in this batch" if len(errors) > 1 else ""
        raise type(first)(first.item_id, first.field, first.plugin, f"{first.reason}{others}; nothing was written")
    if rows:
        batch.vectors = np.stack(rows)
    return batch


def validate_query(vector: Any, dim: int, *, collection: str) -> np.ndarray:
    """A search vector as float32 ``(dim,)``; ValueError if it has another shape or NaN/inf."""
    array, problem = _vector_problem(vector, dim)
    if problem is not None:
        raise ValueError(f"search in collection {collection!r}: query {problem}")
    return array


def _describe(value: str | None) -> str:
    return "(absent)" if value is None else repr(value)


def check_provenance(
    *,
    collection: str,
    location: str,
    stored_dim: int,
    stored: Mapping[str, str],
    dim: int,
    provenance: Mapping[str, str],
    remedy: str,
) -> None:
    """Raise :class:`ProvenanceMismatchError` naming every differing key, old vs new."""
    lines = []
    if stored_dim != dim:
        lines.append(f"dim: stored {stored_dim}, configured {dim}")
    for key in sorted(set(stored) | set(provenance)):
        old, new = stored.get(key), provenance.get(key)
        if old != new:
            lines.append(f"{key!r}: stored {_describe(old)}, configured {_describe(new)}")
    if lines:
        details = "\n  ".join(lines)
        raise ProvenanceMismatchError(
            f"collection {collection!r} in {location} was built by other components than the ones "
            f"configured now:\n  {details}\nIts vectors are not comparable with new ones. {remedy}"
        )


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
            rows = rows[[matches(metadata, conditions) for metadata in self._metadata]]
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
    """Events in a list, in the order they were appended."""

    def __init__(self) -> None:
        self._events: list[Event] = []

    def append(self, events: Sequence[Event]) -> None:
        self._events.extend(event if isinstance(event, Event) else Event.model_validate(event) for event in events)

    def read(self, user: str | None = None) -> list[Event]:
        return [event for event in self._events if user is None or event.user == user]

    def count(self) -> int:
        return len(self._events)


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
