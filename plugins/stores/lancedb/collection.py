"""A LanceDB collection: item vectors, metadata JSON and typed filter columns in one table,
an IVF index kept up as rows arrive, and the in-memory index in front of it. The layout and
the reasons are in :mod:`polyrec.plugins.stores.lancedb`.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Coroutine, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from polyrec.contracts import Collection, Hit, SearchRows, StoreError, VectorRecord, matcher, validate_filter
from polyrec.plugins.stores.checks import validate_query, validate_records
from polyrec.plugins.stores.lancedb.bulk import (
    FragmentReceipt,
    FragmentWriter,
    arrow_rows,
    arrow_type,
    commit_receipts,
    typed_columns,
)
from polyrec.plugins.stores.lancedb.filter_columns import json_key_marker
from polyrec.plugins.stores.lancedb.filters import NO_MATCH, sql_string, where_clause
from polyrec.plugins.stores.lancedb.memory_index import MemoryANN
from polyrec.plugins.stores.lancedb.runtime import (
    COMPACT_EVERY,
    compact_if_fragmented,
    fold_new_rows,
    purge_deleted,
    run,
)

if TYPE_CHECKING:
    import pyarrow as pa

    from polyrec.plugins.stores.lancedb.store import LanceDBStore

__all__ = ["LanceCollection", "auto_num_partitions", "auto_nprobes", "VECTOR_INDEX"]

T = TypeVar("T")
log = logging.getLogger(__name__)

VECTOR_INDEX = "vector_idx"
_ID_INDEX = "id_idx"  # LanceDB's default name for it, which tables built before had
_ID_UNINDEXED_ROWS = 32_768  # bulk writes re-index ids past this many rows outside the index
_INDEX_KEY = "polyrec.index"
_IN_CHUNK = 1000  # ids per ``id IN (...)`` clause
_COMMIT_ATTEMPTS = 6  # a write that keeps losing commit races to other writers fails after this many
_FILTERS_KEPT = 64  # filters whose matching rows a collection keeps (see _matching)


def _is_commit_conflict(error: Exception) -> bool:
    return "commit conflict" in str(error).lower()


def auto_num_partitions(rows: int) -> int:
    """IVF partitions for ``rows`` vectors: about sqrt(rows), so that choosing partitions
    (one centroid per partition) and scanning them cost about the same."""
    return max(1, min(4096, round(math.sqrt(rows))))


def auto_nprobes(partitions: int, depth: float = 10, base: int | None = None) -> int:
    """Partitions to probe to find the nearest ``depth`` rows.

    ``base`` (default: 10% of the partitions, at least 20) is for the top 10; deeper searches
    (a larger k, or a filter that passes a fraction of the rows) reach further from the
    query, over more partitions: x(depth/10)^(1/3), so x2.7 for the top 200. On clustered
    384-d vectors and queries that average 1-5 items, 10% gives recall@10 0.98 at 100k
    rows (316 partitions) and 0.94 at 1M (1000 partitions), 5% gives 0.97 and 0.87.
    """
    base = base or max(20, math.ceil(0.1 * partitions))
    return min(partitions, math.ceil(base * max(1.0, depth / 10) ** (1 / 3)))


def memory_nprobes_base(partitions: int) -> int:
    """:func:`auto_nprobes`'s ``base`` for the in-memory index: 5% of the partitions, at least 20.

    Half LanceDB's 10% on large indexes: the in-memory index re-scores 2x the rows asked for
    exactly, so it loses no recall to quantisation. Through ``Engine.recommend`` (200
    candidates re-ranked, 100k clustered 384-d vectors, ``bench/bench_recommend.py``)
    recall@10 against exact retrieval was 0.983 at every base from 6 to 32 (the misses left
    are not the index's). The floor of 20 stays: on small indexes (77 partitions) and queries
    away from the data, 8 probes gave recall@10 0.83.

    Why the top-200 pool keeps its x2.7 (57 probes at 100k, 316 partitions) although the
    bench's clusters need only 20: they are the easy case. The pool's recall (top-230 against
    exact top-230, queries the mean of 1-5 items, 100k x 384) at 20 / 57 probes was 0.992 /
    0.996 on ``bench_store``'s clusters, but 0.864 / 0.994 on broad ones (n/2000 clusters,
    spread 2.0) and 0.886 / 0.932 on n/50 clusters; the search's CPU time moved only
    1.1 -> 1.6 ms, so the deeper probe costs little.
    """
    return max(20, math.ceil(0.05 * partitions))


# -- metadata columns (filtering: see lancedb_filters) ---------------------------------


# -- collections ----------------------------------------------------------------------------


def _vectors_of(table: pa.Table, dim: int) -> np.ndarray:
    if table.num_rows == 0:
        return np.empty((0, dim), dtype=np.float32)
    flat = table.column("vector").combine_chunks().flatten()
    return np.asarray(flat.to_numpy(zero_copy_only=False), dtype=np.float32).reshape(-1, dim)


def _records_of(table: pa.Table, dim: int) -> list[VectorRecord]:
    metadata = [json.loads(values) for values in table.column("metadata").to_pylist()]
    return _records(table.column("id").to_pylist(), _vectors_of(table, dim), metadata)


def _records(ids: Sequence[str], vectors: np.ndarray, metadata: Sequence[dict[str, Any]]) -> list[VectorRecord]:
    # rows read back from the store were validated on their way in: no second validation per row
    return [
        VectorRecord.model_construct(id=item_id, vector=vectors[row], metadata=metadata[row])
        for row, item_id in enumerate(ids)
    ]


def _hit(item_id: str, score: float, metadata: dict[str, Any]) -> Hit:
    return Hit.model_construct(id=item_id, score=float(score), metadata=metadata)


def _ids_in(ids: Sequence[str]) -> Iterator[str]:
    unique = list(dict.fromkeys(ids))
    for start in range(0, len(unique), _IN_CHUNK):
        yield "id IN (" + ", ".join(map(sql_string, unique[start : start + _IN_CHUNK])) + ")"


_Ranked = tuple[list[str], np.ndarray, list[dict[str, Any]]]  # ids, scores, metadata; best first


def _decoded(table: pa.Table) -> list[dict[str, Any]]:
    return [json.loads(values) for values in table.column("metadata").to_pylist()]


def _ranked(table: pa.Table) -> _Ranked:
    scores = 1.0 - table.column("_distance").to_numpy().astype(np.float64)
    return table.column("id").to_pylist(), scores, _decoded(table)


@dataclass
class _IndexState:
    trained_rows: int
    partitions: int


class LanceCollection(Collection):
    """A collection backed by one LanceDB table; see the module docstring."""

    def __init__(self, store: LanceDBStore, table: Any, name: str, dim: int, provenance: dict[str, str]) -> None:
        self.name, self.dim, self.provenance = name, dim, provenance
        self._store, self._table, self._config = store, table, store.config
        self._columns: set[str] = set()
        self._filter_columns = store.filter_columns  # which metadata keys get typed columns: bounded
        self._index: _IndexState | None = None
        self._writes = 0
        self._bulk_depth = 0  # open bulk_writes blocks: upkeep waits for the last one to end
        self._upkeep_due = False
        self._memory: MemoryANN | None = None  # see memory_index.py; built at the first unfiltered search
        self._memory_version: int | None = None  # the table version it mirrors
        self._version_checked = -math.inf  # when the version was last asked for (time.monotonic)
        # rows of recent filters in the in-memory index, for the index object and version they are of
        self._filters: OrderedDict[str, tuple[Any, int]] = OrderedDict()
        self._filters_key: tuple[int, int | None] | None = None
        self._filters_lock = threading.Lock()
        # one write at a time per table in this process: concurrent commits (new metadata
        # columns, merges) conflict in Lance, and the schema and index state are shared
        self._writing = threading.Lock()

    def _do(self, coroutine: Coroutine[Any, Any, T], what: str) -> T:
        return run(coroutine, f"{what} on collection {self.name!r} in {self._store.location}")

    async def _load_state(self) -> None:
        schema = await self._table.schema()
        self._columns = set(schema.names)
        indexed = any(index.columns == ["vector"] for index in await self._table.list_indices())
        stored = (schema.field("vector").metadata or {}).get(_INDEX_KEY.encode())
        if indexed:
            state = json.loads(stored) if stored else {}
            rows = int(state.get("trained_rows", await self._table.count_rows()))
            self._index = _IndexState(rows, int(state.get("partitions", auto_num_partitions(rows))))

    # -- writing --

    def upsert(self, records: Sequence[VectorRecord]) -> None:
        batch = validate_records(records, dim=self.dim, collection=self.name, plugin=self._store.name)
        if not batch.ids:
            return
        metadata = [json.dumps(values, ensure_ascii=False) for values in batch.metadata]
        self._write(
            lambda: self._upsert(batch.ids, batch.vectors, batch.metadata, metadata),
            "upsert",
            lambda memory: memory.upsert(batch.ids, batch.vectors, metadata),
        )

    def _write(
        self, writing: Callable[[], Coroutine[Any, Any, T]], what: str, mirror: Callable[[MemoryANN], None] | None
    ) -> T:
        """Run a write, then apply it to the in-memory index if that mirrored the table right
        before it (else drop the index: it is rebuilt from the table when next needed)."""
        with self._writing:
            memory, in_sync = self._memory, False
            if memory is not None:
                in_sync = self._do(self._table.version(), "reading the table version") == self._memory_version
            self._memory = None  # also when the write fails half-way
            result, conflicted = self._commit(writing, what)
            if memory is not None and in_sync and not conflicted and mirror is not None:
                mirror(memory)
                # another process's commit may have been merged with ours without a conflict:
                # a row count that differs gives its inserts and deletes away (not its updates)
                if self._do(self._table.count_rows(), "count") == len(memory):
                    self._memory_version = self._do(self._table.version(), "reading the table version")
                    self._memory = memory
            return result

    def _commit(self, writing: Callable[[], Coroutine[Any, Any, T]], what: str) -> tuple[T, bool]:
        """Run a write; if another writer's commit beat it (Lance's retryable conflict), move to
        the latest version and run it again (writes here are idempotent: merge by id, delete
        by id, index builds). Returns the result and whether it ever conflicted."""
        for attempt in range(_COMMIT_ATTEMPTS):
            try:
                return self._do(writing(), what), attempt > 0
            except StoreError as exc:
                if attempt == _COMMIT_ATTEMPTS - 1 or not _is_commit_conflict(exc):
                    raise
                log.info("collection %r: %s conflicted with another writer; retrying", self.name, what)
                time.sleep(0.02 * 2**attempt)
                self._do(self._refresh(), "reading the latest version")
        raise AssertionError("unreachable")

    async def _refresh(self) -> None:
        await self._table.checkout_latest()
        self._columns = set((await self._table.schema()).names)

    async def _upsert(
        self, ids: list[str], vectors: np.ndarray, metadata: list[dict[str, Any]], metadata_json: list[str]
    ) -> None:
        import pyarrow as pa

        typed = self._filter_columns.kept(typed_columns(metadata), self._columns)
        new_columns = [name for name in typed if name not in self._columns]
        if new_columns:
            new_keys = self._filter_columns.added_keys(new_columns, self._columns)
            await self._table.add_columns([pa.field(name, arrow_type(name[-1])) for name in new_columns])
            if new_keys and await self._table.count_rows():
                await self._fill_new_columns(new_keys)
        schema = await self._table.schema()
        self._columns = set(schema.names)
        data = arrow_rows(schema, self.dim, ids, vectors, metadata_json, typed)
        await self._table.merge_insert("id").when_matched_update_all().when_not_matched_insert_all().execute(data)
        if self._bulk_depth:
            self._upkeep_due = True  # at the end of the bulk_writes block
            await self._index_ids()
            return
        await self._upkeep()

    async def _index_ids(self) -> None:
        """Keep the B-tree on ``id`` close behind a table that bulk writes grow: each write
        looks its ids up (the merge by id, the engine's hash lookups), and rows outside the
        index are scanned at a cost of rows x ids asked (16k ids at 1M rows: 3.3 s CPU by
        scan, 0.2 s through the index, whose rebuild costs 0.4 s)."""
        stats = await self._table.index_stats(_ID_INDEX)
        unindexed = await self._table.count_rows() if stats is None else stats.num_unindexed_rows
        if unindexed > _ID_UNINDEXED_ROWS:
            await self._reindex_ids()

    async def _reindex_ids(self) -> None:
        """(Re)build the B-tree on ``id`` over every row (see :meth:`_index_ids`)."""
        from lancedb.index import BTree

        await self._table.create_index("id", config=BTree(), replace=True, name=_ID_INDEX)

    async def _upkeep(self, bulk_ended: bool = False) -> None:
        try:
            await self._maintain(bulk_ended)
        except Exception as exc:  # the rows are stored: report, but do not fail the write
            log.warning(
                "collection %r in %s: index upkeep failed: %s: %s",
                self.name,
                self._store.location,
                type(exc).__name__,
                exc,
            )

    @contextmanager
    def bulk_writes(self) -> Iterator[None]:
        """Upserts inside the block leave index upkeep and compaction to its end, which does
        them once. Kept up per write, a growing table was rewritten over and over: each fold
        of new rows into the index compacted every fragment, and the index was rebuilt at
        each ``retrain_growth`` step (a 1M-row ingest wrote ~10x its data)."""
        with self._writing:
            self._bulk_depth += 1
        try:
            yield
        finally:
            with self._writing:
                self._bulk_depth -= 1
                if self._bulk_depth == 0 and self._upkeep_due:
                    self._upkeep_due = False
                    self._memory = None  # compaction moves rows: rebuilt from the table when next needed
                    self._do(self._upkeep(bulk_ended=True), "index upkeep")

    async def _fill_new_columns(self, keys: list[str]) -> None:
        """Fill the typed columns just added for ``keys`` on the rows already stored that hold
        them in their JSON (kept there only, when the keys were not filterable before: a
        ``filter_keys`` or ``max_filter_keys`` that changed). Once per new key, at most the bound."""
        where = " OR ".join(f"strpos(metadata, {sql_string(json_key_marker(key))}) > 0" for key in keys)
        table = await self._table.query().where(where).select(["id", "vector", "metadata"]).to_arrow()
        if not table.num_rows:
            return
        metadata = _decoded(table)
        schema = await self._table.schema()
        typed = self._filter_columns.kept(typed_columns(metadata), set(schema.names))
        data = arrow_rows(
            schema,
            self.dim,
            table.column("id").to_pylist(),
            _vectors_of(table, self.dim),
            table.column("metadata").to_pylist(),
            typed,
        )
        await self._table.merge_insert("id").when_matched_update_all().execute(data)

    # -- distributed writes (Lance fragments: see bulk.py) --

    def bulk_writer(self) -> FragmentWriter:
        """A picklable writer of fragments of this table, for Ray workers."""
        return FragmentWriter(
            self.name,
            self._store.table_uri(self.name),
            self.dim,
            self._store.name,
            self._store.storage_options,
            self._filter_columns,
        )

    def commit_bulk(self, receipts: Sequence[FragmentReceipt], replaced: Sequence[str]) -> None:
        """Delete ``replaced``, append the receipts' fragments, then keep the index up as an upsert does."""
        with self._writing:
            self._memory = None  # rebuilt from the table when next needed
            commit_receipts(self.bulk_writer(), receipts, replaced)
            self._do(self._refresh(), "reading the latest version")
            try:
                self._do(self._maintain(), "index upkeep")
            except StoreError as exc:  # the rows are stored: report, but do not fail the commit
                log.warning("collection %r in %s: %s", self.name, self._store.location, exc)

    async def _maintain(self, bulk_ended: bool = False) -> None:
        """Build, extend or retrain the ANN index and compact small files, as rows arrive
        (``bulk_ended``: once for all the writes of a :meth:`bulk_writes` block)."""
        self._writes += 1
        rows = await self._table.count_rows()
        if self._index is None:
            if rows >= self._config.index_threshold:
                await self._build_index(rows)
            elif bulk_ended:
                await compact_if_fragmented(self._table)
            return
        if rows >= self._config.retrain_growth * self._index.trained_rows:
            await self._build_index(rows)
            return
        if await fold_new_rows(self._table, VECTOR_INDEX, self._config.reindex_fraction):
            return
        if bulk_ended or self._writes % COMPACT_EVERY == 0:
            await compact_if_fragmented(self._table)

    async def _build_index(self, rows: int) -> None:
        from lancedb.index import IvfFlat, IvfPq, IvfSq

        await compact_if_fragmented(self._table)  # not every time: compaction rewrites the rows
        partitions = max(1, min(self._partitions_for(rows), rows))
        if self._config.index_type == "IVF_PQ":
            config: Any = IvfPq(distance_type="dot", num_partitions=partitions, num_sub_vectors=_sub_vectors(self.dim))
        elif self._config.index_type == "IVF_FLAT":
            config = IvfFlat(distance_type="dot", num_partitions=partitions)
        else:
            config = IvfSq(distance_type="dot", num_partitions=partitions)
        await self._table.create_index("vector", config=config, replace=True, name=VECTOR_INDEX)
        await self._reindex_ids()  # over the rows bulk writes left outside it too
        state = json.dumps({"trained_rows": rows, "partitions": partitions})
        await self._table.update_field_metadata({"path": "vector", "metadata": {_INDEX_KEY: state}})
        self._index = _IndexState(rows, partitions)

    def _partitions_for(self, rows: int) -> int:
        return self._config.num_partitions or auto_num_partitions(rows)

    def create_index(self) -> bool:
        """Build (or rebuild) the ANN index now; False for an empty collection."""
        rows = self.count()
        if rows == 0:
            return False
        self._write(lambda: self._build_index(rows), "building the ANN index", None)  # rebuilt as IVF when next used
        return True

    @property
    def index_info(self) -> dict[str, int] | None:
        """The ANN index in use: rows it was trained on, partitions, partitions probed; None if none."""
        if self._index is None:
            return None
        nprobes = auto_nprobes(self._index.partitions, base=self._config.nprobes)
        return {"trained_rows": self._index.trained_rows, "partitions": self._index.partitions, "nprobes": nprobes}

    def delete(self, ids: Sequence[str]) -> int:
        if not ids:
            return 0
        return self._write(lambda: self._delete(ids), "delete", lambda memory: memory.delete(ids))

    def erase(self, ids: Sequence[str]) -> int:
        """Delete, then rewrite the files that held the rows and drop older versions (:func:`purge_deleted`)."""
        present = [record.id for record in self.get(ids)]
        # no delete of absent ids: its commit would write them into the table's history
        deleted = self.delete(present) if present else 0
        with self._writing:
            self._do(purge_deleted(self._table), "pruning old versions")
        return deleted

    async def _delete(self, ids: Sequence[str]) -> int:
        deleted = 0
        for where in _ids_in(ids):
            deleted += (await self._table.delete(where)).num_deleted_rows
        return deleted

    # -- reading --

    def get(self, ids: Sequence[str]) -> list[VectorRecord]:
        if not ids:
            return []
        if self._memory is not None:  # only once built: a get() alone is no reason to load every vector
            return _records(*self._synced_memory().get(ids))
        found = {record.id: record for record in self._do(self._get(ids), "get")}
        return [found[item_id] for item_id in ids if item_id in found]

    async def _get(self, ids: Sequence[str]) -> list[VectorRecord]:
        records: list[VectorRecord] = []
        for where in _ids_in(ids):
            table = await self._table.query().where(where).select(["id", "vector", "metadata"]).to_arrow()
            records.extend(_records_of(table, self.dim))
        return records

    def search(self, vector: np.ndarray, k: int, filter: Mapping[str, Any] | None = None) -> list[Hit]:
        if self._config.memory_index:  # one path for both (reading the k vectors costs ~0.1 ms)
            rows = self.search_rows(vector, k, filter)
            return [
                _hit(item_id, score, values) for item_id, score, values in zip(rows.ids, rows.scores, rows.metadata)
            ]
        query = validate_query(vector, self.dim, collection=self.name)
        where = self._where(filter)
        if k <= 0 or where == NO_MATCH:
            return []
        ids, scores, metadata = self._do(self._search(query, k, where), "search")
        hits = [_hit(item_id, score, values) for item_id, score, values in zip(ids, scores, metadata, strict=True)]
        passes = matcher(filter)  # validated once, not per hit
        return [hit for hit in hits if passes(hit.metadata)]  # a safety net: the SQL is exact

    def search_rows(self, vector: np.ndarray, k: int, filter: Mapping[str, Any] | None = None) -> SearchRows:
        """From the in-memory index: the vectors come with the hits, no second lookup."""
        if not self._config.memory_index:
            return super().search_rows(vector, k, filter)
        query = validate_query(vector, self.dim, collection=self.name)
        where = self._where(filter)
        if k <= 0 or where == NO_MATCH:
            return SearchRows([], np.empty(0), np.empty((0, self.dim), np.float32), [])
        memory = self._synced_memory()
        rows = memory.search_rows(query, k, *self._memory_plan(memory, k, where))
        if where is None:  # no filter: nothing to check
            return rows
        passes = matcher(filter)  # validated once, not per hit
        kept = [row for row, values in enumerate(rows.metadata) if passes(values)]  # the safety net
        if len(kept) == len(rows):
            return rows
        return SearchRows(
            [rows.ids[row] for row in kept], rows.scores[kept], rows.vectors[kept], [rows.metadata[row] for row in kept]
        )

    def _where(self, filter: Mapping[str, Any] | None) -> str | None:
        where = where_clause(filter, self._columns)
        if where == NO_MATCH:  # perhaps a key that another writer added since we read the schema
            self._columns = set(self._do(self._table.schema(), "reading the schema").names)
            where = where_clause(filter, self._columns)
            if where == NO_MATCH and filter:  # a key without columns: can items hold it?
                self._filter_columns.check_filterable(validate_filter(filter), self._columns)
        return where

    def _version_now(self) -> int | None:
        """The table's version, asked of LanceDB at most every ``read_consistency_s`` (it looks
        for other writers' commits no more often than that); in between, the mirrored one."""
        interval = self._config.read_consistency_s
        now = time.monotonic()
        if interval is not None and now - self._version_checked >= interval:
            self._version_checked = now
            return self._do(self._table.version(), "reading the table version")
        return self._memory_version

    def _memory_plan(self, memory: MemoryANN, k: int, where: str | None) -> tuple[int, tuple[Any, int] | None]:
        """How to ask the in-memory index for the top ``k`` passing ``where``: (nprobes, allowed rows)."""
        base = self._config.nprobes or memory_nprobes_base(memory.partitions)
        if where is None:
            return auto_nprobes(memory.partitions, k, base), None
        allowed = self._matching(memory, where)
        if allowed[1] <= max(k, self._config.exact_filter_rows):  # few rows pass: rank them all, exactly
            return memory.partitions, allowed
        # the filtered top-k lie as deep as the unfiltered top-(k / selectivity)
        depth = k * len(memory) / max(1, allowed[1])
        return auto_nprobes(memory.partitions, depth, base), allowed

    def _matching(self, memory: MemoryANN, where: str) -> tuple[Any, int]:
        """The in-memory rows a filter passes, asked of LanceDB once per filter and index version
        (the ids only; a repeated filter then costs no LanceDB query)."""
        key = (id(memory), self._memory_version)
        with self._filters_lock:
            if self._filters_key != key:
                self._filters_key, self._filters = key, OrderedDict()
            found = self._filters.get(where)
            if found is not None:
                self._filters.move_to_end(where)
                return found
        table = self._do(self._table.query().where(where).select(["id"]).to_arrow(), "filter")
        found = memory.labels(table.column("id").to_pylist())
        with self._filters_lock:
            if self._filters_key == key:
                self._filters[where] = found
                while len(self._filters) > _FILTERS_KEPT:
                    self._filters.popitem(last=False)
        return found

    def _is_current(self, memory: MemoryANN, version: int | None) -> bool:
        return not memory.needs_rebuild and version == self._memory_version

    def _synced_memory(self) -> MemoryANN:
        """The in-memory index, (re)built from the table if it is missing, outgrown, or behind
        the table's version (another process wrote; seen within ``read_consistency_s``)."""
        memory = self._memory
        if memory is not None and self._is_current(memory, self._version_now()):
            return memory
        with self._writing:  # none of our writes between the scan and the version it is tagged with
            version = self._do(self._table.version(), "reading the table version")
            memory = self._memory  # another thread may have just built it
            if memory is not None and self._is_current(memory, version):
                return memory
            table = self._do(self._table.query().select(["id", "vector", "metadata"]).to_arrow(), "loading vectors")
            memory = MemoryANN(
                self.dim,
                # exact while LanceDB scans exactly too; IVF once it has an index (also an explicit one)
                exact_below=self._config.index_threshold if self._index is None else 1,
                partitions=self._partitions_for,
                retrain_growth=self._config.retrain_growth,
            )
            memory.rebuild(
                table.column("id").to_pylist(), _vectors_of(table, self.dim), table.column("metadata").to_pylist()
            )
            self._memory, self._memory_version = memory, version
            return memory

    def _nearest(self, query: np.ndarray, k: int, where: str | None) -> Any:
        builder = (
            self._table.query()
            .nearest_to(query)
            .distance_type("dot")  # LanceDB's "dot" distance is 1 - <a, b>
            .select(["id", "metadata", "_distance"])
            .limit(k)
        )
        return builder if where is None else builder.where(where)  # a prefilter: applied before the search

    async def _search(self, query: np.ndarray, k: int, where: str | None) -> _Ranked:
        if self._index is None:
            return _ranked(await self._nearest(query, k, where).to_arrow())  # an exact scan
        depth = float(k)
        if where is not None:
            matching = await self._table.count_rows(where)
            if matching <= max(k, self._config.exact_filter_rows):
                return await self._rank_matching(query, k, where)
            # the filtered top-k lie as deep as the unfiltered top-(k / selectivity)
            depth = k * await self._table.count_rows() / matching
        partitions, refine = self._index.partitions, self._config.refine_factor
        nprobes = auto_nprobes(partitions, depth, self._config.nprobes)
        table = await self._nearest(query, k, where).nprobes(nprobes).refine_factor(refine).to_arrow()
        if where is not None and table.num_rows < k:  # too few passing rows in the probed partitions
            table = await self._nearest(query, k, where).nprobes(partitions).refine_factor(refine).to_arrow()
        return _ranked(table)

    async def _rank_matching(self, query: np.ndarray, k: int, where: str) -> _Ranked:
        """Exact top-k of the few rows a filter passes: fetch them and rank them here."""
        table = await self._table.query().where(where).select(["id", "vector", "metadata"]).to_arrow()
        scores = _vectors_of(table, self.dim) @ query
        top = np.argsort(-scores, kind="stable")[:k]
        ids, metadata = table.column("id").to_pylist(), table.column("metadata").to_pylist()
        return [ids[i] for i in top], scores[top], [json.loads(metadata[i]) for i in top]

    def count(self) -> int:
        return self._do(self._table.count_rows(), "count")

    def scan(self, batch_size: int = 10_000) -> Iterator[list[VectorRecord]]:
        if batch_size <= 0:
            raise ValueError("batch_size must be positive")
        reader = self._do(
            self._table.query().select(["id", "vector", "metadata"]).to_batches(max_batch_length=batch_size), "scan"
        )
        pending: list[VectorRecord] = []
        while (batch := self._do(_next_batch(reader), "scan")) is not None:
            pending.extend(_records_of(_as_table(batch), self.dim))
            while len(pending) >= batch_size:
                yield pending[:batch_size]
                pending = pending[batch_size:]
        if pending:
            yield pending


async def _next_batch(reader: Any) -> Any:
    try:
        return await reader.__anext__()
    except StopAsyncIteration:
        return None


def _as_table(batch: Any) -> pa.Table:
    import pyarrow as pa

    return pa.Table.from_batches([batch])


def _sub_vectors(dim: int) -> int:
    """PQ sub-vectors (one byte each): 8 dimensions for wide vectors, 4 for narrow ones,
    whose few coarse codes lose too much for ``refine_factor`` to win back. (4 dimensions
    at 384-d would cost 8 minutes of PQ training per 100k rows on two cores.)"""
    widths = (8, 4, 2, 1) if dim >= 128 else (4, 2, 1)
    return next(dim // width for width in widths if dim % width == 0)
