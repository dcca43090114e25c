"""Item look-ups for the routes, through the :class:`~polyrec.engine.engine.Engine`.

An item is in the catalog when any collection holds it: the fused ``items`` record (it can
be recommended) or, while a trainable fusion waits for its fit, only per-field vectors.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from polyrec.engine.server.media import MediaResolver
from polyrec.engine.server.schemas import FieldVector, ItemOut

if TYPE_CHECKING:
    from polyrec.engine.engine import Engine

__all__ = ["items_metadata", "item_metadata", "item_info"]


def items_metadata(engine: Engine, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Public metadata of the ``ids`` that have a fused vector."""
    return engine.item_metadata(ids) if ids else {}


def item_metadata(engine: Engine, item_id: str) -> dict[str, Any] | None:
    """Public metadata of one item, from its fused record or else its first per-field record."""
    described = engine.describe_item(item_id)
    return described.metadata if described is not None else None


def item_info(engine: Engine, item_id: str, media: MediaResolver) -> ItemOut | None:
    """The item's metadata and, per encoder slot, whether it has a vector; None when unknown."""
    described = engine.describe_item(item_id)
    if described is None:
        return None
    vectors = {slot: FieldVector(**vars(vector)) for slot, vector in described.vectors.items()}
    return ItemOut(
        id=item_id,
        metadata=described.metadata,
        fused=described.fused,
        vectors=vectors,
        media=media.links(item_id, described.metadata),
    )
