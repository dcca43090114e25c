"""Fused item vectors from per-field vectors: fuse, store, and fuse everything again.

:func:`re_fuse` re-fuses every item from the stored field vectors, without encoding:
after a fusion change (the ``items`` collection is dropped and made again) or a fit.
The catalog (ids and metadata) comes from the field collections, which keep each item's
metadata too, so ``items`` can always be rebuilt from them (re-fusing holds every item's id
and metadata in memory, and the vectors of one chunk at a time).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from polyrec.contracts import Collection, ItemError, ItemFailure, VectorRecord
from polyrec.engine._deprecated import moved
from polyrec.engine.assembly import Assembly
from polyrec.engine.encoding import HASH_KEY
from polyrec.engine.layout import ITEMS, MISSING_KEY, public_metadata

__all__ = [
    "item_hash",
    "field_matrices",
    "upsert_isolating",
    "store_fused",
    "catalog",
    "stored_fields",
    "re_fuse",
]

__getattr__ = moved(__name__, {"refuse": "polyrec.engine.fusing:re_fuse"})


def item_hash(field_hashes: Mapping[str, str | None], metadata: Mapping[str, Any]) -> str:
    """What decides whether an item changed: each slot's content hash and the metadata."""
    payload = {"fields": {slot: field_hashes[slot] or "-" for slot in sorted(field_hashes)}, "metadata": metadata}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def field_matrices(
    dims: Mapping[str, int], ids: Sequence[str], vectors: Mapping[str, Mapping[str, np.ndarray]]
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Per slot: ``(n, dim)`` vectors (zero rows where absent) and the present mask.

    A slot without vectors (an encoder waiting for fit) is all absent; an all-zero vector
    is absent too: the encoder's way of saying "no signal" for that item.
    """
    fields: dict[str, np.ndarray] = {}
    present: dict[str, np.ndarray] = {}
    for slot, dim in dims.items():
        matrix = np.zeros((len(ids), dim), dtype=np.float32)
        slot_vectors = vectors.get(slot, {})
        for row, item_id in enumerate(ids):
            vector = slot_vectors.get(item_id)
            if vector is not None:
                matrix[row] = vector
        fields[slot] = matrix
        present[slot] = np.abs(matrix).sum(axis=1) > 0
    return fields, present


def upsert_isolating(collection: Collection, records: Sequence[VectorRecord], failures: list[ItemFailure]) -> None:
    """Upsert; when the store rejects the batch for one record, write the others one by one."""
    if not records:
        return
    try:
        collection.upsert(records)
    except ItemError:
        for record in records:
            try:
                collection.upsert([record])
            except ItemError as exc:
                failures.append(ItemFailure(item_id=record.id, field=exc.field, plugin=exc.plugin, reason=exc.reason))


def store_fused(
    assembly: Assembly,
    ids: Sequence[str],
    fields: Mapping[str, np.ndarray],
    present: Mapping[str, np.ndarray],
    metadata: Sequence[Mapping[str, Any]],
    failures: list[ItemFailure],
) -> int:
    """Fuse and upsert into ``items``; a non-finite fused row fails its item. Returns rows written."""
    fusion = assembly.layout.bind_fusion()
    fused = np.asarray(fusion.fuse(fields, present), dtype=np.float32)
    finite = np.isfinite(fused).all(axis=1)
    records = []
    for row, item_id in enumerate(ids):
        if not finite[row]:
            failures.append(ItemFailure(item_id=item_id, plugin=fusion.name, reason="fused vector is not finite"))
            continue
        missing = sorted(slot for slot, mask in present.items() if not mask[row])
        records.append(VectorRecord(id=item_id, vector=fused[row], metadata={**metadata[row], MISSING_KEY: missing}))
    before = len(failures)
    upsert_isolating(assembly.layout.items(), records, failures)
    return len(records) - (len(failures) - before)


def catalog(assembly: Assembly) -> dict[str, dict[str, Any]]:
    """Every item with at least one stored field vector, with its public metadata."""
    found: dict[str, dict[str, Any]] = {}
    for encoder in assembly.encoders.values():
        if not encoder.usable:
            continue
        for batch in assembly.layout.field(encoder).scan():
            for record in batch:
                found.setdefault(record.id, public_metadata(record.metadata))
    return found


def _chunks(ids: Sequence[str], size: int) -> Iterator[Sequence[str]]:
    for start in range(0, len(ids), size):
        yield ids[start : start + size]


def stored_fields(
    assembly: Assembly, ids: Sequence[str]
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], dict[str, dict[str, str]]]:
    """Stored field vectors of ``ids`` as matrices + masks, and their content hashes."""
    vectors: dict[str, dict[str, np.ndarray]] = {}
    hashes: dict[str, dict[str, str]] = {}
    for slot, encoder in assembly.encoders.items():
        if not encoder.usable:  # waiting for fit: absent for every item, and not part of the item hash
            continue
        records = assembly.layout.field_records(encoder, ids)
        vectors[slot] = {item_id: np.asarray(record.vector, dtype=np.float32) for item_id, record in records.items()}
        hashes[slot] = {item_id: str(record.metadata.get(HASH_KEY, "")) for item_id, record in records.items()}
    fields, present = field_matrices(assembly.layout.field_dims(), ids, vectors)
    return fields, present, hashes


def re_fuse(assembly: Assembly, *, chunk_size: int = 1024, drop: bool = False) -> int:
    """Fuse every item again from its stored field vectors; return how many were written.

    ``drop`` re-creates ``items`` first (the fusion changed: its provenance or dim differ).
    """
    items_catalog = catalog(assembly)
    if drop:
        assembly.layout.drop(ITEMS)
    ids = sorted(items_catalog)
    written = 0
    failures: list[ItemFailure] = []
    if not ids:
        return 0
    with assembly.layout.items().bulk_writes():  # index upkeep once at the end, as an ingest does
        for chunk in _chunks(ids, chunk_size):
            written += _re_fuse_chunk(assembly, chunk, items_catalog, failures)
    return written


def _re_fuse_chunk(
    assembly: Assembly, chunk: Sequence[str], items_catalog: Mapping[str, dict[str, Any]], failures: list[ItemFailure]
) -> int:
    fields, present, hashes = stored_fields(assembly, chunk)
    has_any = np.any(np.stack(list(present.values())), axis=0)
    keep = np.flatnonzero(has_any)
    chunk_ids = [chunk[i] for i in keep]
    metadata = [
        {
            **items_catalog[item_id],
            HASH_KEY: item_hash({slot: hashes[slot].get(item_id) for slot in hashes}, items_catalog[item_id]),
        }
        for item_id in chunk_ids
    ]
    return store_fused(
        assembly,
        chunk_ids,
        {slot: matrix[keep] for slot, matrix in fields.items()},
        {slot: mask[keep] for slot, mask in present.items()},
        metadata,
        failures,
    )
