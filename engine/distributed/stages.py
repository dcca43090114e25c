"""The Ray Data stages of a distributed ingest; each one does what the in-process ingest does.

Rows travel between stages as Arrow tables with these columns (Python values pickled, so
any field value an encoder accepts goes through unchanged):

- ``read``: ``ordinal`` (position in the catalog), ``item`` (an :class:`Item`),
  ``failures`` (read failures), ``base_dir`` (the catalog file's folder, for media paths);
- :class:`Planner`: one row per item with ``id``, ``state`` (``changed``, ``unchanged``,
  ``failed``), ``metadata`` (JSON), ``had_item`` and per slot ``value.<slot>``,
  ``hash.<slot>``, ``vector.<slot>`` (the cached vector, when the content hash matches) and
  ``had.<slot>`` (the id has a row in that field collection: it is replaced);
- :class:`SlotEncoder` (one actor pool per slot): fills ``vector.<slot>`` where the cache had
  none and drops ``value.<slot>``;
- :class:`Fuser`: ``fused`` (the item vector) and ``item_metadata`` (JSON with the item hash
  and the missing slots), or ``pending`` when the fusion is not fitted yet.

The planner and the fuser run inside the encoder actors (the first slot's pool plans, the
last slot's fuses: see :class:`SlotEncoder`), which build the engine's components once per
actor from the resolved config (:class:`Job`), so a model is loaded once per actor, never per
block.
"""

from __future__ import annotations

import json
import pickle
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from polyrec.contracts import Item, ItemFailure, NotFittedError
from polyrec.engine.encoding import HASH_KEY, FieldEncoder
from polyrec.engine.fusing import field_matrices, item_hash
from polyrec.engine.layout import MISSING_KEY

if TYPE_CHECKING:
    import pyarrow as pa

    from polyrec.engine.assembly import Assembly
    from polyrec.engine.config import ResolvedConfig

__all__ = ["Job", "Planner", "SlotEncoder", "Fuser", "read_file", "read_rows", "slot_columns"]

CHANGED, UNCHANGED, FAILED = "changed", "unchanged", "failed"


@dataclass(frozen=True)
class Job:
    """What every worker needs to build the engine's components: picklable, no open handles."""

    resolved: ResolvedConfig
    state_dir: Path | None
    slots: tuple[str, ...]  # the usable encoder slots, in config order
    block_rows: int

    def assembly(self) -> Assembly:
        from polyrec.engine.assembly import assemble
        from polyrec.engine.plugins import build_plugin_manager
        from polyrec.engine.registry import Registry

        return assemble(self.resolved, Registry.from_plugin_manager(build_plugin_manager()), self.state_dir)


def slot_columns(slot: str) -> tuple[str, str, str, str]:
    return f"value.{slot}", f"hash.{slot}", f"vector.{slot}", f"had.{slot}"


def _dumps(value: Any) -> bytes:
    return pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)


def _loads(blob: bytes | None) -> Any:
    return None if blob is None else pickle.loads(blob)


def _vector_bytes(vector: np.ndarray | None) -> bytes | None:
    return None if vector is None else np.asarray(vector, dtype=np.float32).tobytes()


def _vector(blob: bytes | None) -> np.ndarray | None:
    return None if blob is None else np.frombuffer(blob, dtype=np.float32)


# -- reading ------------------------------------------------------------------------------


def read_rows(chunks: Iterator[Any], first_ordinal: int, base_dir: Path | None) -> Iterator[pa.Table]:
    """Blocks of ``read`` rows from chunks of :func:`~polyrec.engine.readers.read_items`."""
    import pyarrow as pa

    ordinal = first_ordinal
    folder = str(base_dir) if base_dir is not None else None
    for chunk in chunks:
        block: dict[str, list[Any]] = {"ordinal": [], "item": [], "failures": [], "base_dir": []}
        for item in chunk.items:
            block["ordinal"].append(ordinal)
            block["item"].append(_dumps(item))
            block["failures"].append(None)
            block["base_dir"].append(folder)
            ordinal += 1
        if chunk.failures:  # rows that are no item: reported, never encoded
            block["ordinal"].append(ordinal)
            block["item"].append(None)
            block["failures"].append(_dumps(list(chunk.failures)))
            block["base_dir"].append(None)
            ordinal += 1
        types = {"ordinal": pa.int64(), "item": pa.binary(), "failures": pa.binary(), "base_dir": pa.utf8()}
        yield pa.table({name: pa.array(values, types[name]) for name, values in block.items()})


def read_file(
    batch: dict[str, Any], *, block_rows: int, id_column: str, storage_options: Mapping[str, str] | None = None
) -> Iterator[pa.Table]:
    """Ray ``map_batches`` function: each input row names one catalog file (local, or an object:
    see :mod:`.catalog`); read it in blocks with the same readers as the in-process ingest (same
    parsing, same row failures)."""
    from polyrec.engine.distributed.catalog import opened_catalog_file
    from polyrec.engine.readers import read_items

    for path, index in zip(batch["path"], batch["index"], strict=True):
        with opened_catalog_file(path, storage_options) as (local, base_dir):
            # 2**40 rows per file: ordinals stay unique across files and keep catalog order
            chunks = read_items(local, chunk_size=block_rows, id_column=id_column)
            yield from read_rows(chunks, int(index) << 40, base_dir)


# -- planning: hashes and the content-hash cache -----------------------------------------


class Planner:
    """Hash every value, skip unchanged items, look up cached field vectors (store reads only)."""

    def __init__(self, job: Job, assembly: Assembly | None = None) -> None:
        self.job = job
        self.assembly = assembly or job.assembly()
        self.encoders = [self.assembly.encoders[slot] for slot in job.slots]

    def __call__(self, batch: pa.Table) -> pa.Table:
        from polyrec.engine.ingest import IngestPipeline

        rows = _Rows(self.job.slots)
        items_by_dir: dict[str | None, list[Item]] = {}
        for blob, failures, base_dir in zip(
            batch.column("item").to_pylist(),
            batch.column("failures").to_pylist(),
            batch.column("base_dir").to_pylist(),
            strict=True,
        ):
            if failures is not None:
                rows.failed(_loads(failures))
            if blob is not None:
                items_by_dir.setdefault(base_dir, []).append(_loads(blob))
        for base_dir, items in items_by_dir.items():
            pipeline = IngestPipeline(self.assembly, base_dir=Path(base_dir) if base_dir is not None else None)
            self._plan(pipeline, items, rows)
        return rows.table()

    def _plan(self, pipeline: Any, items: Sequence[Item], rows: _Rows) -> None:
        plan = pipeline.plan(items)
        failures: dict[str, list[ItemFailure]] = {}
        for failure in plan.failures:
            failures.setdefault(str(failure.item_id), []).append(failure)
        layout = self.assembly.layout
        previous = {record.id: record.metadata.get(HASH_KEY) for record in layout.items().get(list(plan.metadata))}
        changed = []
        for item in plan.items:
            if previous.get(item.id) == plan.item_hash(item.id):
                cached = sum(item.id in values for values in plan.values.values())
                rows.unchanged(item.id, cached, failures.get(item.id, []))
            else:
                changed.append(item.id)
        if not changed:
            return
        stored = {encoder.slot: self._stored(encoder, changed) for encoder in self.encoders}
        for item_id in changed:
            slots = {}
            for encoder in self.encoders:
                value = plan.values[encoder.slot].get(item_id)
                content_hash = plan.hashes[encoder.slot].get(item_id)
                record = stored[encoder.slot].get(item_id)
                cached = record is not None and content_hash is not None and record[0] == content_hash
                slots[encoder.slot] = (
                    value if content_hash is not None and not cached else None,
                    content_hash,
                    record[1] if cached else None,
                    record is not None,
                )
            rows.changed(item_id, plan.metadata[item_id], item_id in previous, slots, failures.get(item_id, []))

    def _stored(self, encoder: FieldEncoder, ids: Sequence[str]) -> dict[str, tuple[str, np.ndarray]]:
        """Every stored row of ``ids`` in the slot's collection: its content hash and vector."""
        return {
            record.id: (str(record.metadata.get(HASH_KEY)), np.asarray(record.vector, dtype=np.float32))
            for record in self.assembly.layout.field(encoder).get(list(ids))
        }


class _Rows:
    """Planner output, column by column, with fixed types (a block where a column is all null
    must have the same schema as any other)."""

    def __init__(self, slots: Sequence[str]) -> None:
        self.slots = slots
        self.columns: dict[str, list[Any]] = {
            name: [] for name in ("id", "state", "metadata", "had_item", "cached", "encoded", "failures")
        }
        for slot in slots:
            for name in slot_columns(slot):
                self.columns[name] = []

    def _add(self, item_id: str | None, state: str, failures: Sequence[ItemFailure], **values: Any) -> None:
        row = {"id": item_id, "state": state, "metadata": None, "had_item": False, "cached": 0, "encoded": 0}
        row.update(values)
        row["failures"] = _dumps(list(failures)) if failures else None
        for name, column in self.columns.items():
            column.append(row.get(name))

    def failed(self, failures: Sequence[ItemFailure]) -> None:
        self._add(None, FAILED, failures)

    def unchanged(self, item_id: str, cached: int, failures: Sequence[ItemFailure]) -> None:
        self._add(item_id, UNCHANGED, failures, cached=cached)

    def changed(
        self,
        item_id: str,
        metadata: Mapping[str, Any],
        had_item: bool,
        slots: Mapping[str, tuple[Any, str | None, np.ndarray | None, bool]],
        failures: Sequence[ItemFailure],
    ) -> None:
        values: dict[str, Any] = {"metadata": json.dumps(metadata), "had_item": had_item}
        cached = 0
        for slot, (value, content_hash, vector, had) in slots.items():
            value_col, hash_col, vector_col, had_col = slot_columns(slot)
            values[value_col] = None if value is None else _dumps(value)
            values[hash_col] = content_hash
            values[vector_col] = _vector_bytes(vector)
            values[had_col] = had
            cached += vector is not None
        self._add(item_id, CHANGED, failures, cached=cached, **values)

    def table(self) -> pa.Table:
        import pyarrow as pa

        types: dict[str, pa.DataType] = {
            "id": pa.utf8(),
            "state": pa.utf8(),
            "metadata": pa.utf8(),
            "had_item": pa.bool_(),
            "cached": pa.int64(),
            "encoded": pa.int64(),
            "failures": pa.binary(),
        }
        for slot in self.slots:
            value_col, hash_col, vector_col, had_col = slot_columns(slot)
            types.update({value_col: pa.binary(), hash_col: pa.utf8(), vector_col: pa.binary(), had_col: pa.bool_()})
        return pa.table({name: pa.array(values, types[name]) for name, values in self.columns.items()})


# -- encoding: one actor pool per slot ---------------------------------------------------


class SlotEncoder:
    """Encode one slot's values that the cache did not have (the model loads once per actor).

    ``plan``: the actor plans its blocks first (the first slot's pool), ``fuse``: it fuses them
    after (the last slot's pool). Ray Data never fuses one actor pool into another, and each
    actor process costs seconds of CPU to start (imports, the assembly), so the planner and
    the fuser live in the encoder actors rather than in pools of their own; ``slot`` None (no
    usable encoder): the actor only plans and fuses."""

    def __init__(self, job: Job, slot: str | None, plan: bool = False, fuse: bool = False) -> None:
        self.assembly = job.assembly()
        self.planner = Planner(job, self.assembly) if plan else None
        self.fuser = Fuser(job, self.assembly) if fuse else None
        self.slot = slot
        if slot is not None:
            self.encoder: FieldEncoder = self.assembly.encoders[slot]
            self.dim = self.assembly.layout.field_dim(self.encoder)

    def __call__(self, batch: pa.Table) -> pa.Table:
        if self.planner is not None:
            batch = self.planner(batch)
        if self.slot is not None:
            batch = self._encode(batch, self.slot)
        return self.fuser(batch) if self.fuser is not None else batch

    def _encode(self, batch: pa.Table, slot: str) -> pa.Table:
        import pyarrow as pa

        value_col, _hash_col, vector_col, _had_col = slot_columns(slot)
        ids = batch.column("id").to_pylist()
        values = batch.column(value_col).to_pylist()
        todo = {ids[row]: _loads(blob) for row, blob in enumerate(values) if blob is not None}
        fresh, failures = self.encoder.encode_values(todo, self.dim) if todo else ({}, [])
        by_item: dict[str, list[ItemFailure]] = {}
        for failure in failures:
            by_item.setdefault(str(failure.item_id), []).append(failure)
        vectors = batch.column(vector_col).to_pylist()
        encoded = batch.column("encoded").to_pylist()
        old_failures = batch.column("failures").to_pylist()
        new_failures = []
        for row, item_id in enumerate(ids):
            if item_id in fresh:
                vectors[row] = _vector_bytes(fresh[item_id])
                encoded[row] += 1
            extra = by_item.get(item_id) if item_id is not None else None
            if extra:
                new_failures.append(_dumps((_loads(old_failures[row]) or []) + extra))
            else:
                new_failures.append(old_failures[row])
        batch = batch.drop_columns([value_col])
        batch = batch.set_column(batch.schema.get_field_index(vector_col), vector_col, pa.array(vectors, pa.binary()))
        batch = batch.set_column(batch.schema.get_field_index("encoded"), "encoded", pa.array(encoded, pa.int64()))
        return batch.set_column(
            batch.schema.get_field_index("failures"), "failures", pa.array(new_failures, pa.binary())
        )


# -- fusing -------------------------------------------------------------------------------


class Fuser:
    """Fuse the field vectors of changed items, as the in-process ingest does."""

    def __init__(self, job: Job, assembly: Assembly | None = None) -> None:
        self.job = job
        self.assembly = assembly or job.assembly()
        self.dims = self.assembly.layout.field_dims()

    def __call__(self, batch: pa.Table) -> pa.Table:
        import pyarrow as pa

        from polyrec.engine.ingest import IngestPipeline

        ids = batch.column("id").to_pylist()
        states = batch.column("state").to_pylist()
        failures = [_loads(blob) or [] for blob in batch.column("failures").to_pylist()]
        fused: list[bytes | None] = [None] * len(ids)
        item_metadata: list[str | None] = [None] * len(ids)
        pending = [False] * len(ids)
        changed = [row for row, state in enumerate(states) if state == CHANGED]
        vectors = {slot: {} for slot in self.job.slots}
        hashes = {slot: {} for slot in self.job.slots}
        for slot in self.job.slots:
            _value_col, hash_col, vector_col, _had_col = slot_columns(slot)
            column_vectors = batch.column(vector_col).to_pylist()
            column_hashes = batch.column(hash_col).to_pylist()
            for row in changed:
                if column_vectors[row] is not None:
                    vectors[slot][ids[row]] = _vector(column_vectors[row])
                hashes[slot][ids[row]] = column_hashes[row]
        changed_ids = [ids[row] for row in changed]
        fields, present = field_matrices(self.dims, changed_ids, vectors)
        has_any = np.any(np.stack(list(present.values())), axis=0) if present else np.zeros(len(changed), bool)
        nothing = IngestPipeline(self.assembly)._nothing_to_encode()
        keep = [index for index in range(len(changed)) if has_any[index]]
        for index in range(len(changed)):
            row = changed[index]
            if not has_any[index] and not failures[row]:
                failures[row].append(ItemFailure(item_id=ids[row], reason=nothing))
        if keep:
            self._fuse(batch, changed, keep, fields, present, vectors, hashes, fused, item_metadata, pending, failures)
        columns = {
            "fused": pa.array(fused, pa.binary()),
            "item_metadata": pa.array(item_metadata, pa.utf8()),
            "pending": pa.array(pending, pa.bool_()),
        }
        batch = batch.set_column(
            batch.schema.get_field_index("failures"),
            "failures",
            pa.array([_dumps(found) if found else None for found in failures], pa.binary()),
        )
        for name, column in columns.items():
            batch = batch.append_column(name, column)
        return batch

    def _fuse(
        self,
        batch: pa.Table,
        changed: list[int],
        keep: list[int],
        fields: dict[str, np.ndarray],
        present: dict[str, np.ndarray],
        vectors: dict[str, dict[str, np.ndarray]],
        hashes: dict[str, dict[str, str | None]],
        fused: list[bytes | None],
        item_metadata: list[str | None],
        pending: list[bool],
        failures: list[list[ItemFailure]],
    ) -> None:
        ids = batch.column("id").to_pylist()
        metadata = batch.column("metadata").to_pylist()
        rows = [changed[index] for index in keep]
        try:
            fusion = self.assembly.layout.bind_fusion()
            matrix = np.asarray(
                fusion.fuse(
                    {slot: values[keep] for slot, values in fields.items()},
                    {slot: mask[keep] for slot, mask in present.items()},
                ),
                dtype=np.float32,
            )
        except NotFittedError:
            for row in rows:  # the field vectors are stored; `polyrec fit` fuses them
                pending[row] = True
            return
        for position, row in enumerate(rows):
            item_id = ids[row]
            if not np.isfinite(matrix[position]).all():
                failures[row].append(
                    ItemFailure(item_id=item_id, plugin=fusion.name, reason="fused vector is not finite")
                )
                continue
            # the item hash counts only the slots that got a vector, as in-process
            stored_hashes = {slot: hashes[slot][item_id] if item_id in vectors[slot] else None for slot in hashes}
            values = json.loads(metadata[row])
            missing = sorted(slot for slot, mask in present.items() if not mask[keep[position]])
            item_metadata[row] = json.dumps(
                {**values, HASH_KEY: item_hash(stored_hashes, values), MISSING_KEY: missing}
            )
            fused[row] = _vector_bytes(matrix[position])
