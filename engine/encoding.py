"""One encoder slot at work: content hashes, cache look-up, prepare, batch encode, checks.

Per-item error isolation: ``content_bytes`` and ``prepare`` run item by item, so a bad
value fails alone; ``encode`` runs in batches of the encoder's ``batch_size``, and a batch
that raises is bisected until the items that make it fail are found, so the rest of the
batch is still encoded. Every returned row is checked (finite, right length) and a bad
one fails just its item. Errors that are not about an item (a missing library, an
unfitted component, ...: any :class:`PolyrecError` other than :class:`ItemError`) stop
the run instead of failing every item one by one.

Content hash: ``sha256(encoder.content_bytes(value) + fingerprint + fit id)``. The
fingerprint is the encoder's config fingerprint (what model, which parameters); the fit
id changes with every fit of a trainable encoder. Equal hash means equal vector, so a
stored vector with the same hash is reused instead of encoding again.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from polyrec.contracts import (
    Collection,
    Encoder,
    ItemError,
    ItemFailure,
    PluginError,
    PolyrecError,
    is_missing,
)

__all__ = ["DEFAULT_BATCH_SIZE", "HASH_KEY", "FieldEncoder", "describe_error", "is_fatal"]

DEFAULT_BATCH_SIZE = 64
#: metadata key of the content hash in ``field__<slot>`` records (and of the item hash in ``items``)
HASH_KEY = "_hash"


def is_fatal(exc: BaseException) -> bool:
    """True for errors about the setup rather than one item: they stop the run."""
    if isinstance(exc, ItemError):
        return False
    return isinstance(exc, PolyrecError | MemoryError)


def describe_error(exc: BaseException) -> str:
    """A one-line reason: the message, prefixed by the type unless it is a plain ValueError."""
    if isinstance(exc, ItemError):
        return exc.reason
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    if isinstance(exc, ValueError) and type(exc) is ValueError and message:
        return message
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


@dataclass
class FieldEncoder:
    """An encoder bound to its config slot and the item field it reads.

    ``fingerprint`` is captured before any trained state is loaded, so it names the
    config, not the weights; ``fit_id`` is set once the encoder is fitted (or its fitted
    state was loaded). An encoder that reads item ids gives vectors only once fitted.
    """

    slot: str
    field: str
    plugin: str
    encoder: Encoder
    fingerprint: str
    fit_id: str | None = None

    @property
    def collection_name(self) -> str:
        return f"field__{self.slot}"

    @property
    def provenance(self) -> dict[str, str]:
        return {"encoder": self.plugin, "fingerprint": self.fingerprint}

    @property
    def usable(self) -> bool:
        return not self.encoder.reads_item_id or self.fit_id is not None

    @property
    def batch_size(self) -> int:
        size = getattr(self.encoder.config, "batch_size", None)
        return int(size) if isinstance(size, int) and size > 0 else DEFAULT_BATCH_SIZE

    def value_of(self, item_id: str, fields: Mapping[str, Any]) -> Any | None:
        """The value to encode for an item; None when it has none (a missing field)."""
        if not self.usable:
            return None
        if self.encoder.reads_item_id:
            return item_id
        value = fields.get(self.field)
        return None if is_missing(value) else value

    def failure(self, item_id: str, exc: BaseException) -> ItemFailure:
        return ItemFailure(item_id=item_id, field=self.field, plugin=self.plugin, reason=describe_error(exc))

    # -- hashing and cache ---------------------------------------------------------------

    def content_hash(self, value: Any) -> str:
        digest = hashlib.sha256(self.encoder.content_bytes(value))
        digest.update(b"\x00" + self.fingerprint.encode() + b"\x00" + (self.fit_id or "").encode())
        return digest.hexdigest()

    def hash_values(self, values: Mapping[str, Any]) -> tuple[dict[str, str], list[ItemFailure]]:
        """Content hash per item id; a value whose bytes cannot be read fails its item."""
        hashes: dict[str, str] = {}
        failures: list[ItemFailure] = []
        for item_id, value in values.items():
            try:
                hashes[item_id] = self.content_hash(value)
            except Exception as exc:
                if is_fatal(exc):
                    raise
                failures.append(self.failure(item_id, exc))
        return hashes, failures

    @staticmethod
    def cached(collection: Collection, hashes: Mapping[str, str]) -> dict[str, np.ndarray]:
        """Stored vectors whose content hash is still the current one (one batch read)."""
        if not hashes:
            return {}
        return {
            record.id: np.asarray(record.vector, dtype=np.float32)
            for record in collection.get(list(hashes))
            if record.metadata.get(HASH_KEY) == hashes[record.id]
        }

    # -- encoding ------------------------------------------------------------------------

    def encode_values(self, values: Mapping[str, Any], dim: int) -> tuple[dict[str, np.ndarray], list[ItemFailure]]:
        """Prepare, encode and check ``values``; return vectors by item id and the failures."""
        failures: list[ItemFailure] = []
        ids: list[str] = []
        prepared: list[Any] = []
        for item_id, value in values.items():
            try:
                prepared.append(self.encoder.prepare(value))
                ids.append(item_id)
            except Exception as exc:
                if is_fatal(exc):
                    raise
                failures.append(self.failure(item_id, exc))
        vectors: dict[str, np.ndarray] = {}
        for start in range(0, len(ids), self.batch_size):
            stop = start + self.batch_size
            self._encode_isolating(ids[start:stop], prepared[start:stop], dim, vectors, failures)
        return vectors, failures

    def _encode_isolating(
        self,
        ids: Sequence[str],
        batch: Sequence[Any],
        dim: int,
        vectors: dict[str, np.ndarray],
        failures: list[ItemFailure],
    ) -> None:
        try:
            rows = self._rows(batch)
        except Exception as exc:
            if is_fatal(exc):
                raise
            if len(ids) == 1:
                failures.append(self.failure(ids[0], exc))
                return
            middle = len(ids) // 2  # bisect: the good half must not pay for the bad one
            self._encode_isolating(ids[:middle], batch[:middle], dim, vectors, failures)
            self._encode_isolating(ids[middle:], batch[middle:], dim, vectors, failures)
            return
        for item_id, row in zip(ids, rows, strict=True):
            problem = _row_problem(row, dim)
            if problem is None:
                vectors[item_id] = row
            else:
                failures.append(ItemFailure(item_id=item_id, field=self.field, plugin=self.plugin, reason=problem))

    def _rows(self, batch: Sequence[Any]) -> list[np.ndarray]:
        output = self.encoder.encode(list(batch))
        rows = list(output) if not isinstance(output, np.ndarray) or output.ndim == 2 else None
        if rows is None or len(rows) != len(batch):
            shape = getattr(output, "shape", None) or len(output)
            raise PluginError(
                f"encoder {self.plugin!r} (field {self.field!r}) returned {shape} for a batch of {len(batch)}: "
                "encode must return one row per value"
            )
        return [np.asarray(row, dtype=np.float32).reshape(-1) for row in rows]


def _row_problem(row: np.ndarray, dim: int) -> str | None:
    if row.shape != (dim,):
        return f"encoder returned a vector of length {row.size}, expected {dim}"
    if not np.isfinite(row).all():
        return "encoder returned a vector with NaN or infinite values"
    return None
