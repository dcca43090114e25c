"""The engine's collections inside the store, opened lazily with their provenance.

- ``field__<slot>``: one vector per item and encoder slot; metadata = the item's
  filterable metadata + ``_hash`` (the value's content hash, see :mod:`.encoding`).
  Provenance: ``{"encoder": plugin, "fingerprint": config fingerprint}``.
- ``items``: the fused vector per item; metadata = the item's filterable metadata +
  ``_hash`` (item hash) + ``_missing`` (slots without a vector). Provenance: the fusion's
  fingerprint and every encoder's.
- the store's event log.

Collections are opened on first use, so an engine that only answers queries never
creates or touches a field collection, and dims come from the manifest when it knows
them (no model load just to open a collection).

Every write of the engine goes through a collection or event log handed out here, and
each one counts its writes (:meth:`StoreLayout.version`): whatever is computed from the
stored data (the catalog's centroid, popularity counts) is valid while the version it was
computed at is the current one. So there is one place that knows the data changed, and
no caller has to remember to reset a cache.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import numpy as np

from polyrec.contracts import (
    Collection,
    ConfigError,
    Event,
    EventLog,
    Fusion,
    Hit,
    ProvenanceMismatchError,
    SearchRows,
    VectorRecord,
    VectorStore,
)
from polyrec.engine.encoding import HASH_KEY, FieldEncoder
from polyrec.engine.manifest import FUSION_KEY, Manifest

__all__ = ["EVENTS", "ITEMS", "MISSING_KEY", "RESERVED_KEYS", "StoreLayout", "public_metadata"]

ITEMS = "items"
#: version key of the event log (collections are keyed by their name)
EVENTS = "events"
#: metadata key listing the slots an item has no vector for
MISSING_KEY = "_missing"
RESERVED_KEYS = frozenset({HASH_KEY, MISSING_KEY})


def public_metadata(metadata: Mapping[str, Any]) -> dict[str, Any]:
    """An item's metadata without the engine's own keys (``_hash``, ``_missing``)."""
    return {key: value for key, value in metadata.items() if key not in RESERVED_KEYS}


class _WriteCounter:
    """Writes per name; each write counts when it starts and when it ends, so a read that
    overlaps a write sees two versions and keeps nothing it computed."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()

    @contextmanager
    def writing(self, name: str) -> Iterator[None]:
        self.counts[name] += 1
        try:
            yield
        finally:
            self.counts[name] += 1


class _Delegating:
    """What a store's object offers beyond the contract (statistics, an in-memory index) stays reachable.

    Reads only: a method that writes must be wrapped in its class below with
    :meth:`_WriteCounter.writing`, or caches would not see its writes.
    """

    inner: Any

    def __getattr__(self, name: str) -> Any:
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)


class _VersionedCollection(_Delegating, Collection):
    """A store's collection that counts its writes."""

    def __init__(self, inner: Collection, writes: _WriteCounter) -> None:
        self.inner = inner
        self.name, self.dim, self.provenance = inner.name, inner.dim, inner.provenance
        self._writes = writes

    def upsert(self, records: Sequence[VectorRecord]) -> None:
        with self._writes.writing(self.name):
            self.inner.upsert(records)

    def delete(self, ids: Sequence[str]) -> int:
        with self._writes.writing(self.name):
            return self.inner.delete(ids)

    def erase(self, ids: Sequence[str]) -> int:
        with self._writes.writing(self.name):
            return self.inner.erase(ids)

    def get(self, ids: Sequence[str]) -> list[VectorRecord]:
        return self.inner.get(ids)

    def search(self, vector: np.ndarray, k: int, filter: Mapping[str, Any] | None = None) -> list[Hit]:
        return self.inner.search(vector, k, filter)

    def search_rows(self, vector: np.ndarray, k: int, filter: Mapping[str, Any] | None = None) -> SearchRows:
        return self.inner.search_rows(vector, k, filter)

    def count(self) -> int:
        return self.inner.count()

    def scan(self, batch_size: int = 10_000) -> Iterator[list[VectorRecord]]:
        return self.inner.scan(batch_size)

    def create_index(self) -> bool:
        return self.inner.create_index()

    def bulk_writes(self) -> AbstractContextManager[None]:
        return self.inner.bulk_writes()

    def bulk_writer(self) -> Any:
        return self.inner.bulk_writer()

    def commit_bulk(self, receipts: Sequence[Any], replaced: Sequence[str]) -> None:
        with self._writes.writing(self.name):
            self.inner.commit_bulk(receipts, replaced)


class _VersionedEventLog(_Delegating, EventLog):
    """The store's event log, counting its appends."""

    def __init__(self, inner: EventLog, writes: _WriteCounter) -> None:
        self.inner = inner
        self._writes = writes

    def append(self, events: Sequence[Event]) -> int | None:
        with self._writes.writing(EVENTS):
            return self.inner.append(events)

    def read(self, user: str | None = None) -> list[Event]:
        return self.inner.read(user)

    def count(self) -> int:
        return self.inner.count()

    def erase_user(self, user: str) -> int:
        with self._writes.writing(EVENTS):
            return self.inner.erase_user(user)

    def users(self) -> list[str]:
        return self.inner.users()

    def item_counts(self) -> dict[str, int]:
        return self.inner.item_counts()


class StoreLayout:
    """Opens, rebuilds, reads and versions the engine's collections and event log."""

    def __init__(
        self,
        store: VectorStore,
        manifest: Manifest,
        encoders: Mapping[str, FieldEncoder],
        fusion: Fusion,
        fusion_fingerprint: str,
    ) -> None:
        self.store = store
        self.manifest = manifest
        self.encoders = dict(encoders)
        self.fusion = fusion
        self.fusion_fingerprint = fusion_fingerprint
        self._bound = False
        self._collections: dict[str, Collection] = {}
        self._events: EventLog | None = None
        self._writes = _WriteCounter()

    def version(self, name: str) -> int:
        """How many writes ``name`` (a collection, or :data:`EVENTS`) has seen in this process."""
        return self._writes.counts[name]

    def changed_elsewhere(self, name: str) -> None:
        """Another process wrote ``name`` (a server saw the store's count move): counted as a
        write, so what was computed from the old data here is computed again."""
        with self._writes.writing(name):
            pass

    # -- dims and provenance -------------------------------------------------------------

    def field_dim(self, encoder: FieldEncoder) -> int:
        known = self.manifest.known_dim(encoder.collection_name, encoder.provenance)
        if known is not None:
            return known
        with encoder.config_errors():  # asking the dim may load the model
            dim = int(encoder.encoder.dim)
        if dim <= 0:  # a clear config error, not a traceback from the store or the fusion
            message = f"plugin {encoder.plugin!r} reports dim {dim}: its vectors need at least one dimension"
            raise ConfigError([(f"encoders.{encoder.slot}", message)])
        return dim

    def field_dims(self) -> dict[str, int]:
        return {slot: self.field_dim(encoder) for slot, encoder in self.encoders.items()}

    def bind_fusion(self) -> Fusion:
        """Bind the fusion to the field dims once, then load its trained state if the manifest has some.

        A fusion's trained state presupposes its field dims, so it loads right after binding.
        """
        if not self._bound:
            self.fusion.bind(self.field_dims())
            self._bound = True
            if self.fusion.trainable:
                self.manifest.load_component(FUSION_KEY, self.fusion, self.fusion_fingerprint)
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
            self._collections[name] = self._open(
                name, self.field_dim(encoder), encoder.provenance, rebuild, _field_hint(encoder)
            )
        return self._collections[name]

    def items(self, *, rebuild: bool = False) -> Collection:
        if ITEMS not in self._collections:
            dim = self.bind_fusion().dim
            self._collections[ITEMS] = self._open(ITEMS, dim, self.items_provenance, rebuild, _ITEMS_HINT)
        return self._collections[ITEMS]

    def events(self) -> EventLog:
        if self._events is None:
            self._events = _VersionedEventLog(self.store.events(), self._writes)
        return self._events

    def _open(self, name: str, dim: int, provenance: dict[str, str], rebuild: bool, hint: str) -> Collection:
        try:
            collection = self.store.open(name, dim=dim, provenance=provenance)
        except ProvenanceMismatchError as exc:
            if not rebuild:
                raise ProvenanceMismatchError(f"collection {name!r}: {hint}\n  (store: {exc})") from exc
            self.drop(name)
            collection = self.store.open(name, dim=dim, provenance=provenance)
        self.manifest.remember_collection(name, dim, provenance)
        return _VersionedCollection(collection, self._writes)

    def drop(self, name: str) -> bool:
        """Drop a collection so it can be made again with the current provenance."""
        self._collections.pop(name, None)
        try:
            with self._writes.writing(name):
                existed = self.store.drop(name)
        except NotImplementedError:
            raise ProvenanceMismatchError(
                f"collection {name!r} must be rebuilt, but store {self.store.name!r} cannot drop collections: "
                "point the config at a new store and ingest again"
            ) from None
        self.manifest.forget_collection(name)
        return bool(existed)

    # -- reading -------------------------------------------------------------------------

    def field_records(self, encoder: FieldEncoder, ids: Sequence[str]) -> dict[str, VectorRecord]:
        return {record.id: record for record in self.field(encoder).get(list(ids))}

    def item_matrix(self) -> tuple[list[str], np.ndarray]:
        """Every fused vector: ids (sorted) and a float32 ``(n, dim)`` matrix."""
        collection = self.items()
        rows: dict[str, np.ndarray] = {}
        for batch in collection.scan():
            rows.update((record.id, np.asarray(record.vector, dtype=np.float32)) for record in batch)
        ids = sorted(rows)
        matrix = np.stack([rows[item_id] for item_id in ids]) if ids else np.zeros((0, collection.dim), np.float32)
        return ids, matrix


_ITEMS_HINT = (
    "the fused vectors were made with another fusion or other encoders than configured now. "
    "If only the fusion changed, run `polyrec fit` or engine.re_fuse() to re-fuse from the stored field "
    "vectors (no re-encoding); if an encoder changed, ingest with rebuild=True (polyrec ingest --rebuild)"
)


def _field_hint(encoder: FieldEncoder) -> str:
    return (
        f"field {encoder.field!r} (slot {encoder.slot!r}) was encoded by another encoder or encoder config "
        f"than the configured {encoder.plugin!r}. Ingest into a new store, or re-encode with "
        "ingest(..., rebuild=True) (polyrec ingest --rebuild), which drops the stale vectors"
    )
