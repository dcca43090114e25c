"""Lance's distributed write for one collection: workers write fragments, the driver commits.

:class:`FragmentWriter` is small and picklable: the driver makes one per collection
(:meth:`LanceCollection.bulk_writer`) and ships it to Ray workers, which turn their records into
Lance fragment files beside the table (``write_fragments``: data files only, no commit) and
hand back a :class:`FragmentReceipt` (fragment metadata as JSON and the ids written). The
driver then commits all receipts of a collection at once (:func:`commit_receipts`):

1. one delete of the ids that were already in the table (they are being replaced: an upsert
   by id), then
2. one ``LanceOperation.Append`` of every fragment.

Why this order is safe: a crash between the two commits leaves those items absent, and a
re-run sees them absent (their item hash is not stored) and writes them again; a crash
before the append leaves fragment files no manifest refers to, which nothing reads. A task
that Ray retries writes new files, and only the receipts of finished tasks reach the
driver, so nothing is committed twice. An id that two blocks of one run wrote (a catalog
that repeats an id across blocks) is found at the commit and kept once.

Typed filter columns (``m_<key>__<kind>``): a fragment may lack columns of the table (they
read as null) but not add any, so a worker that meets a new metadata key adds its column to
the table first (an all-null column: a schema-only commit, retried on conflicts) and writes
with the table's schema.
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from polyrec.contracts import StoreError, VectorRecord
from polyrec.plugins.stores.checks import validate_records
from polyrec.plugins.stores.lancedb.filter_columns import FilterColumns
from polyrec.plugins.stores.lancedb.filters import metadata_column, value_kind

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["FragmentReceipt", "FragmentWriter", "arrow_type", "commit_receipts", "typed_columns"]

T = TypeVar("T")
log = logging.getLogger(__name__)

_ATTEMPTS = 8  # schema or append commits that keep losing races to other writers fail after this many


def arrow_type(kind: str) -> pa.DataType:
    """The Arrow type of a typed metadata column of ``kind`` (its name's last letter)."""
    import pyarrow as pa

    return {"s": pa.utf8(), "i": pa.int64(), "f": pa.float64(), "b": pa.bool_(), "l": pa.list_(pa.utf8())}[kind]


def typed_columns(metadata: Sequence[dict[str, Any]]) -> dict[str, list[Any]]:
    """The typed filter columns of ``metadata`` rows: column name -> one value (or None) per row."""
    typed: dict[str, list[Any]] = {}
    for row, values in enumerate(metadata):
        for key, value in values.items():
            kind = value_kind(value)
            if kind is not None:
                column = metadata_column(key, kind)
                values_of = typed.get(column)
                if values_of is None:  # not setdefault: its default, a list as long as the batch, costs per row
                    values_of = typed[column] = [None] * len(metadata)
                values_of[row] = value
    return typed


def arrow_rows(
    schema: pa.Schema, dim: int, ids: list[str], vectors: np.ndarray, metadata_json: list[str], typed: dict
) -> pa.Table:
    """Rows in the table's ``schema``: ``id``, ``vector``, ``metadata`` JSON and every typed column."""
    import pyarrow as pa

    columns = {
        "id": pa.array(ids, pa.utf8()),
        "vector": pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1), pa.float32()), dim),
        "metadata": pa.array(metadata_json, pa.utf8()),
    }
    arrays = [
        columns[column.name]
        if column.name in columns
        else pa.array(typed.get(column.name, [None] * len(ids)), column.type)
        for column in schema
    ]
    return pa.Table.from_arrays(arrays, schema=schema)


def _is_conflict(error: Exception) -> bool:
    text = str(error).lower()
    return "conflict" in text or "retryable" in text


def _retrying(action: Callable[[], T], what: str) -> T:
    for attempt in range(_ATTEMPTS):
        try:
            return action()
        except Exception as exc:
            if attempt == _ATTEMPTS - 1 or not _is_conflict(exc):
                raise StoreError(f"lance: {what} failed: {type(exc).__name__}: {exc}") from exc
            time.sleep(0.02 * 2**attempt)
    raise AssertionError("unreachable")


@dataclass
class FragmentReceipt:
    """What a worker wrote to one collection: fragments (JSON) and ids, in row order."""

    fragments: list[str] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)
    rejected: list[tuple[str, str | None, str | None, str]] = field(default_factory=list)  # id, field, plugin, why


@dataclass(frozen=True)
class FragmentWriter:
    """Writes fragments of one collection's table from a worker (picklable: strings only)."""

    collection: str
    uri: str  # the table's dataset: ``<store uri>/<collection>.lance``
    dim: int
    plugin: str
    storage_options: dict[str, str] | None = None
    filter_columns: FilterColumns = field(default_factory=FilterColumns)  # which metadata keys get typed columns

    def _dataset(self) -> Any:
        import lance

        return lance.dataset(self.uri, storage_options=self.storage_options)

    def _schema_with(self, columns: Iterable[str]) -> pa.Schema:
        """The table's schema, after adding the typed ``columns`` it lacks (all null)."""
        import pyarrow as pa

        def add() -> pa.Schema:
            dataset = self._dataset()
            missing = [name for name in columns if name not in dataset.schema.names]
            if missing:
                dataset.add_columns([pa.field(name, arrow_type(name[-1])) for name in missing])
                dataset = self._dataset()
            return dataset.schema

        return _retrying(add, f"adding filter columns to {self.collection!r}")

    def write(self, records: Sequence[VectorRecord]) -> FragmentReceipt:
        """Validate ``records`` one by one (a bad one is rejected alone), write the rest as fragments."""
        from lance.fragment import write_fragments

        receipt = FragmentReceipt()
        good: list[VectorRecord] = []
        for record in records:
            try:
                validate_records([record], dim=self.dim, collection=self.collection, plugin=self.plugin)
            except Exception as exc:
                field_name, plugin = getattr(exc, "field", None), getattr(exc, "plugin", None)
                receipt.rejected.append((record.id, field_name, plugin, getattr(exc, "reason", str(exc))))
            else:
                good.append(record)
        if not good:
            return receipt
        batch = validate_records(good, dim=self.dim, collection=self.collection, plugin=self.plugin)
        typed = self.filter_columns.kept(typed_columns(batch.metadata), self._dataset().schema.names)
        schema = self._schema_with(typed)
        metadata_json = [json.dumps(values, ensure_ascii=False) for values in batch.metadata]
        rows = arrow_rows(schema, self.dim, batch.ids, batch.vectors, metadata_json, typed)
        fragments = write_fragments(rows, self.uri, schema=schema, storage_options=self.storage_options)
        receipt.fragments = [json.dumps(fragment.to_json()) for fragment in fragments]
        receipt.ids = list(batch.ids)
        return receipt


def commit_receipts(writer: FragmentWriter, receipts: Sequence[FragmentReceipt], replaced: Sequence[str]) -> int:
    """Delete ``replaced`` ids, then append every receipt's fragments in one commit; return rows added.

    Ids written by more than one receipt are then kept once (the last copy read back).
    """
    import lance
    from lance.fragment import FragmentMetadata

    fragments = [FragmentMetadata.from_json(text) for receipt in receipts for text in receipt.fragments]
    written = Counter(item_id for receipt in receipts for item_id in receipt.ids)
    for where in _ids_in(replaced):
        _retrying(
            lambda where=where: writer._dataset().delete(where), f"deleting replaced rows of {writer.collection!r}"
        )
    if fragments:

        def append() -> Any:
            latest = writer._dataset()
            operation = lance.LanceOperation.Append(fragments)
            return lance.LanceDataset.commit(
                writer.uri, operation, read_version=latest.version, storage_options=writer.storage_options
            )

        _retrying(append, f"committing fragments of {writer.collection!r}")
    repeated = [item_id for item_id, count in written.items() if count > 1]
    if repeated:
        _keep_once(writer, repeated)
    return len(written)


def _keep_once(writer: FragmentWriter, ids: Sequence[str]) -> None:
    """Rows of ``ids`` that two blocks both wrote: delete them all and append one copy of each."""
    import lance
    from lance.fragment import write_fragments

    for where in _ids_in(ids):
        dataset = writer._dataset()
        table = dataset.to_table(filter=where)
        keep = {item_id: row for row, item_id in enumerate(table.column("id").to_pylist())}  # the last copy
        once = table.take(list(keep.values()))
        _retrying(
            lambda where=where: writer._dataset().delete(where), f"deleting repeated rows of {writer.collection!r}"
        )
        fragments = write_fragments(once, writer.uri, schema=table.schema, storage_options=writer.storage_options)

        def append(fragments: list = fragments) -> Any:
            latest = writer._dataset()
            return lance.LanceDataset.commit(
                writer.uri,
                lance.LanceOperation.Append(fragments),
                read_version=latest.version,
                storage_options=writer.storage_options,
            )

        _retrying(append, f"committing de-duplicated rows of {writer.collection!r}")
    log.info("collection %r: %d ids written by two blocks were kept once", writer.collection, len(ids))


def _ids_in(ids: Sequence[str], chunk: int = 5000) -> Iterable[str]:
    from polyrec.plugins.stores.lancedb.filters import sql_string

    unique = list(dict.fromkeys(ids))
    for start in range(0, len(unique), chunk):
        yield "id IN (" + ", ".join(map(sql_string, unique[start : start + chunk])) + ")"
