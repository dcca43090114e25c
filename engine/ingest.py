"""Ingest: chunks of items (from :mod:`.readers`) -> per-field vectors (cached or encoded) -> fused item vectors.

Per chunk:

1. every encoder slot takes its value from each item (a missing value is not an error:
   the slot is listed in the item's ``_missing``) and hashes it;
2. items whose *item hash* (field content hashes + metadata) equals the stored one are
   skipped outright: re-ingesting an unchanged catalog costs one batch read per chunk;
3. for the others, each slot reuses stored vectors with the same content hash and
   encodes the rest (see :class:`~polyrec.engine.encoding.FieldEncoder`);
4. the fields of each item are fused and written to ``items`` with the item's metadata.

An item with no field vector at all is a failure (unless its fields already failed
individually, which are reported instead). Fusing and re-fusing live in :mod:`.fusing`.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Callable, Container, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from polyrec.contracts import Collection, Item, ItemFailure, NotFittedError, VectorRecord, is_missing
from polyrec.contracts.limits import fields_problem
from polyrec.contracts.media import resolve_file_value
from polyrec.engine._deprecated import moved
from polyrec.engine.assembly import Assembly
from polyrec.engine.data_check import FieldCheck, failure_line
from polyrec.engine.encoding import HASH_KEY, FieldEncoder
from polyrec.engine.fusing import field_matrices, item_hash, store_fused, upsert_isolating
from polyrec.engine.readers import ItemChunk

__all__ = [
    "IngestReport",
    "IngestPipeline",
    "SlotWrite",
    "encode_slot",
    "item_metadata",
    "write_groups",
    "store_slot",
    "write_slot",
]

#: the readers lived here before this module held the ingest (old ``polyrec.engine.pipeline``)
__getattr__ = moved(
    __name__,
    {
        "EventError": "polyrec.engine.readers",
        "read_items": "polyrec.engine.readers",
        "read_events": "polyrec.engine.readers",
        "source_dir": "polyrec.engine.readers",
    },
)

#: modalities of the built-in file-reading encoders (kept for imports: since 0.2 the engine asks
#: ``Encoder.takes_files()`` instead, so a plugin's own modality name works the same)
MEDIA_MODALITIES = frozenset({"image", "audio", "video"})


@dataclass
class IngestReport:
    """What an ingest did. ``failures`` name the item, the field and the plugin."""

    stored: int = 0
    unchanged: int = 0
    pending: int = 0
    encoded: int = 0
    cached: int = 0
    failures: list[ItemFailure] = field(default_factory=list)
    seconds: float = 0.0
    #: above this share of failed items, :meth:`summary` ends with a one-line count of the reasons
    warn_failure_share: float = 0.05

    @property
    def total(self) -> int:
        """Items of this ingest that are in the store now (written or already up to date)."""
        return self.stored + self.unchanged + self.pending

    def add(self, other: IngestReport) -> None:
        self.stored += other.stored
        self.unchanged += other.unchanged
        self.pending += other.pending
        self.encoded += other.encoded
        self.cached += other.cached
        self.failures.extend(other.failures)

    def failure_counts(self) -> Counter[tuple[str | None, str | None]]:
        """Failures per ``(field, plugin)``."""
        return Counter((failure.field, failure.plugin) for failure in self.failures)

    def summary(self, max_messages: int = 10) -> str:
        lines = [
            f"stored {self.stored} items, {self.unchanged} unchanged, {len(self.failures)} failures "
            f"({self.encoded} field values encoded, {self.cached} reused from cache) in {self.seconds:.1f}s"
        ]
        if self.pending:
            lines.append(f"{self.pending} items wait for `polyrec fit`: the fusion is trainable and not fitted yet")
        for (field_name, plugin), count in sorted(self.failure_counts().items(), key=lambda kv: -kv[1]):
            lines.append(f"  {count:>6} failed  field={field_name or '-'}  plugin={plugin or '-'}")
        for failure in self.failures[:max_messages]:
            lines.append(f"  {failure}")
        if len(self.failures) > max_messages:
            lines.append(f"  ... and {len(self.failures) - max_messages} more")
        if (line := self.failure_line()) is not None:
            lines.append(line)
        return "\n".join(lines)

    def failure_line(self) -> str | None:
        """One line when more than ``warn_failure_share`` of the items failed, with the top reasons."""
        return failure_line(self.failures, self.total + len(self.failures), self.warn_failure_share)


def _filterable(value: Any) -> Any:
    """Scalars and lists of strings are kept as metadata; bytes, arrays, images are not."""
    if is_missing(value):
        return None
    if isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, list | tuple) and value and all(isinstance(element, str) for element in value):
        return list(value)
    return None


def item_metadata(item: Item, exclude: Container[str] = ()) -> dict[str, Any]:
    """The item's filterable metadata (keys starting with ``_`` are reserved)."""
    metadata = {}
    for key, value in item.fields.items():
        kept = None if key.startswith("_") or key in exclude else _filterable(value)
        if kept is not None:
            metadata[key] = kept
    return metadata


@dataclass
class _ChunkPlan:
    """The hashed values of one chunk, per slot."""

    items: list[Item]
    metadata: dict[str, dict[str, Any]]
    values: dict[str, dict[str, Any]]
    hashes: dict[str, dict[str, str]]
    failures: list[ItemFailure]
    digests: dict[str, str] = field(default_factory=dict)  # item hashes of all current field hashes

    def item_hash(self, item_id: str, stored: Mapping[str, set[str]] | None = None) -> str:
        """Item hash from the current hashes; with ``stored``, only of the slots that got a vector."""
        if stored is not None and any(
            item_id in slot_hashes and item_id not in stored[slot] for slot, slot_hashes in self.hashes.items()
        ):
            partial = {
                slot: slot_hashes.get(item_id) if item_id in stored[slot] else None
                for slot, slot_hashes in self.hashes.items()
            }
            return item_hash(partial, self.metadata[item_id])
        digest = self.digests.get(item_id)
        if digest is None:  # every slot's value got its vector: the same hash, computed once
            current = {slot: slot_hashes.get(item_id) for slot, slot_hashes in self.hashes.items()}
            digest = self.digests[item_id] = item_hash(current, self.metadata[item_id])
        return digest


@dataclass
class SlotWrite:
    """What :func:`write_slot` stored: the vectors by item id, how many were encoded and reused."""

    vectors: dict[str, np.ndarray]
    encoded: int = 0
    cached: int = 0


def write_slot(
    encoder: FieldEncoder,
    collection: Collection,
    values: Mapping[str, Any],
    hashes: Mapping[str, str],
    metadata: Mapping[str, Mapping[str, Any]],
    failures: list[ItemFailure],
    *,
    replaced: Iterable[str] = (),
) -> SlotWrite:
    """Encode one slot's ``values`` (reusing stored vectors of the same content hash) and write
    them with their metadata and hash; failures are appended to ``failures``.

    ``replaced``: ids whose stored vector is out of date; those that got no new vector (their
    value failed, or the store rejected it) lose the old one. Ingest and fit's re-encoding
    both write through here, so both report failures and clean up the same way.
    """
    written = encode_slot(encoder, collection, values, hashes, failures)
    return store_slot(collection, written, hashes, metadata, failures, replaced=replaced)


def encode_slot(
    encoder: FieldEncoder,
    collection: Collection,
    values: Mapping[str, Any],
    hashes: Mapping[str, str],
    failures: list[ItemFailure],
    *,
    lookup: Iterable[str] | None = None,
) -> SlotWrite:
    """The first half of :func:`write_slot`: vectors of ``values``, cached or encoded; nothing written.

    ``lookup``: the ids that may have a cached vector (default: all of ``hashes``; see :class:`_RunWrites`)."""
    vectors = FieldEncoder.cached(collection, hashes if lookup is None else {key: hashes[key] for key in lookup})
    written = SlotWrite(vectors, cached=len(vectors))
    todo = {item_id: values[item_id] for item_id in hashes if item_id not in vectors}
    if todo:
        fresh = encoder.encode_unique(todo, hashes, collection.dim)
        written.encoded = len(fresh.vectors) - fresh.reused
        written.cached += fresh.reused
        failures += fresh.failures
        vectors.update(fresh.vectors)
    return written


def store_slot(
    collection: Collection,
    written: SlotWrite,
    hashes: Mapping[str, str],
    metadata: Mapping[str, Mapping[str, Any]],
    failures: list[ItemFailure],
    *,
    replaced: Iterable[str] = (),
) -> SlotWrite:
    """The second half of :func:`write_slot`: upsert ``written``'s vectors, drop the stale ones."""
    # cached vectors are written again too: the item's metadata may be what changed
    records = [
        VectorRecord(id=item_id, vector=vector, metadata={**metadata[item_id], HASH_KEY: hashes[item_id]})
        for item_id, vector in written.vectors.items()
    ]
    before = len(failures)
    upsert_isolating(collection, records, failures)
    rejected = {failure.item_id for failure in failures[before:]}
    written.vectors = {item_id: vector for item_id, vector in written.vectors.items() if item_id not in rejected}
    stale = [item_id for item_id in replaced if item_id not in written.vectors]
    if stale:
        collection.delete(stale)
    return written


#: the most items one write takes (see :func:`write_groups`)
WRITE_GROUP_ITEMS = 16_384


def write_groups(chunks: Iterable[ItemChunk], most: int = WRITE_GROUP_ITEMS) -> Iterator[ItemChunk]:
    """The reader's chunks joined into write groups: the first chunk alone, then twice as many
    items each time, up to ``most``. A store writes each group in one go (LanceDB: one file
    and one table version per collection), so a large catalog is written in few large pieces,
    while the first groups still come back quickly (progress, an early error)."""
    group, size = ItemChunk(), 0
    for chunk in chunks:
        group.items += chunk.items
        group.failures += chunk.failures
        size = size or len(group.items) + len(group.failures)
        if len(group.items) + len(group.failures) >= size:
            yield group
            group, size = ItemChunk(), min(most, 2 * size)
    if group.items or group.failures:
        yield group


def _storable(items: Sequence[Item]) -> tuple[list[Item], list[ItemFailure]]:
    """The items whose fields can be stored, and a failure naming the field for each other one:
    bounded metadata (every key becomes a filter column) and valid text (see contracts.limits)."""
    kept: list[Item] = []
    failures: list[ItemFailure] = []
    for item in items:
        problem = fields_problem(item.fields)
        if problem is None:
            kept.append(item)
        else:
            failures.append(ItemFailure(item_id=item.id, field=problem[0], reason=problem[1]))
    return kept, failures


@dataclass
class _SlotEncode:
    """One slot of an encoded chunk: its vectors, the content hashes of the changed items that
    have a value (what :func:`store_slot` writes with them) and the encode failures."""

    written: SlotWrite
    hashes: dict[str, str]
    failures: list[ItemFailure]


@dataclass
class _EncodedChunk:
    """One chunk encoded and not written yet: its plan, the changed ids, what was stored for
    its ids before, and per slot what :class:`_SlotEncode` holds."""

    plan: _ChunkPlan
    report: IngestReport
    changed: list[str] = field(default_factory=list)
    previous: dict[str, Any] = field(default_factory=dict)
    slots: dict[str, _SlotEncode] = field(default_factory=dict)


#: the most ids :class:`_RunWrites` keeps (a few MiB); past them, every group looks its ids up
RUN_WRITES_MOST_IDS = 100_000


class _RunWrites:
    """Which ids a collection can hold during one run, when it was empty as the run first read
    it (a fresh store, a rebuild): only those the run has sent to be written since. Their
    look-ups (the items' stored hashes, a slot's cached vectors) are then skipped for every
    other id, and for a whole group when none is left: a first ingest reads nothing back.

    Past ``most`` ids (default :data:`RUN_WRITES_MOST_IDS`) the set is dropped and every id is
    looked up again, as for a collection that held rows. Rows another process writes into the
    fresh collection during the run are not looked for: this run stores what it encodes for
    those ids, as when such a write lands between any ingest's look-up and its write."""

    def __init__(self, most: int | None = None) -> None:
        self._most = RUN_WRITES_MOST_IDS if most is None else most
        self._sent: set[str] | None = set()
        self._empty: dict[str, bool] = {}  # collection name -> empty when the run first read it

    def lookup(self, collection: Collection, ids: Iterable[str]) -> list[str]:
        """Those of ``ids`` that ``collection`` may hold now, in order: all of them unless it was
        empty as the run first read it."""
        if self._sent is not None and collection.name not in self._empty:
            self._empty[collection.name] = collection.count() == 0
        if self._sent is None or not self._empty[collection.name]:
            return list(ids)
        return [item_id for item_id in ids if item_id in self._sent]

    def sent(self, ids: Iterable[str]) -> None:
        """``ids`` go to be written (before the next group is read back)."""
        if self._sent is not None:
            self._sent.update(ids)
            if len(self._sent) > self._most:
                self._sent = None


class _WriteBehind:
    """One write at a time in a background thread, with a queue of one: :meth:`submit` first
    waits for the write before it, so groups are written in order and a write's error is
    raised (by the next :meth:`submit`, :meth:`wait` or the block's end) before any later
    group writes anything. A group's ``done`` runs in the caller's thread, in order.

    Leaving the block waits for the write in flight; when the block ends by an error, an
    error of that earlier write is the one raised (an in-order ingest would have met it
    first), the block's own then being its ``__context__``."""

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="polyrec-ingest-write")
        self._pending: tuple[Future[IngestReport], Callable[[IngestReport], None], set[str]] | None = None

    def __enter__(self) -> _WriteBehind:
        return self

    def __exit__(self, *exc_info: object) -> None:
        try:
            self.wait()
        finally:
            self._pool.shutdown(wait=True)

    def writing(self, ids: Iterable[str]) -> bool:
        """Whether the write in flight writes any of ``ids``."""
        return self._pending is not None and not self._pending[2].isdisjoint(ids)

    def submit(self, ids: set[str], write: Callable[[], IngestReport], done: Callable[[IngestReport], None]) -> None:
        self.wait()
        self._pending = (self._pool.submit(write), done, ids)

    def wait(self) -> None:
        if self._pending is None:
            return
        future, done, _ = self._pending
        self._pending = None
        done(future.result())


class IngestPipeline:
    """Runs chunks of items through the encoders, the cache, the fusion and the store."""

    def __init__(self, assembly: Assembly, *, rebuild: bool = False, base_dir: Path | None = None) -> None:
        self.assembly = assembly
        self.layout = assembly.layout
        self.encoders = [fe for fe in assembly.encoders.values() if fe.usable]
        self.rebuild = rebuild
        if rebuild:
            for encoder in self.encoders:
                encoder.forget_recent()
        self.base_dir = base_dir
        self._bulk: ExitStack | None = None  # the collections' bulk_writes blocks during run()
        self._bulk_open = False
        self._writes: _RunWrites | None = None  # during run(): what its collections can hold

    def run(
        self, chunks: Iterable[ItemChunk], progress: Callable[[int], Any] | None = None, *, check_fields: bool = True
    ) -> IngestReport:
        """Ingest every chunk; ``check_fields`` first checks the config against the items (see
        :meth:`_checked`), which suits a whole catalog, not a small batch of updates.

        Each write group's writes (field vectors, fusing, ``items``) run in one background
        thread while the next group is read, hashed and encoded: the writes are mostly
        single-threaded, and torch's encode keeps the other cores busy meanwhile. The groups
        are still written one at a time and in order (see :class:`_WriteBehind`)."""
        started = time.perf_counter()
        report = IngestReport(warn_failure_share=self.assembly.settings.ingest.warn_failure_share)
        self._writes = _RunWrites()
        try:
            with ExitStack() as self._bulk, _WriteBehind() as behind:  # the stack's end: each store's upkeep, once
                for group in write_groups(self._checked(iter(chunks)) if check_fields else chunks):
                    encoded = self._encode_chunk(group.items, behind) if group.items else None
                    behind.submit(
                        set(encoded.changed) if encoded is not None else set(),
                        (lambda encoded=encoded: self._store_chunk(encoded)) if encoded is not None else IngestReport,
                        lambda written, group=group: self._done(report, group, written, progress),
                    )
        finally:
            self._bulk, self._bulk_open, self._writes = None, False, None
        report.seconds = time.perf_counter() - started
        return report

    @staticmethod
    def _done(
        report: IngestReport, group: ItemChunk, written: IngestReport, progress: Callable[[int], Any] | None
    ) -> None:
        """A group is written: its reader failures, then its own report, as an in-order run adds them."""
        report.failures.extend(group.failures)
        if group.items:
            report.add(written)
        if progress is not None:
            progress(len(group.items) + len(group.failures))

    def _bulk_writes(self) -> None:
        """Before the run's first write: tell every collection it writes that many upserts
        follow (:meth:`Collection.bulk_writes`: a store may defer index upkeep to the end). Not
        sooner: an unchanged catalog opens no field collection, and with ``rebuild`` opening
        may drop one, which waits until the field check passed."""
        if self._bulk is None or self._bulk_open:
            return
        self._bulk_open = True
        self._bulk.enter_context(self.layout.items(rebuild=self.rebuild).bulk_writes())
        for encoder in self.encoders:
            self._bulk.enter_context(self.layout.field(encoder, rebuild=self.rebuild).bulk_writes())

    def _checked(self, chunks: Iterator[ItemChunk]) -> Iterator[ItemChunk]:
        """The chunks, once the items read so far give every encoder slot a field (see
        :mod:`.data_check`): usually the first chunk; a slot no item fills stops the ingest
        before anything is encoded."""
        check = FieldCheck(self.assembly.settings, self.assembly.encoders)
        read: list[ItemChunk] = []
        for chunk in chunks:
            read.append(chunk)
            if check.add(chunk.items):
                break
        else:
            check.check()
        yield from read
        yield from chunks

    # -- one chunk -----------------------------------------------------------------------

    def _value(self, encoder: FieldEncoder, item_id: str, fields: Mapping[str, Any]) -> Any | None:
        value = encoder.value_of(item_id, fields)
        # a path string becomes a Path (found beside the catalog first) for every encoder that
        # takes files, whatever its modality is called (Encoder.takes_files)
        return resolve_file_value(value, self.base_dir) if encoder.encoder.takes_files() else value

    def plan(self, items: Sequence[Item]) -> _ChunkPlan:
        unique = list({item.id: item for item in items}.values())  # a repeated id: the last one wins
        settings = self.assembly.settings
        # derived fields (e.g. one text composed of title, genres and year) are encoded, not
        # stored: they repeat their sources (and callers may have composed them already)
        metadata = {item.id: item_metadata(item, exclude=settings.derived) for item in unique}
        plan = _ChunkPlan(unique, metadata, {}, {}, [])
        fields = {
            item.id: settings.with_derived_fields(item.fields) if settings.derived else item.fields for item in unique
        }
        for encoder in self.encoders:
            values = {
                item.id: value
                for item in unique
                if (value := self._value(encoder, item.id, fields[item.id])) is not None
            }
            hashes, failures = encoder.hash_values(values)
            plan.values[encoder.slot] = values
            plan.hashes[encoder.slot] = hashes
            plan.failures += failures
        return plan

    def ingest_chunk(self, items: Sequence[Item]) -> IngestReport:
        """Encode and write one chunk, in this thread."""
        return self._store_chunk(self._encode_chunk(items))

    def _encode_chunk(self, items: Sequence[Item], behind: _WriteBehind | None = None) -> _EncodedChunk:
        """Everything of one chunk that writes nothing: plan, unchanged items, field vectors.

        ``behind``: a write of an earlier group may still run; it is waited for when this
        chunk has one of its ids (what is stored for those ids is read here)."""
        items, refused = _storable(items)
        plan = self.plan(items)
        if behind is not None and behind.writing(plan.metadata):
            behind.wait()
        encoded = _EncodedChunk(plan, IngestReport(failures=refused + list(plan.failures)))
        items_collection = self.layout.items(rebuild=self.rebuild)
        lookup = self._lookup(items_collection, plan.metadata)
        previous = (
            {record.id: record.metadata.get(HASH_KEY) for record in items_collection.get(lookup)} if lookup else {}
        )
        encoded.previous = previous
        for item in plan.items:
            if previous.get(item.id) == plan.item_hash(item.id):
                encoded.report.unchanged += 1
                encoded.report.cached += sum(item.id in values for values in plan.values.values())
            else:
                encoded.changed.append(item.id)
        if encoded.changed:
            self._bulk_writes()
            for encoder in self.encoders:
                encoded.slots[encoder.slot] = self._encode_slot(encoder, encoded)
            if self._writes is not None:
                self._writes.sent(encoded.changed)
        return encoded

    def _lookup(self, collection: Collection, ids: Iterable[str]) -> list[str]:
        """The ids worth reading back from ``collection`` (all of them outside :meth:`run`)."""
        return self._writes.lookup(collection, ids) if self._writes is not None else list(ids)

    def _encode_slot(self, encoder: FieldEncoder, encoded: _EncodedChunk) -> _SlotEncode:
        slot_hashes = encoded.plan.hashes[encoder.slot]
        hashes = {item_id: slot_hashes[item_id] for item_id in encoded.changed if item_id in slot_hashes}
        values = encoded.plan.values[encoder.slot]
        failures: list[ItemFailure] = []
        collection = self.layout.field(encoder, rebuild=self.rebuild)
        written = encode_slot(
            encoder,
            collection,
            {item_id: values[item_id] for item_id in hashes},
            hashes,
            failures,
            lookup=self._lookup(collection, hashes),
        )
        return _SlotEncode(written, hashes, failures)

    def _store_chunk(self, encoded: _EncodedChunk) -> IngestReport:
        """Everything of one chunk that writes: field vectors, then the fused items."""
        report, plan, changed = encoded.report, encoded.plan, encoded.changed
        if not changed:
            return report
        vectors = {}
        for encoder in self.encoders:
            slot = encoded.slots[encoder.slot]
            written = slot.written
            report.failures += slot.failures  # a slot's encode failures, then its write's: as write_slot adds them
            store_slot(
                self.layout.field(encoder, rebuild=self.rebuild),
                written,
                slot.hashes,
                plan.metadata,
                report.failures,
                replaced=[item_id for item_id in changed if item_id in encoded.previous],
            )
            report.encoded += written.encoded
            report.cached += written.cached
            vectors[encoder.slot] = written.vectors
        self._fuse_and_store(plan, changed, vectors, encoded.previous, report)
        return report

    def _fuse_and_store(
        self,
        plan: _ChunkPlan,
        changed: Sequence[str],
        vectors: Mapping[str, Mapping[str, np.ndarray]],
        previous: Mapping[str, Any],
        report: IngestReport,
    ) -> None:
        failed_ids = {failure.item_id for failure in report.failures}
        fields, present = field_matrices(self.layout.field_dims(), changed, vectors)
        has_any = np.any(np.stack(list(present.values())), axis=0) if present else np.zeros(len(changed), bool)
        keep = [i for i, item_id in enumerate(changed) if has_any[i]]
        dropped = [item_id for i, item_id in enumerate(changed) if not has_any[i]]
        for item_id in dropped:
            if item_id not in failed_ids:
                report.failures.append(ItemFailure(item_id=item_id, reason=self._nothing_to_encode()))
        stale = [item_id for item_id in dropped if item_id in previous]
        if stale:
            self.layout.items().delete(stale)
        self._forget_field_vectors(dropped, vectors)  # a failed item leaves nothing stored
        if not keep:
            return
        stored_slots = {slot: set(slot_vectors) for slot, slot_vectors in vectors.items()}
        ids = [changed[i] for i in keep]
        metadata = [{**plan.metadata[item_id], HASH_KEY: plan.item_hash(item_id, stored_slots)} for item_id in ids]
        try:
            report.stored += store_fused(
                self.assembly,
                ids,
                {slot: matrix[keep] for slot, matrix in fields.items()},
                {slot: mask[keep] for slot, mask in present.items()},
                metadata,
                report.failures,
            )
        except NotFittedError:
            # a fusion that cannot fuse before its fit: field vectors are stored, fit fuses them
            report.pending += len(ids)

    def _forget_field_vectors(self, item_ids: Sequence[str], vectors: Mapping[str, Mapping[str, np.ndarray]]) -> None:
        """Delete the field vectors just written for ``item_ids`` (all-zero ones: no signal)."""
        for encoder in self.encoders:
            written = [item_id for item_id in item_ids if item_id in vectors.get(encoder.slot, {})]
            if written:
                self.layout.field(encoder, rebuild=self.rebuild).delete(written)

    def _nothing_to_encode(self) -> str:
        slots = {fe.slot: fe.field for fe in self.assembly.encoders.values()}
        waiting = [fe.plugin for fe in self.assembly.encoders.values() if not fe.usable]
        reason = f"no encodable field: none of the fields {sorted(set(slots.values()))} has a usable value"
        if waiting:
            reason += f" (encoder {', '.join(waiting)} gives vectors only after `polyrec fit`; ingest again then)"
        return reason
