"""What the engine holds, for the Engine facade: one item across the collections, the
configured components, warming the store up, and deleting items.

An item is in the catalog when any collection holds it: the fused ``items`` record (it can
be recommended) or, while a trainable fusion waits for its fit, only per-field vectors.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from polyrec.contracts import Collection
from polyrec.engine.assembly import Assembly
from polyrec.engine.encoding import FieldEncoder
from polyrec.engine.layout import MISSING_KEY, public_metadata

__all__ = ["ItemDescription", "SlotVector", "configured_components", "delete_items", "describe_item", "warm_up"]


@dataclass
class SlotVector:
    """Whether an item has a vector in one encoder slot (``note`` says why not, when known)."""

    field: str
    plugin: str
    modality: str
    has_vector: bool
    note: str | None = None


@dataclass
class ItemDescription:
    """One item as the store holds it: public metadata, fused or not, and its vector per slot."""

    id: str
    metadata: dict[str, Any]
    fused: bool
    vectors: dict[str, SlotVector] = field(default_factory=dict)


def _field_collections(assembly: Assembly) -> list[tuple[FieldEncoder, Collection]]:
    return [(fe, assembly.layout.field(fe)) for fe in assembly.encoders.values() if fe.usable]


def describe_item(assembly: Assembly, item_id: str) -> ItemDescription | None:
    """The item's metadata (from its fused record, else its first per-field record) and, per
    encoder slot, whether it has a vector; None when no collection holds it."""
    fused = assembly.layout.items().get([item_id])
    metadata: dict[str, Any] | None = dict(fused[0].metadata) if fused else None
    vectors: dict[str, SlotVector] = {}
    for slot, fe in assembly.encoders.items():
        has_vector, note = False, None
        if fe.usable:
            records = assembly.layout.field(fe).get([item_id])
            has_vector = bool(records)
            if records and metadata is None:
                metadata = dict(records[0].metadata)
            if fused and slot in fused[0].metadata.get(MISSING_KEY, []):
                has_vector, note = False, "no signal for this item (all-zero vector)"
        else:
            note = "gives vectors after `polyrec fit`"
        vectors[slot] = SlotVector(fe.field, fe.plugin, fe.encoder.modality, has_vector, note)
    if metadata is None:
        return None
    return ItemDescription(item_id, public_metadata(metadata), bool(fused), vectors)


def delete_items(assembly: Assembly, ids: Sequence[str]) -> int:
    """Remove ``ids`` from every collection; return how many records went. Events stay in the log."""
    if not ids:
        return 0
    removed = assembly.layout.items().delete(list(ids))
    for _, collection in _field_collections(assembly):
        removed += collection.delete(list(ids))
    return removed


def configured_components(assembly: Assembly) -> dict[str, Any]:
    """The plugin configured for every slot; encoders with their field, modalities and readiness."""
    encoders = {
        slot: {
            "plugin": fe.plugin,
            "field": fe.field,
            "modality": fe.encoder.modality,
            "query_modalities": list(fe.encoder.query_modalities),
            "usable": fe.usable,
            "takes_files": fe.encoder.takes_files(),  # a str value names a file it reads
        }
        for slot, fe in assembly.encoders.items()
    }
    return {
        "store": assembly.resolved.store.plugin,
        "encoders": encoders,
        "fusion": assembly.resolved.fusion.plugin,
        "scorer": assembly.resolved.scorer.plugin,
    }


def warm_up(assembly: Assembly) -> None:
    """Open the event log and the collections, and search ``items`` once.

    Opening a collection that does not exist yet creates it, so a server does this before
    concurrent requests race to; the one search makes the store build its search structures
    now rather than in the first request (e.g. LanceDB's in-memory index: seconds at 100k
    items, a minute at 1M).
    """
    assembly.layout.events()
    items = assembly.layout.items()
    if items.count():
        probe = np.zeros(items.dim, np.float32)
        probe[0] = 1.0
        items.search(probe, 1)
    for encoder in assembly.encoders.values():
        if encoder.usable:
            assembly.layout.field(encoder)
