"""A read snapshot of a small local store, so one-shot commands answer without importing LanceDB.

Why: ``import lancedb`` alone costs 1.7-3.4 s (its REST namespace client, pyarrow.dataset,
pandas), most of a one-shot ``polyrec recommend`` on a small store, whose reads take
milliseconds. So a store that used LanceDB writes, when it closes, one file beside the
tables (``polyrec-read-snapshot.npz``): every table's rows as LanceDB returns them (ids,
vectors, metadata JSON of each collection; the event log in its read order), each tagged
with the Lance manifest it was read at. A later process opens collections and the event
log from that file when it is current, and never imports LanceDB unless it writes.

Current means: for every table the snapshot covers, the newest manifest under the
dataset's ``_versions/`` is still the one it was read at (same version, file name, size,
modification time and inode, so a table dropped and made again is no match). Every Lance
commit (an upsert, a delete, an append of events, ``fit`` re-fusing items, a compaction,
an erasure), by any process, writes a new manifest, so it makes the snapshot stale. This is
checked before every read (a ``stat`` of ``_versions/``, and a listing of it when that
changed or changed recently); a stale table is read from LanceDB from then on, and the
next store that closes after using LanceDB writes a new snapshot.

Same results as the full path: only stores where the full path is exact are snapshotted:
local, every collection under ``index_threshold`` rows and without a vector index (the
full path scans exactly there; an IVF index would make it approximate), and the whole file
under ``read_snapshot_mb``. Searches run faiss's exact flat kernel, the one
:class:`~polyrec.plugins.stores.lancedb.collection.LanceCollection`'s in-memory index runs, on
the same rows in the same order (so same scores and the same order of ties), without
``import faiss`` (:mod:`~polyrec.plugins.stores.lancedb.flat_scan`); filters are
:func:`polyrec.contracts.matches`, which LanceDB's SQL filters follow exactly. Erasure
deletes the file at once (:func:`discard`), so no erased row stays in it.

The file is a NumPy ``.npz`` read with ``allow_pickle=False``: arrays and JSON, no code.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["SNAPSHOT_FILE", "Stamp", "ReadSnapshot", "discard", "latest_manifest", "write_snapshot"]

log = logging.getLogger(__name__)

SNAPSHOT_FILE = "polyrec-read-snapshot.npz"
FORMAT = 1
EVENTS_TABLE = "events"
_U64_MAX = 2**64 - 1
#: a ``_versions/`` folder whose modification time is older than this when it was last listed
#: is trusted by its ``stat`` alone (a change within one timestamp tick could hide otherwise)
_SETTLED_S = 2.0


@dataclass(frozen=True)
class Stamp:
    """The newest manifest of a Lance dataset: which version, and which file exactly."""

    version: int
    name: str
    size: int
    mtime_ns: int
    inode: int


def _version_of(name: str) -> int | None:
    """``3.manifest`` (Lance's V1 naming) or ``18446744073709551612.manifest`` (V2: u64::MAX - version)."""
    stem, dot, suffix = name.partition(".")
    if suffix != "manifest" or not dot or not stem.isdigit():
        return None
    number = int(stem)
    return _U64_MAX - number if number >= 2**63 else number


def latest_manifest(table_dir: Path) -> Stamp | None:
    """The stamp of a dataset's newest manifest; None if it has none (no table)."""
    best: tuple[int, os.DirEntry[str]] | None = None
    try:
        with os.scandir(table_dir / "_versions") as entries:
            for entry in entries:
                version = _version_of(entry.name)
                if version is not None and (best is None or version > best[0]):
                    best = (version, entry)
        if best is None:
            return None
        stat = best[1].stat()
    except FileNotFoundError:
        return None
    return Stamp(best[0], best[1].name, stat.st_size, stat.st_mtime_ns, stat.st_ino)


class _Watch:
    """Whether one table is still at its stamp, cheaply: the ``_versions/`` folder is listed
    again only when its own modification time moved, or was recent at the last listing."""

    def __init__(self, table_dir: Path, stamp: Stamp) -> None:
        self.table_dir, self.stamp = table_dir, stamp
        self._settled_mtime: int | None = None

    def current(self) -> bool:
        try:
            folder = os.stat(self.table_dir / "_versions").st_mtime_ns
        except FileNotFoundError:
            return False
        if folder == self._settled_mtime:
            return True
        listed_at = time.time_ns()
        if latest_manifest(self.table_dir) != self.stamp:
            return False
        if listed_at - folder > _SETTLED_S * 1e9:
            self._settled_mtime = folder
        return True


def _json_array(values: Any) -> np.ndarray:
    return np.frombuffer(json.dumps(values, ensure_ascii=False).encode(), dtype=np.uint8)


def _json_value(array: np.ndarray) -> Any:
    return json.loads(array.tobytes().decode())


class CollectionRows:
    """One collection's rows in the snapshot: ids, vectors, metadata JSON (decoded when first used)."""

    def __init__(self, name: str, dim: int, provenance: dict[str, str], ids: list[str], vectors: np.ndarray,
                 metadata: list[str], watch: _Watch) -> None:  # fmt: skip
        self.name, self.dim, self.provenance = name, dim, provenance
        self.ids, self.vectors, self.metadata_json, self.watch = ids, vectors, metadata, watch
        self._decoded: list[dict[str, Any] | None] = [None] * len(ids)
        self._rows: dict[str, int] | None = None

    def row_of(self) -> dict[str, int]:
        if self._rows is None:
            self._rows = {item_id: row for row, item_id in enumerate(self.ids)}
        return self._rows

    def metadata(self, row: int) -> dict[str, Any]:
        """The row's metadata, a fresh dict (callers may change theirs)."""
        decoded = self._decoded[row]
        if decoded is None:
            decoded = self._decoded[row] = json.loads(self.metadata_json[row])
        return dict(decoded)


class EventRows:
    """The event log in the snapshot, in its read order, as columns."""

    def __init__(self, columns: Mapping[str, np.ndarray], watch: _Watch) -> None:
        self.users: list[str] = _json_value(columns["e:users"])
        self.items: list[str] = _json_value(columns["e:items"])
        self.kinds: list[str] = _json_value(columns["e:kinds"])
        self.ids: list[str | None] = _json_value(columns["e:ids"])
        self.user_codes, self.item_codes = columns["e:user"], columns["e:item"]
        self.kind_codes, self.values, self.timestamps = columns["e:kind"], columns["e:value"], columns["e:timestamp"]
        self.watch = watch
        self._user_code: dict[str, int] | None = None

    def __len__(self) -> int:
        return len(self.user_codes)

    def rows_of(self, user: str | None) -> np.ndarray:
        if user is None:
            return np.arange(len(self))
        if self._user_code is None:
            self._user_code = {name: code for code, name in enumerate(self.users)}
        code = self._user_code.get(user)
        return np.empty(0, np.int64) if code is None else np.flatnonzero(self.user_codes == code)


class ReadSnapshot:
    """A loaded snapshot file: the collections and the event log it covers."""

    def __init__(self, collections: dict[str, CollectionRows], events: EventRows | None) -> None:
        self.collections, self.events = collections, events

    @classmethod
    def load(cls, root: Path) -> ReadSnapshot | None:
        """The snapshot under store folder ``root``; None if there is none, or it is unreadable."""
        path = root / SNAPSHOT_FILE
        try:
            with np.load(path, allow_pickle=False) as npz:
                arrays = {key: npz[key] for key in npz.files}
            header = _json_value(arrays["header"])
            if header.get("format") != FORMAT:
                return None
            collections: dict[str, CollectionRows] = {}
            events = None
            for name, table in header["tables"].items():
                watch = _Watch(root / f"{name}.lance", Stamp(*table["stamp"]))
                if name == EVENTS_TABLE:
                    events = EventRows(arrays, watch)
                    continue
                ids, metadata = _json_value(arrays[f"c:{name}:ids"]), _json_value(arrays[f"c:{name}:metadata"])
                vectors = arrays[f"c:{name}:vectors"]
                collections[name] = CollectionRows(
                    name, int(table["dim"]), dict(table["provenance"]), ids, vectors, metadata, watch
                )
        except FileNotFoundError:
            return None
        except Exception as exc:  # a torn or foreign file: read through LanceDB instead
            log.info("read snapshot %s not used: %s: %s", path, type(exc).__name__, exc)
            return None
        return cls(collections, events)


def discard(root: Path) -> None:
    """Delete the snapshot of store folder ``root`` (erasure: no file may keep erased rows)."""
    (root / SNAPSHOT_FILE).unlink(missing_ok=True)


# -- writing (in a process that has LanceDB loaded already) ------------------------------------


class _Skip(Exception):
    """The store is not one to snapshot (too large, indexed, foreign tables): say why."""


def _table_dirs(root: Path) -> Iterator[tuple[str, Path]]:
    for path in sorted(root.glob("*.lance")):
        if path.is_dir():
            yield path.name.removesuffix(".lance"), path


def write_snapshot(root: Path, *, index_threshold: int, max_bytes: int) -> bool:
    """Write the snapshot of store folder ``root`` if every table qualifies (see the module
    docstring); otherwise remove any old one. True if written. Never raises: a snapshot is
    only a shortcut."""
    try:
        arrays = _read_tables(root, index_threshold, max_bytes)
    except _Skip as why:
        log.debug("no read snapshot for %s: %s", root, why)
        discard(root)
        return False
    except Exception as exc:
        log.info("no read snapshot for %s: %s: %s", root, type(exc).__name__, exc)
        discard(root)
        return False
    temporary = root / f".{SNAPSHOT_FILE}.{os.getpid()}.tmp"
    try:
        with open(temporary, "wb") as file:
            np.savez(file, **arrays)
        os.replace(temporary, root / SNAPSHOT_FILE)  # readers see the old file or the new one, whole
    except OSError as exc:
        log.info("read snapshot for %s not written: %s", root, exc)
        temporary.unlink(missing_ok=True)
        return False
    return True


def _read_tables(root: Path, index_threshold: int, max_bytes: int) -> dict[str, np.ndarray]:
    import lance

    opened = []
    for name, path in _table_dirs(root):  # every cheap check first: a store past them reads no rows
        stamp = latest_manifest(path)
        if stamp is None:
            raise _Skip(f"table {name!r} has no manifest")
        dataset = lance.dataset(str(path), version=stamp.version)
        dim = None if name == EVENTS_TABLE else _snapshot_dim(name, dataset, index_threshold)
        opened.append((name, path, stamp, dataset, dim))
    arrays: dict[str, np.ndarray] = {}
    tables: dict[str, Any] = {}
    size = 0
    for name, path, stamp, dataset, dim in opened:
        if dim is None:
            columns = _event_columns(dataset.to_table())
            tables[name] = {"stamp": list(stamp.__dict__.values())}
        else:
            columns, tables[name] = _collection_columns(name, dataset, dim)
            tables[name]["stamp"] = list(stamp.__dict__.values())
        arrays.update(columns)
        size += sum(array.nbytes for array in columns.values())
        if size > max_bytes:
            raise _Skip(f"more than {max_bytes} bytes")
        if latest_manifest(path) != stamp:
            raise _Skip(f"table {name!r} changed while it was read")
    arrays["header"] = _json_array({"format": FORMAT, "tables": tables})
    return arrays


def _snapshot_dim(name: str, dataset: Any, index_threshold: int) -> int:
    """The collection's dim, if the snapshot may hold it (the full path searches it exactly)."""
    metadata = dataset.schema.metadata or {}
    if b"polyrec.dim" not in metadata:
        raise _Skip(f"table {name!r} is not a polyrec collection")
    if dataset.count_rows() >= index_threshold:
        raise _Skip(f"collection {name!r} has index_threshold rows or more (searches use an ANN index)")
    if any("vector" in index.field_names for index in dataset.describe_indices()):
        raise _Skip(f"collection {name!r} has a vector index (searches are approximate)")
    return int(metadata[b"polyrec.dim"])


def _collection_columns(name: str, dataset: Any, dim: int) -> tuple[dict[str, np.ndarray], dict]:
    from polyrec.plugins.stores.lancedb.collection import _vectors_of

    metadata = dataset.schema.metadata or {}
    table = dataset.to_table(columns=["id", "vector", "metadata"])
    columns = {
        f"c:{name}:ids": _json_array(table.column("id").to_pylist()),
        f"c:{name}:vectors": np.ascontiguousarray(_vectors_of(table, dim)),
        f"c:{name}:metadata": _json_array(table.column("metadata").to_pylist()),
    }
    provenance = json.loads(metadata.get(b"polyrec.provenance", b"{}"))
    return columns, {"dim": dim, "provenance": provenance}


def _event_columns(table: Any) -> dict[str, np.ndarray]:
    """The log as :meth:`LanceEventLog.read` returns it: rows in ``(seq, id)`` order, client ids."""
    from polyrec.contracts.event_keys import client_id_of
    from polyrec.plugins.stores.lancedb.events import _append_order

    rows = table.take(_append_order(table)).to_pydict()
    columns: dict[str, np.ndarray] = {}
    for column, codes_key, names_key in (("user", "e:user", "e:users"), ("item", "e:item", "e:items"),
                                         ("kind", "e:kind", "e:kinds")):  # fmt: skip
        names: dict[str, int] = {}
        codes = [names.setdefault(value, len(names)) for value in rows[column]]
        columns[codes_key] = np.asarray(codes, dtype=np.int32)
        columns[names_key] = _json_array(list(names))
    columns["e:value"] = np.asarray(rows["value"], dtype=np.float64)
    columns["e:timestamp"] = np.asarray(rows["timestamp"], dtype=np.float64)
    columns["e:ids"] = _json_array([client_id_of(key) for key in rows.get("id", [None] * len(rows["user"]))])
    return columns
