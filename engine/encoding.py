"""One encoder slot at work: content hashes, cache look-up, and per-item isolated encoding.

Per-item error isolation is the scheme of :mod:`polyrec.contracts.isolation` (the one the
contract suites check): ``content_bytes`` and ``prepare`` run item by item, ``encode`` in
batches that are bisected when they raise, every row is checked, and errors about the
setup rather than an item stop the run.

Content hash: ``sha256(encoder.content_bytes(value) + fingerprint + fit id)``. The
fingerprint is the encoder's config fingerprint (what model, which parameters); the fit
id changes with every fit of a trainable encoder. Equal hash means equal vector, so a
stored vector with the same hash is reused instead of encoding again.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from polyrec.contracts import Collection, ConfigError, Encoder, ItemFailure, is_missing
from polyrec.contracts.isolation import DEFAULT_BATCH_SIZE, describe_error, encode_isolated, is_fatal

__all__ = ["DEFAULT_BATCH_SIZE", "HASH_KEY", "FieldEncoder", "describe_error", "is_fatal"]

#: metadata key of the content hash in ``field__<slot>`` records (and of the item hash in ``items``)
HASH_KEY = "_hash"
#: bytes of recently encoded vectors a slot keeps by content hash, so that a content repeated
#: across a catalog's chunks is encoded once (equal hash: equal vector)
RECENT_VECTOR_BYTES = 64 * 2**20


@dataclass
class UniqueEncode:
    """What :meth:`FieldEncoder.encode_unique` did: vectors by item id, failures, and how many
    of the vectors were copied from an equal content rather than encoded."""

    vectors: dict[str, np.ndarray]
    failures: list[ItemFailure]
    reused: int = 0


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
    _recent: OrderedDict[str, np.ndarray] = field(default_factory=OrderedDict, init=False, repr=False, compare=False)

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

    @contextmanager
    def config_errors(self) -> Iterator[None]:
        """A :class:`ConfigError` the encoder raises (e.g. its model cannot be loaded) names
        this slot: ``model`` becomes ``encoders.<slot>.model``."""
        try:
            yield
        except ConfigError as exc:
            prefix = f"encoders.{self.slot}"
            problems = [
                (key if key.startswith("encoders.") else f"{prefix}.{key}" if key else prefix, message)
                for key, message in exc.problems
            ]
            raise ConfigError(problems, exc.source) from exc

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

    def encode_unique(self, values: Mapping[str, Any], hashes: Mapping[str, str], dim: int) -> UniqueEncode:
        """:meth:`encode_values`, each distinct content hash encoded once: items that share a
        content (in ``values``, or with one this slot encoded recently) share its vector, and
        its failure."""
        done = UniqueEncode({}, [])
        first: dict[str, str] = {}  # content hash -> the item that is encoded for it
        copies: dict[str, str] = {}  # item -> the item whose vector it takes
        todo: dict[str, Any] = {}
        for item_id, value in values.items():
            key = hashes.get(item_id)
            if key is not None and key in self._recent:
                done.vectors[item_id] = self._recent[key]
                done.reused += 1
            elif key is not None and key in first:
                copies[item_id] = first[key]
            else:
                if key is not None:
                    first[key] = item_id
                todo[item_id] = value
        fresh, done.failures = self.encode_values(todo, dim)
        done.vectors.update(fresh)
        failed = {failure.item_id: failure for failure in done.failures}
        for item_id, source in copies.items():
            if source in fresh:
                done.vectors[item_id] = fresh[source]
                done.reused += 1
            elif source in failed:
                done.failures.append(failed[source].model_copy(update={"item_id": item_id}))
        self._remember({hashes[item_id]: vector for item_id, vector in fresh.items() if item_id in hashes})
        return done

    def forget_recent(self) -> None:
        """Drop the recently encoded vectors (a rebuild encodes everything again)."""
        self._recent.clear()

    def _remember(self, vectors: Mapping[str, np.ndarray]) -> None:
        for key, vector in vectors.items():
            self._recent[key] = vector
        limit = max(1, RECENT_VECTOR_BYTES // max(1, next(iter(vectors.values())).nbytes)) if vectors else 0
        while vectors and len(self._recent) > limit:
            self._recent.popitem(last=False)

    def encode_values(self, values: Mapping[str, Any], dim: int) -> tuple[dict[str, np.ndarray], list[ItemFailure]]:
        """Prepare, encode and check ``values``; return vectors by item id and the failures."""
        with self.config_errors():
            return encode_isolated(
                self.encoder,
                list(values),
                list(values.values()),
                dim=dim,
                batch_size=self.batch_size,
                field=self.field,
                plugin=self.plugin,
            )
