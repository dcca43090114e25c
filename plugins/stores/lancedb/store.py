"""The ``lancedb`` store (the default): an embedded LanceDB directory, or a prefix on object storage.

Layout under ``uri``: one LanceDB table per collection, the table ``events`` for the
event log, and ``state/`` for trained component state. ``uri`` may be a bucket prefix
(``s3://bucket/prefix``, ``gs://...``, ``az://...``) with ``storage_options`` as LanceDB
takes them (credentials, ``region``, ``endpoint``, ``allow_http``); trained state is files,
so it then goes to ``state_dir`` (a local or shared folder).

How a collection is stored, and why:

- ``id`` (string), ``vector`` (fixed-size list of float32, exact round trip) and
  ``metadata`` (the metadata dict as JSON). JSON is what :meth:`get` and search hits read
  back, because it keeps what typed columns lose: int vs float vs bool, key order, and
  keys whose value is ``None``.
- One typed, nullable column per filterable metadata key *and* value type, added the first
  time that pair appears (filterable: the keys ``filter_keys`` names, else the first
  ``max_filter_keys`` keys seen; the others stay in the JSON, see ``filter_columns.py``):
  ``m_<key>__s`` (string), ``__i`` (int64), ``__f`` (float64),
  ``__b`` (bool), ``__l`` (list of strings); keys that are not plain identifiers are
  hex-encoded (``mx_<hex>__s``). These columns exist only for filtering: a filter is
  translated to a SQL ``WHERE`` over them (:func:`polyrec.plugins.stores.lancedb.filters.where_clause`) that follows
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
default): a faiss copy of the vectors, ids and metadata JSON (:mod:`polyrec.plugins.stores.lancedb.memory_index`),
exact while the table is scanned exactly and IVF over 8-bit codes, re-scored exactly (same
partition count, half the probes: :func:`~polyrec.plugins.stores.lancedb.collection.memory_nprobes_base`)
once it has an index. A LanceDB query costs 3-4 ms before it scans anything on a 2-core
machine; the copy answers a top-10 over 100k x 384 rows in about 2 ms with exact scores
(see ``bench/bench_store.py``); once built it also answers :meth:`get`. It is built at
the first unfiltered search, kept up by
this store's own writes, and rebuilt from the table when the table's version moves under
it (another process wrote) or the rows outgrow it. Filtered searches stay with LanceDB.
One gap: when another process's commit lands between this store's version check and its
own write and Lance merges the two without a conflict, inserts and deletes are caught (the
row counts differ) but an update of existing rows is missed until the next rebuild.

A store object keeps one handle per table; it sees other processes' writes within
``read_consistency_s`` seconds. Several processes may write one collection: a write whose
commit loses a race to another writer's is run again on the latest version (upserts merge
by id, deletes are by id, so a retry changes nothing else).

Modules: this one (config, store, layout), :mod:`~polyrec.plugins.stores.lancedb.collection`
(collections, the index), :mod:`~polyrec.plugins.stores.lancedb.events` (the event log),
:mod:`~polyrec.plugins.stores.lancedb.filters` (filters as SQL), :mod:`~polyrec.plugins.stores.lancedb.memory_index`.
``lancedb`` is imported only when a store is first used, without the REST client's API modules
(:mod:`~polyrec.plugins.stores.lancedb.lazy_imports`). A local store under ``index_threshold``
rows is also answered from a read snapshot that the last store to use LanceDB left when it
closed, while no table has changed since (:mod:`~polyrec.plugins.stores.lancedb.snapshot`):
then a one-shot reader never imports LanceDB. Its async API runs on one event
loop thread (:mod:`~polyrec.plugins.stores.lancedb.runtime`): the sync wrapper costs several
thread hops per query.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import Field, field_validator

from polyrec.contracts import ComponentConfig, StoreError, VectorStore, hookimpl, is_object_uri
from polyrec.plugins.stores.checks import check_provenance
from polyrec.plugins.stores.lancedb.collection import LanceCollection, auto_nprobes, auto_num_partitions
from polyrec.plugins.stores.lancedb.events import LanceEventLog
from polyrec.plugins.stores.lancedb.filter_columns import DEFAULT_MAX_FILTER_KEYS, FilterColumns
from polyrec.plugins.stores.lancedb.filters import metadata_column, where_clause
from polyrec.plugins.stores.lancedb.lazy_imports import import_lancedb
from polyrec.plugins.stores.lancedb.runtime import run
from polyrec.plugins.stores.lancedb.snapshot import ReadSnapshot, write_snapshot
from polyrec.plugins.stores.lancedb.snapshot_views import SnapshotCollection, SnapshotEventLog

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

EVENTS_TABLE = "events"
_FORMAT_KEY, _DIM_KEY, _PROVENANCE_KEY = b"polyrec.format", b"polyrec.dim", b"polyrec.provenance"
_COLLECTION_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")


class LanceDBConfig(ComponentConfig):
    """Parameters of the ``lancedb`` store."""

    uri: Path | str = Field(
        default=Path("polyrec-data"),
        description="database directory (relative: to the config file), or object storage: s3://bucket/prefix",
    )
    storage_options: dict[str, str] = Field(
        default_factory=dict,
        description="object storage options as LanceDB takes them (aws_access_key_id, region, endpoint, allow_http)",
    )
    state_dir: Path | None = Field(
        default=None, description="trained state folder (default: <uri>/state; with object storage: ./polyrec-state)"
    )
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
    user_cache_events: int = Field(
        default=200_000, ge=0, description="events of recently read users the event log keeps in memory (0: none)"
    )
    read_consistency_s: float | None = Field(
        default=5.0, ge=0, description="how stale reads may be when another process writes (None: never refresh)"
    )
    read_snapshot: bool = Field(
        default=True,
        description="local stores under index_threshold rows: answer reads from a snapshot file while it is current",
    )
    read_snapshot_mb: float = Field(default=64.0, ge=0, description="largest read snapshot written, in MiB")
    filter_keys: list[str] | None = Field(
        default=None,
        max_length=256,
        description="the metadata keys that can be filtered on (typed columns); others stay in the metadata "
        "JSON only (default: the first max_filter_keys keys seen)",
    )
    max_filter_keys: int = Field(
        default=DEFAULT_MAX_FILTER_KEYS,
        ge=0,
        le=1024,
        description="without filter_keys: how many distinct metadata keys get filter columns, the first seen",
    )

    @field_validator("uri", mode="before")
    @classmethod
    def _local_or_remote(cls, value: Any) -> Any:
        """An object storage URI stays a string; anything else is a local path (anchored at the config)."""
        if isinstance(value, str) and not is_remote(value):
            return Path(value)
        return value

    @property
    def remote(self) -> bool:
        return isinstance(self.uri, str)


def is_remote(uri: str | Path) -> bool:
    """``s3://``, ``gs://``, ``az://``, ... (``file://`` and plain paths are local)."""
    return is_object_uri(uri)


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
        self._collections: dict[str, LanceCollection | SnapshotCollection] = {}
        self._events: LanceEventLog | SnapshotEventLog | None = None
        self._snapshot: ReadSnapshot | bool | None = False  # False: not looked for yet
        # serialises connecting and the open-or-create of tables: threads sharing a store
        # (e.g. the HTTP server's) would otherwise both create a missing table
        self._lock = threading.Lock()

    @property
    def location(self) -> str:
        return str(self.config.uri).rstrip("/") if self.config.remote else str(self.config.uri)

    @property
    def storage_options(self) -> dict[str, str] | None:
        return dict(self.config.storage_options) or None

    @property
    def filter_columns(self) -> FilterColumns:
        """Which metadata keys get typed filter columns (filter_keys / max_filter_keys)."""
        keys = self.config.filter_keys
        return FilterColumns(None if keys is None else tuple(keys), self.config.max_filter_keys)

    def table_uri(self, name: str) -> str:
        """Where table ``name`` lives (a Lance dataset): ``<uri>/<name>.lance``."""
        if self.config.remote:
            return f"{self.location}/{name}.lance"
        return str(Path(self.config.uri).absolute() / f"{name}.lance")

    def _connection(self) -> Any:
        if self._db is None:
            lancedb = import_lancedb()  # without the REST namespace client's API modules (2.4 s)

            if not self.config.remote:
                Path(self.config.uri).mkdir(parents=True, exist_ok=True)
            seconds = self.config.read_consistency_s
            interval = None if seconds is None else timedelta(seconds=seconds)
            connecting = lancedb.connect_async(
                self.location, read_consistency_interval=interval, storage_options=self.storage_options
            )
            self._db = run(connecting, f"opening {self.location}")
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

    def _read_snapshot(self) -> ReadSnapshot | None:
        """The store's read snapshot (see snapshot.py), loaded once; None if not used here."""
        if self._snapshot is False:
            usable = self.config.read_snapshot and not self.config.remote
            self._snapshot = ReadSnapshot.load(Path(self.config.uri)) if usable else None
        return self._snapshot or None

    def open(self, collection: str, *, dim: int, provenance: Mapping[str, str]) -> LanceCollection | SnapshotCollection:
        wanted = {str(key): str(value) for key, value in provenance.items()}
        _check_name(collection)
        if dim <= 0:
            raise ValueError(f"collection {collection!r}: dim must be positive, got {dim}")
        with self._lock:
            opened = self._collections.get(collection)
            if opened is None:
                snapshot = self._read_snapshot()
                rows = snapshot.collections.get(collection) if snapshot is not None else None
                if rows is not None and rows.watch.current():
                    opened = SnapshotCollection(rows, lambda: self._open_lance(collection, rows.dim, rows.provenance))
                else:
                    opened = self._open_lance_locked(collection, dim, wanted)
            self._check(opened.name, opened.dim, opened.provenance, dim, wanted)
            self._collections[collection] = opened
        return opened

    def _open_lance(self, collection: str, dim: int, provenance: dict[str, str]) -> LanceCollection:
        with self._lock:
            return self._open_lance_locked(collection, dim, provenance)

    def _open_lance_locked(self, collection: str, dim: int, provenance: dict[str, str]) -> LanceCollection:
        return run(
            self._open_collection(self._connection(), collection, dim, provenance),
            f"opening collection {collection!r}",
        )

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
            return run(self._drop(self._connection(), collection), f"dropping collection {collection!r}")

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

    def events(self) -> LanceEventLog | SnapshotEventLog:
        with self._lock:
            if self._events is None:
                snapshot = self._read_snapshot()
                rows = snapshot.events if snapshot is not None else None
                if rows is not None and rows.watch.current():
                    self._events = SnapshotEventLog(rows, self._open_lance_events)
                else:
                    self._events = self._open_lance_events_locked()
            return self._events

    def _open_lance_events(self) -> LanceEventLog:
        with self._lock:
            return self._open_lance_events_locked()

    def _open_lance_events_locked(self) -> LanceEventLog:
        opening = self._open_table(self._connection(), EVENTS_TABLE, LanceEventLog.schema())
        table, _created = run(opening, "opening the event log")
        return LanceEventLog(self, table)

    @property
    def state_dir(self) -> Path:
        if self.config.state_dir is not None:
            path = self.config.state_dir
        elif self.config.remote:  # trained state is files: a local folder named after the bucket prefix
            path = Path("polyrec-state") / re.sub(r"[^A-Za-z0-9_.-]+", "_", self.location)
        else:
            path = Path(self.config.uri) / "state"
        path.mkdir(parents=True, exist_ok=True)
        return path

    def close(self) -> None:
        with self._lock:
            self._collections.clear()
            self._events = None
            self._snapshot = False
            used_lancedb = self._db is not None
            if used_lancedb:
                self._db.close()
                self._db = None
        if used_lancedb and self.config.read_snapshot and not self.config.remote:
            # this process read or wrote through LanceDB: leave a snapshot for the next one-shot reader
            write_snapshot(
                Path(self.config.uri),
                index_threshold=self.config.index_threshold,
                max_bytes=int(self.config.read_snapshot_mb * 2**20),
            )


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
