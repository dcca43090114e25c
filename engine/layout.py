"""The engine's collections inside the store, opened lazily with their provenance.

- ``field__<slot>``: one vector per item and encoder slot; metadata = the item's
  filterable metadata + ``_hash`` (the value's content hash, see :mod:`.encoding`).
  Provenance: ``{"encoder": plugin, "fingerprint": config fingerprint}``.
- ``items``: the fused vector per item; metadata = the item's filterable metadata +
  ``_hash`` (item hash) + ``_missing`` (slots without a vector). Provenance: the fusion's
  fingerprint and every encoder's.

Collections are opened on first use, so an engine that only answers queries never
creates or touches a field collection, and dims come from the state manifest when it
knows them (no model load just to open a collection).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from polyrec.contracts import Collection, Fusion, ProvenanceMismatchError, VectorRecord, VectorStore
from polyrec.engine.encoding import FieldEncoder
from polyrec.engine.state import EngineState

__all__ = ["ITEMS", "MISSING_KEY", "RESERVED_KEYS", "StoreLayout"]

ITEMS = "items"
#: metadata key listing the slots an item has no vector for
MISSING_KEY = "_missing"
RESERVED_KEYS = frozenset({"_hash", MISSING_KEY})


class StoreLayout:
    """Opens, rebuilds and reads the engine's collections."""

    def __init__(
        self,
        store: VectorStore,
        state: EngineState,
        encoders: Mapping[str, FieldEncoder],
        fusion: Fusion,
        fusion_fingerprint: str,
        on_bind: Callable[[], None] | None = None,
    ) -> None:
        self.store = store
        self.state = state
        self.encoders = dict(encoders)
        self.fusion = fusion
        self.fusion_fingerprint = fusion_fingerprint
        self._on_bind = on_bind
        self._bound = False
        self._collections: dict[str, Collection] = {}

    # -- dims and provenance -------------------------------------------------------------

    def field_dim(self, encoder: FieldEncoder) -> int:
        known = self.state.known_dim(encoder.collection_name, encoder.provenance)
        return known if known is not None else int(encoder.encoder.dim)

    def field_dims(self) -> dict[str, int]:
        return {slot: self.field_dim(encoder) for slot, encoder in self.encoders.items()}

    def bind_fusion(self) -> Fusion:
        """Bind the fusion to the field dims once (then load its trained state, if any)."""
        if not self._bound:
            self.fusion.bind(self.field_dims())
            self._bound = True
            if self._on_bind is not None:
                self._on_bind()
        return self.fusion

    @property
    def items_provenance(self) -> dict[str, str]:
        provenance = {"fusion": self.fusion_fingerprint}
        provenance.update({f"encoder.{slot}": encoder.fingerprint for slot, encoder in self.encoders.items()})
        return provenance

    # -- opening -------------------------------------------------------------------------

    def field(self, encoder: FieldEncoder, *, rebuild: bool = False) -> Collection:
        name = encoder.collection_name
        if name not in self._collections:
            known = self.state.known_dim(name, encoder.provenance)
            dim = known if known is not None else int(encoder.encoder.dim)
            self._collections[name] = self._open(name, dim, encoder.provenance, rebuild, _field_hint(encoder))
        return self._collections[name]

    def items(self, *, rebuild: bool = False) -> Collection:
        if ITEMS not in self._collections:
            dim = self.bind_fusion().dim
            self._collections[ITEMS] = self._open(ITEMS, dim, self.items_provenance, rebuild, _ITEMS_HINT)
        return self._collections[ITEMS]

    def _open(self, name: str, dim: int, provenance: dict[str, str], rebuild: bool, hint: str) -> Collection:
        try:
            collection = self.store.open(name, dim=dim, provenance=provenance)
        except ProvenanceMismatchError as exc:
            if not rebuild:
                raise ProvenanceMismatchError(f"collection {name!r}: {hint}\n  (store: {exc})") from exc
            self.drop(name)
            collection = self.store.open(name, dim=dim, provenance=provenance)
        self.state.remember_collection(name, dim, provenance)
        return collection

    def drop(self, name: str) -> bool:
        """Drop a collection so it can be made again with the current provenance."""
        self._collections.pop(name, None)
        try:
            existed = self.store.drop(name)
        except NotImplementedError:
            raise ProvenanceMismatchError(
                f"collection {name!r} must be rebuilt, but store {self.store.name!r} cannot drop collections: "
                "point the config at a new store and ingest again"
            ) from None
        self.state.forget_collection(name)
        return bool(existed)

    # -- reading -------------------------------------------------------------------------

    def field_records(self, encoder: FieldEncoder, ids: Sequence[str]) -> dict[str, VectorRecord]:
        return {record.id: record for record in self.field(encoder).get(list(ids))}


_ITEMS_HINT = (
    "the fused vectors were made with another fusion or other encoders than configured now. "
    "If only the fusion changed, run `polyrec fit` or engine.refuse() to re-fuse from the stored field "
    "vectors (no re-encoding); if an encoder changed, ingest with rebuild=True (polyrec ingest --rebuild)"
)


def _field_hint(encoder: FieldEncoder) -> str:
    return (
        f"field {encoder.field!r} (slot {encoder.slot!r}) was encoded by another encoder or encoder config "
        f"than the configured {encoder.plugin!r}. Ingest into a new store, or re-encode with "
        "ingest(..., rebuild=True) (polyrec ingest --rebuild), which drops the stale vectors"
    )
