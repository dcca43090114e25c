"""The last stage: workers write the rows of every collection as the store's bulk fragments;
the driver commits them, field collections first and ``items`` last (as in-process, an item's
fused vector lands after its field vectors).

The store does the writing (``Collection.bulk_writer()`` makes a picklable writer on the
driver, ``writer.write(records)`` runs on a worker and returns a receipt,
``Collection.commit_bulk(receipts, replaced)`` commits on the driver): for LanceDB that is
Lance's fragment API, see :mod:`polyrec.plugins.stores.lancedb.bulk`.
"""

from __future__ import annotations

import json
import pickle
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from polyrec.contracts import ItemFailure, VectorRecord
from polyrec.engine.distributed.stages import CHANGED, UNCHANGED, slot_columns
from polyrec.engine.encoding import HASH_KEY
from polyrec.engine.ingest import IngestReport

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["BlockResult", "CollectionSink", "block_result"]


@dataclass
class BlockResult:
    """What one write task did: receipts per collection, ids to replace, and the report's counts."""

    receipts: dict[str, list[Any]] = field(default_factory=dict)
    replaced: dict[str, list[str]] = field(default_factory=dict)
    report: IngestReport = field(default_factory=IngestReport)


def block_result(batch: pa.Table, slots: Iterable[str], writers: Mapping[str, Any], items: str) -> BlockResult:
    """Write one block's rows to every collection's fragments (on a worker)."""
    result = BlockResult()
    report = result.report
    ids = batch.column("id").to_pylist()
    states = batch.column("state").to_pylist()
    metadata = batch.column("metadata").to_pylist()
    for blob in batch.column("failures").to_pylist():
        if blob is not None:
            report.failures.extend(pickle.loads(blob))
    report.cached = sum(batch.column("cached").to_pylist())
    report.encoded = sum(batch.column("encoded").to_pylist())
    report.unchanged = sum(state == UNCHANGED for state in states)
    report.pending = sum(batch.column("pending").to_pylist())
    changed = [row for row, state in enumerate(states) if state == CHANGED]
    for slot in slots:
        _value, hash_col, vector_col, had_col = slot_columns(slot)
        vectors, hashes, had = (batch.column(name).to_pylist() for name in (vector_col, hash_col, had_col))
        records = [
            VectorRecord(
                id=ids[row],
                vector=np.frombuffer(vectors[row], dtype=np.float32),
                metadata={**json.loads(metadata[row]), HASH_KEY: hashes[row]},
            )
            for row in changed
            if vectors[row] is not None
        ]
        name = f"field__{slot}"
        _write(result, name, writers[name], records, [ids[row] for row in changed if had[row]])
    fused, item_metadata = batch.column("fused").to_pylist(), batch.column("item_metadata").to_pylist()
    had_item = batch.column("had_item").to_pylist()
    records = [
        VectorRecord(
            id=ids[row], vector=np.frombuffer(fused[row], dtype=np.float32), metadata=json.loads(item_metadata[row])
        )
        for row in changed
        if fused[row] is not None
    ]
    before = len(report.failures)
    _write(result, items, writers[items], records, [ids[row] for row in changed if had_item[row]])
    report.stored = len(records) - (len(report.failures) - before)
    return result


def _write(result: BlockResult, name: str, writer: Any, records: list[VectorRecord], replaced: list[str]) -> None:
    result.replaced[name] = replaced
    if not records:
        result.receipts[name] = []
        return
    receipt = writer.write(records)
    result.receipts[name] = [receipt]
    for item_id, field_name, plugin, reason in receipt.rejected:
        result.report.failures.append(ItemFailure(item_id=item_id, field=field_name, plugin=plugin, reason=reason))


def _datasink_base() -> type:
    from ray.data import Datasink

    return Datasink


class CollectionSink:
    """Ray ``Datasink``: ``write`` on workers (fragments), results kept for the driver's commit."""

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        # subclass Ray's Datasink only when made: importing this module must not import Ray
        sink_type = type("PolyrecCollectionSink", (_SinkMixin, _datasink_base()), {})
        instance = object.__new__(sink_type)
        instance.__init__(*args, **kwargs)
        return instance


class _SinkMixin:
    def __init__(self, slots: tuple[str, ...], writers: Mapping[str, Any], items: str) -> None:
        self.slots, self.writers, self.items = slots, dict(writers), items
        self.results: list[BlockResult] = []

    def __reduce__(self) -> Any:  # the dynamic class pickles through its factory
        return (CollectionSink, (self.slots, self.writers, self.items))

    def get_name(self) -> str:
        return "PolyrecCollections"

    @property
    def supports_distributed_writes(self) -> bool:
        return True

    def write(self, blocks: Iterable[Any], ctx: Any) -> list[BlockResult]:
        import pyarrow as pa

        tables = [block for block in blocks if block.num_rows]
        if not tables:
            return []
        # one fragment per collection and task, not per block: fewer, larger files
        return [block_result(pa.concat_tables(tables), self.slots, self.writers, self.items)]

    def on_write_complete(self, write_result: Any) -> None:
        returns = getattr(write_result, "write_returns", write_result)
        self.results = [result for task in returns for result in task]
