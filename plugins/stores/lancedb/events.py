"""The LanceDB event log: one table; every event has an identity and a place in one order.

- ``id``: the event's key (:mod:`polyrec.contracts.event_keys`): the client's event id, or a
  content hash. Appends are a ``merge_insert`` on ``id`` that only inserts absent keys, so
  a retried append (a client that got no answer, ``polyrec events`` run twice on one file)
  adds nothing. Logs written before keys existed get the column (null for their rows).
- ``seq``: wall-clock nanoseconds when the append ran, strictly increasing within a process,
  so events appended by several processes interleave in the order they were appended and
  ``read`` orders by ``(seq, id)``, one order every reader agrees on. (Logs written before
  this numbered ``seq`` by each process's own count: those rows keep their small numbers,
  older than any new one.)
- ``read(user)`` is on every recommendation's path: from ``index_threshold`` events on, a
  B-tree index on ``user`` serves it (and one on ``id`` serves the appends' look-up);
  appended rows are folded into them once they pass ``reindex_fraction`` of the indexed
  ones (at 1M events: 20 ms instead of 150 ms).
- Upkeep after an append (index builds, folds, compaction) commits on its own and may lose
  a race to another writer's commit: that is logged and left to the next append, never
  reported as a failed append (the events are stored).
- ``read(user)`` answers repeated reads of a user from memory (the events of the most
  recently read users, ``user_cache_events`` events at most; a log of at most half that
  many events is read whole at the first read after each change, so even a user's first
  read comes from memory): a read from the table costs a
  hop into LanceDB's runtime and a query, most of a recommendation. The cache is dropped
  by every append and erasure of this process, and when the table's version moves under
  it (another process wrote), which is looked for every ``read_consistency_s``, as LanceDB
  itself looks for other writers' commits.
- ``users()`` and ``item_counts()`` (``GET /users``, a cold user's popular items) come from
  counts kept per fragment of the table (:mod:`.event_counts`): after a write, only the new
  fragments are read, so they cost the same at 1M events as at 100k, whichever process wrote.
- ``erase_user`` deletes a user's rows and then rewrites the files that held them and
  removes every older version (:func:`~.runtime.purge_deleted`), so the rows are gone from
  disk, not only hidden.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Coroutine, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from polyrec.contracts import Event, EventLog, StoreError
from polyrec.contracts.event_keys import client_id_of, event_keys
from polyrec.plugins.stores.lancedb.event_counts import EventCounts
from polyrec.plugins.stores.lancedb.filters import sql_string
from polyrec.plugins.stores.lancedb.runtime import (
    COMPACT_EVERY,
    commit_retrying,
    compact_if_fragmented,
    fold_new_rows,
    purge_deleted,
    run,
)

if TYPE_CHECKING:
    import pyarrow as pa

    from polyrec.plugins.stores.lancedb.store import LanceDBStore

__all__ = ["LanceEventLog"]

T = TypeVar("T")
log = logging.getLogger(__name__)

USER_INDEX, KEY_INDEX = "user_idx", "id_idx"


class LanceEventLog(EventLog):
    """Events in the table ``events``; see the module docstring."""

    def __init__(self, store: LanceDBStore, table: Any) -> None:
        self._store, self._table = store, table
        self._do(self._add_key_column(), "adding the id column")
        self._indexed = self._do(self._indexed_columns(), "listing indices")
        self._writes = 0
        self._last_seq = 0
        self._writing = threading.Lock()  # one append of this process at a time: increasing ``seq``
        self._cache = _UserCache(store.config.user_cache_events)
        self._cache_version: int | None = None  # the table version the cached reads are of
        self._known_version: int | None = None  # the table version last asked for
        self._version_checked = -math.inf  # when it was last asked for (time.monotonic)
        self._counts = EventCounts(self._open_dataset)

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
                pa.field("id", pa.utf8(), nullable=True),
            ]
        )

    def _open_dataset(self) -> Any:
        import lance

        return lance.dataset(self._store.table_uri("events"), storage_options=self._store.storage_options)

    def _do(self, coroutine: Coroutine[Any, Any, T], what: str) -> T:
        return run(coroutine, f"{what} on the event log in {self._store.location}")

    async def _add_key_column(self) -> None:
        import pyarrow as pa

        if "id" in (await self._table.schema()).names:
            return
        try:
            await self._table.add_columns([pa.field("id", pa.utf8())])
        except Exception:  # another process added it first
            await self._table.checkout_latest()
            if "id" not in (await self._table.schema()).names:
                raise

    async def _indexed_columns(self) -> set[str]:
        return {index.columns[0] for index in await self._table.list_indices() if len(index.columns) == 1}

    # -- writing --

    def _next_seqs(self, count: int) -> list[int]:
        start = max(time.time_ns(), self._last_seq + 1)
        self._last_seq = start + count - 1
        return list(range(start, start + count))

    def append(self, events: Sequence[Event]) -> int:
        import pyarrow as pa

        checked = [event if isinstance(event, Event) else Event.model_validate(event) for event in events]
        if not checked:
            return 0
        rows: dict[str, Event] = {}
        for key, event in zip(event_keys(checked), checked, strict=True):
            rows.setdefault(key, event)  # a client id sent twice in one batch: its first event
        columns: dict[str, list[Any]] = {
            name: [getattr(event, name) for event in rows.values()]
            for name in ("user", "item", "kind", "value", "timestamp")
        }
        columns["id"] = list(rows)
        with self._writing:
            columns["seq"] = self._next_seqs(len(rows))
            data = pa.table(columns, schema=self.schema())
            try:
                merged, _ = commit_retrying(
                    lambda: self._insert_absent(data), self._refresh, self._do, "append", "the event log"
                )
            finally:
                self._forget_reads()
            self._upkeep()
        return int(merged.num_inserted_rows)

    async def _insert_absent(self, data: pa.Table) -> Any:
        return await self._table.merge_insert("id").when_not_matched_insert_all().execute(data)

    async def _refresh(self) -> None:
        await self._table.checkout_latest()

    def _upkeep(self) -> None:
        """Index and compaction upkeep: its failure never fails the append that already committed."""
        try:
            self._do(self._maintain(), "index upkeep")
        except StoreError as exc:
            log.warning(
                "event log in %s: upkeep after an append failed; the next append retries: %s", self._store.location, exc
            )

    async def _maintain(self) -> None:
        from lancedb.index import BTree

        self._writes += 1
        config = self._store.config
        missing = {"user", "id"} - self._indexed
        if missing:
            if await self._table.count_rows() >= config.index_threshold:
                for column in sorted(missing):
                    name = USER_INDEX if column == "user" else KEY_INDEX
                    await self._table.create_index(column, config=BTree(), replace=True, name=name)
                    self._indexed.add(column)
                return
        elif await fold_new_rows(self._table, USER_INDEX, config.reindex_fraction):
            return  # optimize compacted too
        if self._writes % COMPACT_EVERY == 0:
            await compact_if_fragmented(self._table)

    def erase_user(self, user: str) -> int:
        where = f"user = {sql_string(user)}"
        with self._writing:
            found = self._do(self._table.count_rows(where), "count")
            if found:
                try:
                    commit_retrying(
                        lambda: self._table.delete(where), self._refresh, self._do, "erase", "the event log"
                    )
                finally:
                    self._forget_reads()
            # also when nothing was found: an erasure interrupted before this point left old versions
            self._do(purge_deleted(self._table), "pruning old versions")
        return found

    # -- reading --

    def _forget_reads(self) -> None:
        self._cache.clear()
        self._version_checked = -math.inf  # the next read asks for the version this write made

    def _current_version(self) -> int | None:
        """The table's version, asked at most every ``read_consistency_s`` (None: never again)."""
        interval = self._store.config.read_consistency_s
        now = time.monotonic()
        if self._known_version is None or (interval is not None and now - self._version_checked >= interval):
            self._version_checked = now
            self._known_version = self._do(self._table.version(), "reading the table version")
        return self._known_version

    def read(self, user: str | None = None) -> list[Event]:
        if user is None:
            return self._read(None)
        generation = self._cache.generation
        version = self._current_version()
        if version != self._cache_version:
            self._cache.clear()
            self._cache_version, generation = version, self._cache.generation
        cached = self._cache.get(user)
        if cached is not None:
            return list(cached)
        if self._cache.whole_log_tried != generation:  # once per version: a small log is read whole
            self._cache.whole_log_tried = generation
            if self._do(self._table.count_rows(), "count") <= self._cache.limit // 2:
                everything = self._read(None)
                self._cache.fill(everything, generation)
                cached = self._cache.get(user)
                if cached is not None:
                    return list(cached)
        events = self._read(user)
        self._cache.put(user, events, generation)  # not if a write of ours ran meanwhile
        return list(events)

    def _read(self, user: str | None) -> list[Event]:
        query = self._table.query()
        if user is not None:
            query = query.where(f"user = {sql_string(user)}")
        table = self._do(query.to_arrow(), "read")
        rows = table.take(_append_order(table)).to_pydict()
        return [
            Event.model_construct(user=u, item=i, kind=k, value=v, timestamp=t, id=client_id_of(key))
            for u, i, k, v, t, key in zip(
                rows["user"], rows["item"], rows["kind"], rows["value"], rows["timestamp"], rows["id"]
            )
        ]

    def count(self) -> int:
        return self._do(self._table.count_rows(), "count")

    def users(self) -> list[str]:
        self._refresh_counts()
        return self._counts.users()

    def item_counts(self) -> dict[str, int]:
        self._refresh_counts()
        return self._counts.item_counts()

    def _refresh_counts(self) -> None:
        version = self._current_version()
        try:
            self._counts.refresh(version)
        except Exception:  # e.g. an erasure in another process removed the files just listed: once more
            try:
                self._counts.refresh(None)
            except Exception as exc:
                raise StoreError(
                    f"lancedb: counting events on the event log in {self._store.location} failed: "
                    f"{type(exc).__name__}: {exc}"
                ) from exc


class _UserCache:
    """Events of the most recently read users, ``limit`` events at most. ``generation`` counts
    clears, so a read that started before one does not store what it read."""

    def __init__(self, limit: int) -> None:
        self.limit, self.generation, self.size = limit, 0, 0
        self.whole_log_tried = -1  # the generation whose whole log was (or was not) loaded
        self._complete = False  # every user's events are here: a user not here has none
        self._users: OrderedDict[str, list[Event]] = OrderedDict()
        self._lock = threading.Lock()

    def clear(self) -> None:
        with self._lock:
            self._users.clear()
            self.size = 0
            self._complete = False
            self.generation += 1

    def get(self, user: str) -> list[Event] | None:
        with self._lock:
            events = self._users.get(user)
            if events is not None:
                self._users.move_to_end(user)
            return [] if events is None and self._complete else events

    def fill(self, events: list[Event], generation: int) -> None:
        """The whole log at once (read in append order), if no write ran since ``generation``."""
        by_user: dict[str, list[Event]] = {}
        for event in events:
            by_user.setdefault(event.user, []).append(event)
        with self._lock:
            if generation != self.generation or len(events) > self.limit:
                return
            self._users = OrderedDict(by_user)
            self.size, self._complete = len(events), True

    def put(self, user: str, events: list[Event], generation: int) -> None:
        with self._lock:
            if generation != self.generation or len(events) > self.limit or user in self._users:
                return
            self._users[user] = events
            self.size += len(events)
            while self.size > self.limit:
                _, dropped = self._users.popitem(last=False)
                self.size -= len(dropped)
                self._complete = False  # a user dropped: absent no longer means no events


def _append_order(table: pa.Table) -> np.ndarray:
    """Row order by ``(seq, id)``: ``seq`` ties (two processes in the same nanosecond, or
    logs written before ``seq`` was a time) are broken by the key, the same for every reader."""
    seq = table.column("seq").to_numpy()
    order = np.argsort(seq, kind="stable")
    ordered = seq[order]
    if len(ordered) < 2 or not (ordered[1:] == ordered[:-1]).any():
        return order
    keys = table.column("id").to_pylist()
    return np.array(sorted(order.tolist(), key=lambda row: (seq[row], keys[row] or "")), dtype=np.int64)
