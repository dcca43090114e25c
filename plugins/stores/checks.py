"""The record checks and the provenance check every built-in store applies.

Kept in one place so that all built-in stores accept and reject the same input with the
same messages.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from polyrec.contracts import InvalidVectorError, ItemError, ProvenanceMismatchError, VectorRecord

__all__ = [
    "MetadataValue",
    "ValidBatch",
    "check_provenance",
    "normalise_metadata",
    "validate_query",
    "validate_records",
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


def _all_valid(
    records: Sequence[VectorRecord], positions: list[int], *, dim: int, collection: str, plugin: str
) -> ValidBatch | None:
    """The batch when every vector is already a finite float32 ``(dim,)`` array (what the engine
    writes), checked as one matrix; None sends the batch through the record-by-record checks,
    which name the first bad record (a large ingest spent a third of its Python time there)."""
    vectors = [records[position].vector for position in positions]
    if not vectors or not all(
        type(vector) is np.ndarray and vector.dtype == np.float32 and vector.shape == (dim,) for vector in vectors
    ):
        return None
    matrix = np.stack(vectors)
    if not np.isfinite(matrix).all():
        return None
    try:
        metadata = [
            normalise_metadata(records[position].id, records[position].metadata, collection=collection, plugin=plugin)
            for position in positions
        ]
    except ItemError:
        return None
    return ValidBatch([records[position].id for position in positions], matrix, metadata)


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
    fast = _all_valid(records, sorted(last.values()), dim=dim, collection=collection, plugin=plugin)
    if fast is not None:
        return fast
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
