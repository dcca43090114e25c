"""Item look-ups and deletes over the engine's collections (``items`` and ``field__<slot>``).

An item is in the catalog when any collection holds it: the fused ``items`` record (it can
be recommended) or, while a trainable fusion waits for its fit, only per-field vectors.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from polyrec.engine.layout import MISSING_KEY, RESERVED_KEYS
from polyrec.engine.server.media import MediaResolver
from polyrec.engine.server.schemas import FieldVector, ItemOut

if TYPE_CHECKING:
    from polyrec.contracts import Collection
    from polyrec.engine.encoding import FieldEncoder
    from polyrec.engine.engine import Engine

__all__ = ["public_metadata", "items_metadata", "item_metadata", "item_info", "delete_item"]


def public_metadata(metadata: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in metadata.items() if key not in RESERVED_KEYS}


def _field_collections(engine: Engine) -> list[tuple[FieldEncoder, Collection]]:
    return [(fe, engine.assembly.layout.field(fe)) for fe in engine.assembly.encoders.values() if fe.usable]


def items_metadata(engine: Engine, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Public metadata of the ``ids`` that have a fused vector (one batch read)."""
    if not ids:
        return {}
    return {record.id: public_metadata(record.metadata) for record in engine.get_items(ids)}


def item_metadata(engine: Engine, item_id: str) -> dict[str, Any] | None:
    """Public metadata of one item, from its fused record or else its first per-field record."""
    found = engine.get_items([item_id])
    if not found:
        found = next((records for _, c in _field_collections(engine) if (records := c.get([item_id]))), [])
    return public_metadata(found[0].metadata) if found else None


def item_info(engine: Engine, item_id: str, media: MediaResolver) -> ItemOut | None:
    """The item's metadata and, per encoder slot, whether it has a vector; None when unknown."""
    fused = engine.get_items([item_id])
    metadata: dict[str, Any] | None = dict(fused[0].metadata) if fused else None
    vectors: dict[str, FieldVector] = {}
    for slot, fe in engine.assembly.encoders.items():
        has_vector, note = False, None
        if fe.usable:
            records = engine.assembly.layout.field(fe).get([item_id])
            has_vector = bool(records)
            if records and metadata is None:
                metadata = dict(records[0].metadata)
            if fused and slot in fused[0].metadata.get(MISSING_KEY, []):
                has_vector, note = False, "no signal for this item (all-zero vector)"
        else:
            note = "gives vectors after `polyrec fit`"
        vectors[slot] = FieldVector(
            field=fe.field, plugin=fe.plugin, modality=fe.encoder.modality, has_vector=has_vector, note=note
        )
    if metadata is None:
        return None
    public = public_metadata(metadata)
    return ItemOut(id=item_id, metadata=public, fused=bool(fused), vectors=vectors, media=media.links(item_id, public))


def delete_item(engine: Engine, item_id: str) -> int:
    """Remove the item from every collection; return how many records went. Its events stay in the log."""
    removed = engine.assembly.layout.items().delete([item_id])
    for _, collection in _field_collections(engine):
        removed += collection.delete([item_id])
    engine.retriever.forget_items()
    return removed
