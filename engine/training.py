"""``fit``: train what is trainable, in dependency order, and persist it.

1. trainable encoders (behavior) learn from the event log, then their field is encoded
   again for every stored item;
2. a trainable fusion learns from the stored field vectors (and the event log);
3. every item is fused again from the stored field vectors (when 1 or 2 changed anything);
4. a trainable scorer learns from the fused vectors and the users' sequences.

Before all that, every scorer (trainable or not) ``observe``s the event log: statistics
that need no training, such as the popularity counts of a prior.

Each fitted component's state is saved right away (see :mod:`.manifest`), so a later
``Engine.from_config`` on the same store picks it up.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from polyrec.contracts import Event, Item, ItemFailure, PolyrecError, TrainingData
from polyrec.engine.assembly import Assembly
from polyrec.engine.encoding import FieldEncoder
from polyrec.engine.fusing import catalog, re_fuse, stored_fields
from polyrec.engine.ingest import write_slot
from polyrec.engine.manifest import FUSION_KEY, SCORER_KEY, encoder_key

__all__ = ["FitReport", "build_training_data", "run_fit"]


@dataclass
class FitReport:
    """What ``fit`` trained, on how much, and how long each step took (seconds)."""

    events: int = 0
    users: int = 0
    items: int = 0
    fitted: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    #: items whose field could not be encoded again by a fitted encoder (named like ingest's)
    failures: list[ItemFailure] = field(default_factory=list)
    #: one line per extra model fitted beside the components (the user-attribute prior)
    notes: list[str] = field(default_factory=list)

    def summary(self, max_messages: int = 10) -> str:
        if not self.fitted:
            return "\n".join(["nothing to fit: no component of this config is trainable", *self.notes])
        steps = ", ".join(f"{name} {seconds:.2f}s" for name, seconds in self.timings.items())
        lines = [
            f"fitted {', '.join(self.fitted)} on {self.events} events of {self.users} users "
            f"over {self.items} items ({steps})",
            *self.notes,
        ]
        if self.failures:
            lines.append(f"{len(self.failures)} items failed to encode again after the fit:")
            lines += [f"  {failure}" for failure in self.failures[:max_messages]]
            if len(self.failures) > max_messages:
                lines.append(f"  ... and {len(self.failures) - max_messages} more")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready values (``polyrec fit --json``)."""
        return {**vars(self), "failures": [failure.model_dump() for failure in self.failures]}


def build_training_data(
    events: Sequence[Event], item_ids: Sequence[str], item_vectors: np.ndarray, seed: int = 0
) -> TrainingData:
    """Per-user sequences of item indices, oldest first (ties keep the log's order).

    Events of items without a vector are left out; users are sorted by id.
    """
    index = {item_id: i for i, item_id in enumerate(item_ids)}
    per_user: dict[str, list[tuple[float, int, int]]] = {}
    for order, event in enumerate(events):
        position = index.get(event.item)
        if position is not None:
            per_user.setdefault(event.user, []).append((event.timestamp, order, position))
    users = sorted(per_user)
    sequences, timestamps = [], []
    for user in users:
        rows = sorted(per_user[user])
        sequences.append(np.array([row[2] for row in rows], dtype=np.int64))
        timestamps.append(np.array([row[0] for row in rows], dtype=np.float64))
    return TrainingData(list(item_ids), item_vectors, users, sequences, timestamps, seed)


def _reencode(
    assembly: Assembly,
    encoder: FieldEncoder,
    items: Mapping[str, Mapping[str, Any]],
    chunk_size: int,
    failures: list[ItemFailure],
) -> int:
    """Encode ``encoder``'s field of every catalog item again (after the encoder was fitted).

    Written like ingest writes a slot (:func:`.ingest.write_slot`): failures name the item,
    field and plugin, and a failed item loses its vector of the previous fit (another space).
    """
    collection = assembly.layout.field(encoder)
    ids = sorted(items)
    written = 0
    for start in range(0, len(ids), chunk_size):
        chunk = ids[start : start + chunk_size]
        values = {
            item_id: value for item_id in chunk if (value := encoder.value_of(item_id, items[item_id])) is not None
        }
        hashes, hash_failures = encoder.hash_values(values)
        failures += hash_failures
        stored = write_slot(encoder, collection, values, hashes, items, failures, replaced=list(values))
        written += len(stored.vectors)
    return written


class _Clock:
    def __init__(self, timings: dict[str, float]) -> None:
        self.timings = timings

    def __call__(self, name: str) -> _Clock:
        self.name = name
        return self

    def __enter__(self) -> None:
        self.started = time.perf_counter()

    def __exit__(self, *exc: object) -> None:
        self.timings[self.name] = time.perf_counter() - self.started


def run_fit(assembly: Assembly, *, chunk_size: int = 1024) -> FitReport:
    report = FitReport()
    clock = _Clock(report.timings)
    with clock("read events"):
        events = assembly.layout.events().read()
    report.events = len(events)
    report.users = len({event.user for event in events})
    trainable_encoders = [fe for fe in assembly.encoders.values() if fe.encoder.trainable]
    with clock(f"observe {SCORER_KEY}"):
        # statistics (e.g. popularity counts) for every scorer, trained or not
        assembly.scorer.observe(events)
    if not assembly.trainable():
        return report
    items = catalog(assembly)
    if not items and (not trainable_encoders or not events):  # a behavior encoder could still learn from events
        raise PolyrecError(_no_item_vectors([]))
    if not events and (trainable_encoders or assembly.scorer.trainable):
        raise PolyrecError("fit needs events: add them first (polyrec events FILE, or engine.add_events)")
    for fe in trainable_encoders:
        key = encoder_key(fe.slot)
        with clock(f"fit {key}"):
            fe.encoder.fit(events, [Item(id=item_id, fields=dict(meta)) for item_id, meta in items.items()])
            fe.fit_id = assembly.manifest.save_component(key, fe.encoder, fe.fingerprint)
        with clock(f"encode {key}"):
            _reencode(assembly, fe, items, chunk_size, report.failures)
        report.fitted.append(key)
    if assembly.fusion.trainable:
        with clock(f"fit {FUSION_KEY}"):
            _fit_fusion(assembly, events)
        report.fitted.append(FUSION_KEY)
    if trainable_encoders or assembly.fusion.trainable:
        with clock("fuse"):
            re_fuse(assembly, chunk_size=chunk_size)
    ids, vectors = assembly.layout.item_matrix()
    report.items = len(ids)
    if not ids and assembly.scorer.trainable:
        raise PolyrecError(_no_item_vectors(report.fitted))
    if assembly.scorer.trainable:
        with clock(f"fit {SCORER_KEY}"):
            assembly.scorer.fit(build_training_data(events, ids, vectors, assembly.settings.seed))
            assembly.manifest.save_component(SCORER_KEY, assembly.scorer, assembly.fingerprints[SCORER_KEY])
        report.fitted.append(SCORER_KEY)
    return report


def _no_item_vectors(fitted: Sequence[str]) -> str:
    message = "fit: the store has no item vectors, so there is nothing to train the scorer on"
    if fitted:
        return f"{message}; {', '.join(fitted)} fitted now: ingest the catalog again to give items their vectors"
    return f"{message}: ingest the catalog first (polyrec ingest FILE, or engine.ingest) and check its report"


def _fit_fusion(assembly: Assembly, events: Sequence[Event]) -> None:
    """Fit the fusion on every item's stored field vectors.

    ``data.item_vectors`` is empty (shape ``(n, 0)``): the fused vectors are what the
    fusion is about to define; ``data`` carries the users' sequences over ``ids``.
    """
    ids = sorted(catalog(assembly))
    if not ids:
        raise PolyrecError("fit needs items: ingest the catalog first (polyrec ingest FILE, or engine.ingest)")
    assembly.layout.bind_fusion()
    fields, present, _ = stored_fields(assembly, ids)
    data = build_training_data(events, ids, np.zeros((len(ids), 0), np.float32), assembly.settings.seed)
    assembly.fusion.fit(fields, present, data if events else None)
    assembly.manifest.save_component(FUSION_KEY, assembly.fusion, assembly.fingerprints[FUSION_KEY])
