"""The ``lancedb`` store (the default): an embedded LanceDB directory.

Layout under ``uri``: one LanceDB table per collection, the table ``events`` for the
event log, and ``state/`` for trained component state.

How a collection is stored, and why:

- ``id`` (string), ``vector`` (fixed-size list of float32, exact round trip) and
  ``metadata`` (the metadata dict as JSON). JSON is what :meth:`get` and search hits read
  back, because it keeps what typed columns lose: int vs float vs bool, key order, and
  keys whose value is ``None``.
- One typed, nullable column per metadata key *and* value type, added the first time
  that pair appears: ``m_<key>__s`` (string), ``__i`` (int64), ``__f`` (float64),
  ``__b`` (bool), ``__l`` (list of strings); keys that are not plain identifiers are
  hex-encoded (``mx_<hex>__s``). These columns exist only for filtering: a filter is
  translated to a SQL ``WHERE`` over them (:func:`polyrec.plugins.lancedb_filters.where_clause`) that follows
  :func:`polyrec.contracts.filters.matches` exactly, including its Python comparison
  rules across types (``True == 1``, ``3 > 2.5``, ``"7" != 7``), and is applied *before*
  the vector search (prefilter), so filtered searches return k hits whenever k exist,
  with or without an ANN index. Hits are re-checked with ``matches`` as a safety net.
- Schema metadata holds the collection's ``dim`` and provenance; opening it with other
  values raises :class:`ProvenanceMismatchError`.

ANN index: below ``index_threshold`` rows (10k by default; LanceDB's exact scan slows
down past that) a search is an exact scan. At the threshold an IVF index is built
automatically (or by :meth:`LanceCollection.create_index`): ``index_type`` IVF_SQ (8-bit
codes) by default, dot-product metric, about sqrt(rows) partitions, plus a B-tree index on
``id`` for upserts and ``get``. Rows added later are searched exactly beside the index
until they exceed ``reindex_fraction`` of the indexed rows, when they are folded into it
(``optimize``); past ``retrain_growth`` times the rows it was trained on, the index is
retrained so the partition count keeps up. A search probes :func:`auto_nprobes`
partitions, more for a larger k and under a filter (which pushes the k best passing rows
further out), and re-ranks ``refine_factor * k`` candidates with exact distances, so
scores are exact inner products. A filter passing at most ``exact_filter_rows`` rows
skips the index: those rows are fetched and ranked exactly.

In front of all this, unfiltered searches are answered from memory (``memory_index``, on by
default): a faiss copy of the vectors, ids and metadata JSON (:mod:`polyrec.plugins.memory_ann`),
exact while the table is scanned exactly and IVF-flat (same partition count, same probes)
once it has an index. A LanceDB query costs 3-4 ms before it scans anything on a 2-core
machine; the copy answers a top-10 over 100k x 384 rows in about 2 ms with exact scores
(see ``bench/bench_store.py``); once built it also answers :meth:`get`. It is built at
the first unfiltered search, kept up by
this store's own writes, and rebuilt from the table when the table's version moves under
it (another process wrote) or the rows outgrow it. Filtered searches stay with LanceDB.

A store object keeps one handle per table; it sees other processes' writes within
``read_consistency_s`` seconds.

``lancedb`` is imported only when a store is first used. Its async API runs on one event
loop thread owned by this module: the sync wrapper costs several thread hops per query.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import re
import threading
import time
from collections.abc import Callable, Coroutine, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal, TypeVar

import numpy as np
from pydantic import Field

from polyrec.contracts import (
    Collection,
    ComponentConfig,
    Event,
    EventLog,
    Hit,
    PolyrecError,
    StoreError,
    VectorRecord,
    VectorStore,
    hookimpl,
    matches,
)
from polyrec.plugins.lancedb_filters import NO_MATCH, metadata_column, sql_string, value_kind, where_clause
from polyrec.plugins.memory_ann import MemoryANN
from polyrec.plugins.store_memory import check_provenance, validate_query, validate_records

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = [
    "LanceDBConfig",
    "LanceDBStore",
    "LanceCollection",
    "LanceEventLog",
    "metadata_column",
    "where_clause",
    "auto_num_partitions",
    "auto_nprobes",
    "register_stores",
]

T = TypeVar("T")
log = logging.getLogger(__name__)

EVENTS_TABLE = "events"
VECTOR_INDEX = "vector_idx"
_FORMAT_KEY, _DIM_KEY, _PROVENANCE_KEY = b"polyrec.format", b"polyrec.dim", b"polyrec.provenance"
_INDEX_KEY = "polyrec.index"
_COLLECTION_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
_IN_CHUNK = 1000  # ids per ``id IN (...)`` clause
_COMPACT_EVERY = 32  # writes between checks for small fragments
_SMALL_FRAGMENTS = 24  # compact when a table has more small fragments than this
_KEEP_VERSIONS = timedelta(hours=1)  # old versions removed by compaction


class LanceDBConfig(ComponentConfig):
    """Parameters of the ``lancedb`` store."""

    uri: Path = Field(default=Path("polyrec-data"), description="database directory (relative: to the config file)")
    index_threshold: int = Field(
        default=10_000, ge=1, description="build the ANN index once a collection has this many rows"
    )
    index_type: Literal["IVF_SQ", "IVF_PQ", "IVF_FLAT"] = Field(default="IVF_SQ", description="LanceDB index kind")
    num_partitions: int | None = Field(default=None, ge=1, description="IVF partitions (None: from the row count)")
    nprobes: int | None = Field(
        default=None, ge=1, description="partitions probed for a top-10 search, more for deeper ones (None: auto)"
    )
    exact_filter_rows: int = Field(
        default=1_000, ge=0, description="filtered searches passing at most this many rows rank them exactly"
    )
    refine_factor: int = Field(default=4, ge=1, description="exact re-ranking of refine_factor * k candidates")
    reindex_fraction: float = Field(default=0.1, gt=0, description="fold new rows into the index past this share")
    retrain_growth: float = Field(default=4.0, gt=1, description="retrain the index after this much growth")
    memory_index: bool = Field(
        default=True,
        description="serve unfiltered searches from an in-memory faiss copy of the vectors (dim x 4 bytes a row)",
    )
    read_consistency_s: float | None = Field(
        default=5.0, ge=0, description="how stale reads may be when another process writes (None: never refresh)"
    )


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


# -- metadata columns (filtering: see lancedb_filters) ---------------------------------


def _arrow_type(kind: str) -> pa.DataType:
    import pyarrow as pa

    return {"s": pa.utf8(), "i": pa.int64(), "f": pa.float64(), "b": pa.bool_(), "l": pa.list_(pa.utf8())}[kind]


# -- the event loop all LanceDB calls run on ---------------------------------------------


class _LoopThread:
    """One asyncio loop in a daemon thread, shared by every LanceDB store in the process."""

    _lock = threading.Lock()
    _loop: asyncio.AbstractEventLoop | None = None

    @classmethod
    def run(cls, coroutine: Coroutine[Any, Any, T]) -> T:
        with cls._lock:
            if cls._loop is None:
                cls._loop = asyncio.new_event_loop()
                threading.Thread(target=cls._loop.run_forever, name="polyrec-lancedb", daemon=True).start()
        return asyncio.run_coroutine_threadsafe(coroutine, cls._loop).result()


def _run(coroutine: Coroutine[Any, Any, T], what: str) -> T:
    """Run a LanceDB coroutine; its errors become StoreError saying what failed."""
    try:
        return _LoopThread.run(coroutine)
    except PolyrecError:
        raise
    except Exception as exc:
        raise StoreError(f"lancedb: {what} failed: {type(exc).__name__}: {exc}") from exc


# -- collections ----------------------------------------------------------------------------


def _vectors_of(table: pa.Table, dim: int) -> np.ndarray:
    if table.num_rows == 0:
        return np.empty((0, dim), dtype=np.float32)
    flat = table.column("vector").combine_chunks().flatten()
    return np.asarray(flat.to_numpy(zero_copy_only=False), dtype=np.float32).reshape(-1, dim)


def _records_of(table: pa.Table, dim: int) -> list[VectorRecord]:
    vectors = _vectors_of(table, dim)
    ids = table.column("id").to_pylist()
    metadata = table.column("metadata").to_pylist()
    return [
        VectorRecord(id=item_id, vector=vectors[row], metadata=json.loads(metadata[row]))
        for row, item_id in enumerate(ids)
    ]


def _ids_in(ids: Sequence[str]) -> Iterator[str]:
    unique = list(dict.fromkeys(ids))
    for start in range(0, len(unique), _IN_CHUNK):
        yield "id IN (" + ", ".join(map(sql_string, unique[start : start + _IN_CHUNK])) + ")"


_Ranked = tuple[list[str], np.ndarray, list[str]]  # ids, scores, metadata JSON; best first


def _ranked(table: pa.Table) -> _Ranked:
    scores = 1.0 - table.column("_distance").to_numpy().astype(np.float64)
    return table.column("id").to_pylist(), scores, table.column("metadata").to_pylist()


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
        self._index: _IndexState | None = None
        self._writes = 0
        self._memory: MemoryANN | None = None  # see memory_ann; built at the first unfiltered search
        self._memory_version: int | None = None  # the table version it mirrors
        self._version_checked = -math.inf  # when the version was last asked for (time.monotonic)
        # one write at a time per table in this process: concurrent commits (new metadata
        # columns, merges) conflict in Lance, and the schema and index state are shared
        self._writing = threading.Lock()

    def _do(self, coroutine: Coroutine[Any, Any, T], what: str) -> T:
        return _run(coroutine, f"{what} on collection {self.name!r} in {self._store.location}")

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
            result = self._do(writing(), what)
            if memory is not None and in_sync and mirror is not None:
                mirror(memory)
                self._memory_version = self._do(self._table.version(), "reading the table version")
                self._memory = memory
            return result

    async def _upsert(
        self, ids: list[str], vectors: np.ndarray, metadata: list[dict[str, Any]], metadata_json: list[str]
    ) -> None:
        import pyarrow as pa

        typed: dict[str, list[Any]] = {}
        for row, values in enumerate(metadata):
            for key, value in values.items():
                kind = value_kind(value)
                if kind is not None:
                    typed.setdefault(metadata_column(key, kind), [None] * len(ids))[row] = value
        new_columns = [name for name in typed if name not in self._columns]
        if new_columns:
            await self._table.add_columns([pa.field(name, _arrow_type(name[-1])) for name in new_columns])
        schema = await self._table.schema()
        self._columns = set(schema.names)
        columns = {
            "id": pa.array(ids, pa.utf8()),
            "vector": pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1), pa.float32()), self.dim),
            "metadata": pa.array(metadata_json, pa.utf8()),
        }
        arrays = [
            columns[field.name]
            if field.name in columns
            else pa.array(typed.get(field.name, [None] * len(ids)), field.type)
            for field in schema
        ]
        data = pa.Table.from_arrays(arrays, schema=schema)
        await self._table.merge_insert("id").when_matched_update_all().when_not_matched_insert_all().execute(data)
        try:
            await self._maintain()
        except Exception as exc:  # the rows are stored: report, but do not fail the upsert
            log.warning(
                "collection %r in %s: index upkeep failed: %s: %s",
                self.name,
                self._store.location,
                type(exc).__name__,
                exc,
            )

    async def _maintain(self) -> None:
        """Build, extend or retrain the ANN index and compact small files, as rows arrive."""
        self._writes += 1
        rows = await self._table.count_rows()
        if self._index is None:
            if rows >= self._config.index_threshold:
                await self._build_index(rows)
            return
        if rows >= self._config.retrain_growth * self._index.trained_rows:
            await self._build_index(rows)
            return
        stats = await self._table.index_stats(VECTOR_INDEX)
        if stats is not None and stats.num_unindexed_rows > self._config.reindex_fraction * stats.num_indexed_rows:
            await self._table.optimize(cleanup_older_than=_KEEP_VERSIONS)
            return
        if self._writes % _COMPACT_EVERY == 0:
            await _compact_if_fragmented(self._table)

    async def _build_index(self, rows: int) -> None:
        from lancedb.index import BTree, IvfFlat, IvfPq, IvfSq

        await self._table.optimize(cleanup_older_than=_KEEP_VERSIONS)
        partitions = self._config.num_partitions or auto_num_partitions(rows)
        partitions = max(1, min(partitions, rows))
        if self._config.index_type == "IVF_PQ":
            config: Any = IvfPq(distance_type="dot", num_partitions=partitions, num_sub_vectors=_sub_vectors(self.dim))
        elif self._config.index_type == "IVF_FLAT":
            config = IvfFlat(distance_type="dot", num_partitions=partitions)
        else:
            config = IvfSq(distance_type="dot", num_partitions=partitions)
        await self._table.create_index("vector", config=config, replace=True, name=VECTOR_INDEX)
        await self._table.create_index("id", config=BTree(), replace=True)
        state = json.dumps({"trained_rows": rows, "partitions": partitions})
        await self._table.update_field_metadata({"path": "vector", "metadata": {_INDEX_KEY: state}})
        self._index = _IndexState(rows, partitions)

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
            found_ids, vectors, metadata = self._synced_memory().get(ids)
            return [
                VectorRecord(id=item_id, vector=vectors[row], metadata=json.loads(metadata[row]))
                for row, item_id in enumerate(found_ids)
            ]
        found = {record.id: record for record in self._do(self._get(ids), "get")}
        return [found[item_id] for item_id in ids if item_id in found]

    async def _get(self, ids: Sequence[str]) -> list[VectorRecord]:
        records: list[VectorRecord] = []
        for where in _ids_in(ids):
            table = await self._table.query().where(where).select(["id", "vector", "metadata"]).to_arrow()
            records.extend(_records_of(table, self.dim))
        return records

    def search(self, vector: np.ndarray, k: int, filter: Mapping[str, Any] | None = None) -> list[Hit]:
        query = validate_query(vector, self.dim, collection=self.name)
        where = where_clause(filter, self._columns)
        if where == NO_MATCH:  # perhaps a key that another writer added since we read the schema
            self._columns = set(self._do(self._table.schema(), "reading the schema").names)
            where = where_clause(filter, self._columns)
        if k <= 0 or where == NO_MATCH:
            return []
        if where is None and self._config.memory_index:
            ids, scores, metadata = self._memory_search(query, k)
        else:
            ids, scores, metadata = self._do(self._search(query, k, where), "search")
        hits = [
            Hit(id=item_id, score=float(score), metadata=json.loads(values))
            for item_id, score, values in zip(ids, scores, metadata, strict=True)
        ]
        return [hit for hit in hits if matches(hit.metadata, filter)]  # a safety net: the SQL is exact

    def _version_now(self) -> int | None:
        """The table's version, asked of LanceDB at most every ``read_consistency_s`` (it looks
        for other writers' commits no more often than that); in between, the mirrored one."""
        interval = self._config.read_consistency_s
        now = time.monotonic()
        if interval is not None and now - self._version_checked >= interval:
            self._version_checked = now
            return self._do(self._table.version(), "reading the table version")
        return self._memory_version

    def _memory_search(self, query: np.ndarray, k: int) -> _Ranked:
        memory = self._synced_memory()
        return memory.search(query, k, auto_nprobes(memory.partitions, k, self._config.nprobes))

    def _synced_memory(self) -> MemoryANN:
        """The in-memory index, (re)built from the table if it is missing, outgrown, or behind
        the table's version (another process wrote; seen within ``read_consistency_s``)."""
        memory = self._memory
        if memory is not None and not memory.needs_rebuild and self._memory_version == self._version_now():
            return memory
        with self._writing:  # none of our writes between the scan and the version it is tagged with
            version = self._do(self._table.version(), "reading the table version")
            memory = self._memory  # another thread may have just built it
            if memory is not None and not memory.needs_rebuild and version == self._memory_version:
                return memory
            table = self._do(self._table.query().select(["id", "vector", "metadata"]).to_arrow(), "loading vectors")
            memory = MemoryANN(
                self.dim,
                # exact while LanceDB scans exactly too; IVF once it has an index (also an explicit one)
                exact_below=self._config.index_threshold if self._index is None else 1,
                partitions=lambda rows: self._config.num_partitions or auto_num_partitions(rows),
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
        return [ids[i] for i in top], scores[top], [metadata[i] for i in top]

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


async def _compact_if_fragmented(table: Any) -> None:
    stats = await table.stats()
    if stats["fragment_stats"]["num_small_fragments"] > _SMALL_FRAGMENTS:
        await table.optimize(cleanup_older_than=_KEEP_VERSIONS)


# -- event log ----------------------------------------------------------------------------------


class LanceEventLog(EventLog):
    """Events in the table ``events``; ``seq`` keeps the append order."""

    def __init__(self, store: LanceDBStore, table: Any) -> None:
        self._store, self._table = store, table
        self._next_seq = self._do(self._table.count_rows(), "count")
        indices = self._do(self._table.list_indices(), "listing indices")
        self._user_indexed = any(index.columns == ["user"] for index in indices)
        self._writes = 0
        self._writing = threading.Lock()  # appends take consecutive ``seq`` numbers

    @staticmethod
    def schema() -> pa.Schema:
        import pyarrow as pa

        return pa.schema(
            [
                pa.field("user", pa.utf8(), nullable=False),
                pa.field("item", pa.utf8(), nullable=False),
                pa.field("kind", pa.utf8(), nullable=False),
                pa.field("value", pa.float64(), nullable=False),
                pa.field("timestamp", pa.float64(), nullable=False),
                pa.field("seq", pa.int64(), nullable=False),
            ]
        )

    def _do(self, coroutine: Coroutine[Any, Any, T], what: str) -> T:
        return _run(coroutine, f"{what} on the event log in {self._store.location}")

    def append(self, events: Sequence[Event]) -> None:
        import pyarrow as pa

        checked = [event if isinstance(event, Event) else Event.model_validate(event) for event in events]
        if not checked:
            return
        columns = {name: [getattr(event, name) for event in checked] for name in ("user", "item", "kind", "value")}
        columns["timestamp"] = [event.timestamp for event in checked]
        with self._writing:
            columns["seq"] = list(range(self._next_seq, self._next_seq + len(checked)))
            self._do(self._append(pa.table(columns, schema=self.schema())), "append")
            self._next_seq += len(checked)

    async def _append(self, data: pa.Table) -> None:
        from lancedb.index import BTree

        await self._table.add(data)
        self._writes += 1
        if not self._user_indexed and self._next_seq + data.num_rows >= self._store.config.index_threshold:
            await self._table.create_index("user", config=BTree(), replace=True)
            self._user_indexed = True
        elif self._writes % _COMPACT_EVERY == 0:
            await _compact_if_fragmented(self._table)

    def read(self, user: str | None = None) -> list[Event]:
        query = self._table.query()
        if user is not None:
            query = query.where(f"user = {sql_string(user)}")
        table = self._do(query.to_arrow(), "read")
        order = np.argsort(table.column("seq").to_numpy(), kind="stable")
        rows = table.take(order).to_pydict()
        return [
            Event.model_construct(user=u, item=i, kind=k, value=v, timestamp=t)
            for u, i, k, v, t in zip(rows["user"], rows["item"], rows["kind"], rows["value"], rows["timestamp"])
        ]

    def count(self) -> int:
        return self._do(self._table.count_rows(), "count")


# -- the store ----------------------------------------------------------------------------------


class LanceDBStore(VectorStore):
    """Embedded LanceDB store (``store = {plugin = "lancedb", uri = "polyrec-data"}``)."""

    name: ClassVar[str] = "lancedb"
    exact: ClassVar[bool] = False
    Config: ClassVar[type[ComponentConfig]] = LanceDBConfig
    config: LanceDBConfig

    def __init__(self, config: ComponentConfig | None = None, **params: Any) -> None:
        super().__init__(config, **params)
        self._db: Any = None
        self._collections: dict[str, LanceCollection] = {}
        self._events: LanceEventLog | None = None
        # serialises connecting and the open-or-create of tables: threads sharing a store
        # (e.g. the HTTP server's) would otherwise both create a missing table
        self._lock = threading.Lock()

    @property
    def location(self) -> str:
        return str(self.config.uri)

    def _connection(self) -> Any:
        if self._db is None:
            import lancedb

            self.config.uri.mkdir(parents=True, exist_ok=True)
            seconds = self.config.read_consistency_s
            interval = None if seconds is None else timedelta(seconds=seconds)
            connecting = lancedb.connect_async(str(self.config.uri), read_consistency_interval=interval)
            self._db = _run(connecting, f"opening {self.location}")
        return self._db

    @staticmethod
    async def _open_table(db: Any, name: str, schema: pa.Schema) -> tuple[Any, bool]:
        """Open table ``name``, creating it (empty, with ``schema``) if there is none."""
        try:
            return await db.open_table(name), False
        except ValueError as exc:
            if "not found" not in str(exc).lower():
                raise
        try:
            return await db.create_table(name, schema=schema), True
        except Exception as create_error:
            # another store or process created it since open_table ("already exists", or a
            # commit conflict with its create): use theirs; if there is none, the create failed
            try:
                return await db.open_table(name), False
            except Exception:
                raise create_error from None

    def open(self, collection: str, *, dim: int, provenance: Mapping[str, str]) -> LanceCollection:
        wanted = {str(key): str(value) for key, value in provenance.items()}
        _check_name(collection)
        if dim <= 0:
            raise ValueError(f"collection {collection!r}: dim must be positive, got {dim}")
        with self._lock:
            opened = self._collections.get(collection)
            if opened is None:
                opened = _run(
                    self._open_collection(self._connection(), collection, dim, wanted),
                    f"opening collection {collection!r}",
                )
            self._check(opened.name, opened.dim, opened.provenance, dim, wanted)
            self._collections[collection] = opened
        return opened

    async def _open_collection(self, db: Any, name: str, dim: int, provenance: dict[str, str]) -> LanceCollection:
        table, _created = await self._open_table(db, name, _collection_schema(dim, provenance))
        metadata = (await table.schema()).metadata or {}
        if _DIM_KEY not in metadata:
            raise StoreError(f"table {name!r} in {self.location} is not a polyrec collection (no dim in its schema)")
        stored_dim = int(metadata[_DIM_KEY])
        stored = json.loads(metadata.get(_PROVENANCE_KEY, b"{}"))
        opened = LanceCollection(self, table, name, stored_dim, stored)
        await opened._load_state()
        return opened

    def drop(self, collection: str) -> bool:
        """Delete the collection's table; False if there was none."""
        _check_name(collection)
        with self._lock:
            self._collections.pop(collection, None)
            return _run(self._drop(self._connection(), collection), f"dropping collection {collection!r}")

    @staticmethod
    async def _drop(db: Any, name: str) -> bool:
        try:
            await db.drop_table(name)
        except ValueError as exc:
            if "not found" not in str(exc).lower():
                raise
            return False
        return True

    def _check(self, name: str, stored_dim: int, stored: dict[str, str], dim: int, wanted: dict[str, str]) -> None:
        check_provenance(
            collection=name,
            location=self.location,
            stored_dim=stored_dim,
            stored=stored,
            dim=dim,
            provenance=wanted,
            remedy=(
                f"Point the store at a new directory (store uri) and ingest again, or delete "
                f"{Path(self.location) / (name + '.lance')} and re-ingest the items."
            ),
        )

    def events(self) -> LanceEventLog:
        with self._lock:
            if self._events is None:
                schema = LanceEventLog.schema()
                opening = self._open_table(self._connection(), EVENTS_TABLE, schema)
                table, _created = _run(opening, "opening the event log")
                self._events = LanceEventLog(self, table)
            return self._events

    @property
    def state_dir(self) -> Path:
        path = self.config.uri / "state"
        path.mkdir(parents=True, exist_ok=True)
        return path

    def close(self) -> None:
        with self._lock:
            self._collections.clear()
            self._events = None
            if self._db is not None:
                self._db.close()
                self._db = None


def _check_name(collection: str) -> None:
    if not _COLLECTION_NAME.fullmatch(collection) or collection == EVENTS_TABLE:
        raise StoreError(
            f"invalid collection name {collection!r}: use letters, digits, '_', '-' or '.' "
            f"(and not {EVENTS_TABLE!r}, the event log)"
        )


def _collection_schema(dim: int, provenance: Mapping[str, str]) -> pa.Schema:
    import pyarrow as pa

    metadata = {
        _FORMAT_KEY: b"1",
        _DIM_KEY: str(dim).encode(),
        _PROVENANCE_KEY: json.dumps(dict(sorted(provenance.items()))).encode(),
    }
    fields = [
        pa.field("id", pa.utf8(), nullable=False),
        pa.field("vector", pa.list_(pa.float32(), dim), nullable=False),
        pa.field("metadata", pa.utf8(), nullable=False),
    ]
    return pa.schema(fields, metadata=metadata)


@hookimpl
def register_stores(register: Any) -> None:
    register(LanceDBStore)
