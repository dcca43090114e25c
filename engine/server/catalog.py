"""Item look-ups for the routes, through the :class:`~polyrec.engine.engine.Engine`.

An item is in the catalog when any collection holds it: the fused ``items`` record (it can
be recommended) or, while a trainable fusion waits for its fit, only per-field vectors.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from polyrec.contracts import matches
from polyrec.engine.server.media import MediaResolver
from polyrec.engine.server.schemas import FieldVector, ItemOut

if TYPE_CHECKING:
    from polyrec.engine.engine import Engine

__all__ = ["items_metadata", "item_metadata", "item_info", "filtered_ids"]

_FILTERS_KEPT = 32  # filters whose passing ids are kept, per catalog id list
_BATCH = 1000  # items whose metadata is read at once while filtering


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


class _FilteredIds:
    """The sorted ids that pass a filter, kept per filter for one catalog id list: a catalog
    page of a filtered catalog reads the metadata of every item once, not once per page."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._of: list[str] | None = None  # the catalog id list the kept results are for
        self._kept: OrderedDict[str, list[str]] = OrderedDict()

    def ids(self, engine: Engine, catalog: list[str], filter: Mapping[str, Any]) -> list[str]:
        key = json.dumps(filter, sort_keys=True, default=repr)
        with self._lock:
            if self._of is not catalog:  # the catalog was read again (an item write, a new count)
                self._of, self._kept = catalog, OrderedDict()
            found = self._kept.get(key)
            if found is not None:
                self._kept.move_to_end(key)
                return found
        passing = []
        for start in range(0, len(catalog), _BATCH):
            batch = catalog[start : start + _BATCH]
            metadata = engine.item_metadata(batch)
            passing += [item for item in batch if item in metadata and matches(metadata[item], filter)]
        with self._lock:
            if self._of is catalog:
                self._kept[key] = passing
                while len(self._kept) > _FILTERS_KEPT:
                    self._kept.popitem(last=False)
        return passing


_filtered = _FilteredIds()


def filtered_ids(engine: Engine, catalog: list[str], filter: Mapping[str, Any] | None) -> list[str]:
    """The ids of ``catalog`` (sorted ids, as :class:`CatalogDirectory` gives them) whose public
    metadata passes ``filter``, in the same order; all of them without a filter."""
    return _filtered.ids(engine, catalog, filter) if filter else catalog
