"""Per-item failure isolation for encoders: the one scheme the engine runs and the contract suites check.

``prepare`` runs item by item, so a bad value fails alone; ``encode`` runs in batches of
``batch_size`` (values batched by length, :meth:`Encoder.batch_lengths`, so a text model pads little), and a
batch that raises is bisected until the items that make it fail are found, so the rest
of the batch is still encoded. With ``dim``, every returned row is checked (finite,
right length) and a bad one fails just its item. Errors that are not
about an item (a missing library, an unfitted component, ...: any :class:`PolyrecError`
other than :class:`ItemError`, and ``MemoryError``) stop the run instead of failing every
item one by one.

    vectors, failures = encode_isolated(encoder, ["a", "b"], ["red apple", 7], dim=encoder.dim)

Only numpy and polyrec.contracts are imported here.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

from polyrec.contracts.components import Encoder
from polyrec.contracts.errors import ItemError, PluginError, PolyrecError
from polyrec.contracts.records import ItemFailure

__all__ = ["DEFAULT_BATCH_SIZE", "describe_error", "encode_isolated", "is_fatal"]

DEFAULT_BATCH_SIZE = 64

log = logging.getLogger(__name__)


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


class _Isolator:
    """One call of :func:`encode_isolated`: where its vectors and failures go."""

    def __init__(self, encoder: Encoder, dim: int | None, field: str | None, plugin: str) -> None:
        self.encoder, self.dim, self.field, self.plugin = encoder, dim, field, plugin
        self.vectors: dict[str, np.ndarray] = {}
        self.failures: list[ItemFailure] = []

    def fail(self, item_id: str, reason: str) -> None:
        self.failures.append(ItemFailure(item_id=item_id, field=self.field, plugin=self.plugin, reason=reason))

    def encode(self, ids: Sequence[str], batch: Sequence[Any]) -> None:
        try:
            rows = self._rows(batch)
        except Exception as exc:
            if is_fatal(exc):
                raise
            if len(ids) == 1:
                self.fail(ids[0], describe_error(exc))
                return
            middle = len(ids) // 2  # bisect: the good half must not pay for the bad one
            self.encode(ids[:middle], batch[:middle])
            self.encode(ids[middle:], batch[middle:])
            return
        for item_id, row in zip(ids, rows, strict=True):
            problem = _row_problem(row, self.dim)
            if problem is None:
                self.vectors[item_id] = row
            else:
                self.fail(item_id, problem)

    def _rows(self, batch: Sequence[Any]) -> list[np.ndarray]:
        output = self.encoder.encode(list(batch))
        rows = list(output) if not isinstance(output, np.ndarray) or output.ndim == 2 else None
        if rows is None or len(rows) != len(batch):
            shape = getattr(output, "shape", None) or len(output)
            where = f" (field {self.field!r})" if self.field else ""
            raise PluginError(
                f"encoder {self.plugin!r}{where} returned {shape} for a batch of {len(batch)}: "
                "encode must return one row per value"
            )
        return [np.asarray(row, dtype=np.float32).reshape(-1) for row in rows]


def encode_isolated(
    encoder: Encoder,
    item_ids: Sequence[str],
    values: Sequence[Any],
    *,
    dim: int | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    field: str | None = None,
    plugin: str | None = None,
) -> tuple[dict[str, np.ndarray], list[ItemFailure]]:
    """Prepare and encode ``values``; return ``({item_id: float32 vector}, failures)``.

    Each failure names the item, ``field`` and ``plugin`` (default: the encoder's name) and
    why. ``dim`` (when given) is the length every vector must have.
    """
    isolator = _Isolator(encoder, dim, field, plugin or encoder.name)
    ids: list[str] = []
    prepared: list[Any] = []
    for item_id, value in zip(item_ids, values, strict=True):
        try:
            prepared.append(encoder.prepare(value))
            ids.append(item_id)
        except Exception as exc:
            if is_fatal(exc):
                raise
            isolator.fail(item_id, describe_error(exc))
    lengths = _batch_lengths(encoder, prepared, plugin or encoder.name)
    if lengths is not None:  # values of like length batched together: a model pads each batch to its longest
        order = sorted(range(len(prepared)), key=lengths.__getitem__)
        ids, prepared = [ids[i] for i in order], [prepared[i] for i in order]
    for start in range(0, len(ids), max(1, batch_size)):
        stop = start + batch_size
        isolator.encode(ids[start:stop], prepared[start:stop])
    return isolator.vectors, isolator.failures


def _batch_lengths(encoder: Encoder, prepared: list[Any], plugin: str) -> Sequence[int] | None:
    """The encoder's :meth:`~Encoder.batch_lengths`, else strings' character counts. Only the
    batches' order hangs on it: a plugin whose lengths fail is warned about, not stopped."""
    if len(prepared) < 2:
        return None
    try:
        lengths = encoder.batch_lengths(prepared)
        if lengths is not None and len(lengths) != len(prepared):
            raise ValueError(f"{len(lengths)} lengths for {len(prepared)} values")
    except Exception as exc:
        if is_fatal(exc):
            raise
        log.warning("encoder %r: batch_lengths failed (%s); batching by character count", plugin, describe_error(exc))
        lengths = None
    if lengths is None and all(isinstance(value, str) for value in prepared):
        lengths = [len(value) for value in prepared]
    return lengths


def _row_problem(row: np.ndarray, dim: int | None) -> str | None:
    if dim is not None and row.shape != (dim,):
        return f"encoder returned a vector of length {row.size}, expected {dim}"
    if not np.isfinite(row).all():
        return "encoder returned a vector with NaN or infinite values"
    return None
