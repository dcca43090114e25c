"""Readers that turn catalogs and event logs into chunks of records, streaming.

Every reader yields bounded chunks, so a catalog larger than memory is read piece by
piece: JSONL line by line, CSV/TSV through pandas' chunked parser, Parquet (a file or a
directory of files) through ``pyarrow.dataset`` record batches, a DataFrame by slices,
and any iterable of :class:`Item`/dict lazily.

A catalog row that cannot become an item (no id, broken JSON) becomes an
:class:`ItemFailure` for that row; the rest goes on. An event row that cannot become an
event stops the read with an :class:`EventError` naming the row: a bad event row almost
always means a wrong column mapping, which would otherwise silently drop every event.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ValidationError

from polyrec.contracts import ColumnMapping, Event, Item, ItemFailure, PolyrecError, has_value, is_missing
from polyrec.engine.users import UserError, UserRecord, user_record

__all__ = [
    "ItemChunk",
    "EventError",
    "EventFailure",
    "EventsAppended",
    "read_items",
    "read_events",
    "read_table",
    "read_users",
    "source_dir",
]

#: File suffixes the readers understand.
TABULAR_SUFFIXES = {".jsonl", ".ndjson", ".json", ".csv", ".tsv", ".parquet", ".pq"}


class EventError(PolyrecError, ValueError):
    """An event row is invalid; ``row`` is its 1-based position in the source, ``where`` says
    it as a reader would look for it (``line 7`` of a JSONL or CSV file, else ``row 7``)."""

    def __init__(self, row: int, reason: str, appended: int = 0, where: str | None = None) -> None:
        self.row, self.reason, self.appended = row, reason, appended
        self.where = where or f"row {row}"
        super().__init__(f"event {self.where}: {reason}")


@dataclass(frozen=True)
class EventFailure:
    """One event row that was left out, and why (``where``: ``line 7`` or ``row 7``)."""

    where: str
    reason: str

    def __str__(self) -> str:
        return f"{self.where}: {self.reason}"


@dataclass
class EventsAppended:
    """What :meth:`Engine.append_events` did: valid rows read, how many of them were new to the
    log (None: the store's log cannot tell) and the rows left out."""

    read: int
    new: int | None
    failures: list[EventFailure] = field(default_factory=list)

    @property
    def already_stored(self) -> int | None:
        return None if self.new is None else self.read - self.new


@dataclass
class ItemChunk:
    """Up to ``chunk_size`` items, and the rows of that stretch that were not items."""

    items: list[Item] = field(default_factory=list)
    failures: list[ItemFailure] = field(default_factory=list)


def source_dir(source: Any) -> Path | None:
    """The directory relative media paths of a file catalog are resolved against."""
    if not isinstance(source, str | Path):
        return None
    path = Path(source).resolve()
    if path.is_dir():  # a directory of Parquet files
        return path
    return path.parent if path.suffix.lower() in TABULAR_SUFFIXES else None


def _plain(value: Any) -> Any:
    """numpy scalars and arrays of strings as plain Python, so items hash and store alike."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray) and value.dtype.kind in "OUS" and value.ndim == 1:
        return [_plain(element) for element in value.tolist()]
    return value


class _Invalid:
    """A row that failed to parse; turning it into an item raises with the parse error."""

    def __init__(self, reason: str) -> None:
        self.reason = reason


def _row_to_item(row: Mapping[str, Any], id_key: str) -> Item:
    return Item.from_mapping({key: _plain(value) for key, value in row.items()}, id_key)


def _rows_to_chunks(rows: Iterable[tuple[str, Any]], id_key: str, chunk_size: int) -> Iterator[ItemChunk]:
    """Group ``(row label, row)`` pairs into chunks; a row that is not an item is a failure."""
    chunk = ItemChunk()
    for label, row in rows:
        try:
            if isinstance(row, _Invalid):
                raise ValueError(row.reason)
            if isinstance(row, Item):
                chunk.items.append(row)
            elif isinstance(row, Mapping):
                chunk.items.append(_row_to_item(row, id_key))
            elif isinstance(row, BaseModel):
                chunk.items.append(_row_to_item(row.model_dump(), id_key))
            else:
                raise ValueError(f"expected an Item or a mapping, got {type(row).__name__}")
        except (ValueError, ValidationError) as exc:
            chunk.failures.append(ItemFailure(item_id=label, reason=_first_line(exc)))
        if len(chunk.items) + len(chunk.failures) >= chunk_size:
            yield chunk
            chunk = ItemChunk()
    if chunk.items or chunk.failures:
        yield chunk


def _first_line(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        return "; ".join(f"{'.'.join(map(str, e['loc'])) or 'row'}: {e['msg']}" for e in exc.errors())
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def _jsonl_rows(path: Path) -> Iterator[tuple[str, Any]]:
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                yield f"<line {number}>", json.loads(line)
            except json.JSONDecodeError as exc:
                yield f"<line {number}>", _Invalid(f"invalid JSON: {exc.msg} at column {exc.colno}")


def _json_rows(path: Path) -> Iterator[tuple[str, Any]]:
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, list):
        raise PolyrecError(f"{path}: a .json catalog must hold a list of objects (use .jsonl for large ones)")
    for number, row in enumerate(data, start=1):
        yield f"<row {number}>", row


def _csv_frames(path: Path, chunk_size: int, string_columns: Iterable[str]) -> Iterator[Any]:
    import pandas as pd

    separator = "\t" if path.suffix.lower() == ".tsv" else ","
    # ids and user names stay strings: "007" must not become 7
    dtype = dict.fromkeys(string_columns, str)
    # blank lines are read (as empty rows, skipped later) so that row numbers stay line numbers
    with pd.read_csv(path, sep=separator, chunksize=chunk_size, dtype=dtype, skip_blank_lines=False) as reader:
        yield from reader


def _parquet_batches(path: Path, chunk_size: int) -> Iterator[list[dict[str, Any]]]:
    import pyarrow.dataset as ds

    for batch in ds.dataset(path, format="parquet").to_batches(batch_size=chunk_size):
        yield batch.to_pylist()


def _frame_rows(frames: Iterable[Any], offset_label: str = "row", first: int = 1) -> Iterator[tuple[str, Any]]:
    """``(label, row)`` of every row of ``frames``; labels count from ``first`` (a CSV's first
    data row is line 2). Rows with no value at all (a blank CSV line) are skipped."""
    number = first - 1
    for frame in frames:
        records = frame.to_dict("records") if hasattr(frame, "to_dict") else frame
        for row in records:
            number += 1
            if isinstance(row, Mapping) and row and not any(has_value(value) for value in row.values()):
                continue
            yield f"<{offset_label} {number}>", row


def _dataframe_slices(frame: Any, chunk_size: int) -> Iterator[Any]:
    for start in range(0, len(frame), chunk_size):
        yield frame.iloc[start : start + chunk_size]


def _source_rows(source: Any, chunk_size: int, string_columns: Iterable[str]) -> Iterator[tuple[str, Any]]:
    """``(label, row)`` pairs of any supported source, streaming."""
    if isinstance(source, str | Path):
        path = Path(source)
        if not path.exists():
            raise PolyrecError(f"no such file or directory: {path}")
        suffix = path.suffix.lower()
        if suffix in {".jsonl", ".ndjson"}:
            return _jsonl_rows(path)
        if suffix == ".json":
            return _json_rows(path)
        if suffix in {".csv", ".tsv"}:
            return _frame_rows(_csv_frames(path, chunk_size, string_columns), "line", first=2)
        if suffix in {".parquet", ".pq"} or path.is_dir():
            return _frame_rows(_parquet_batches(path, chunk_size))
        known = ", ".join(sorted(TABULAR_SUFFIXES))
        raise PolyrecError(f"{path}: unsupported file type {suffix or '(none)'!r}; known: {known}")
    if hasattr(source, "iloc") and hasattr(source, "to_dict"):  # a pandas DataFrame
        return _frame_rows(_dataframe_slices(source, chunk_size))
    if isinstance(source, Mapping | Item | BaseModel):
        source = [source]
    return ((f"<row {number}>", row) for number, row in enumerate(source, start=1))


#: rows per read while a whole table is read (:func:`read_table`)
_TABLE_CHUNK = 100_000


def read_table(source: str | Path, string_columns: Iterable[str] = ()) -> Any:
    """A whole table file as one pandas DataFrame, read by the same format readers as the streams.

    For readers that need every row at once (the evaluation loaders). ``string_columns``
    (ids) stay strings where the format has no types (CSV/TSV: "007" is not 7). A row that
    is not valid JSON, or is not an object, raises ``ValueError`` naming the file and line.
    """
    import pandas as pd

    path = Path(source)
    string_columns = list(string_columns)
    if path.suffix.lower() in {".csv", ".tsv"}:
        if not path.exists():
            raise PolyrecError(f"no such file or directory: {path}")
        frames = list(_csv_frames(path, _TABLE_CHUNK, string_columns))
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    records = []
    for label, row in _source_rows(path, _TABLE_CHUNK, string_columns):
        if isinstance(row, _Invalid) or not isinstance(row, Mapping):
            reason = row.reason if isinstance(row, _Invalid) else f"expected an object, got {type(row).__name__}"
            raise ValueError(f"{path}: {label.strip('<>')}: {reason}")
        records.append(row)
    return pd.DataFrame.from_records(records)


def _dataset(source: Any) -> Any:
    """The RecBole/GroupLens dataset a path names (read by the evaluation loaders), else None."""
    if not isinstance(source, str | Path) or Path(source).suffix.lower() in TABULAR_SUFFIXES:
        return None
    from polyrec.engine.evaluate.loaders import load_known_dataset

    return load_known_dataset(source) if Path(source).exists() else None


def read_items(source: Any, *, chunk_size: int = 256, id_column: str = "id") -> Iterator[ItemChunk]:
    """Chunks of items from a path (.jsonl/.json/.csv/.tsv/.parquet, a Parquet directory, or a
    RecBole/GroupLens dataset), a DataFrame, or an iterable of :class:`Item`/dict."""
    if chunk_size <= 0:
        raise ValueError(f"chunk_size must be positive, got {chunk_size}")
    dataset = _dataset(source)
    if dataset is not None:
        source = dataset.items
    return _rows_to_chunks(_source_rows(source, chunk_size, [id_column]), id_column, chunk_size)


# -- events -------------------------------------------------------------------------------


def _timestamp(value: Any) -> float:
    """Seconds since the epoch; a date without a zone is UTC (as the evaluation loaders read
    it), never the local time of whoever runs the import."""
    if is_missing(value):  # an empty cell (NaN) in a timestamp column: no time, not the epoch
        raise ValueError("the timestamp is missing or not a number")
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            try:
                value = datetime.fromisoformat(value.strip())
            except ValueError:
                raise ValueError(
                    f"timestamp {value!r} is not a time: expected seconds since the epoch (1700000000.5) "
                    "or an ISO 8601 date (2024-03-01 or 2024-03-01T12:30:00+00:00)"
                ) from None
    if isinstance(value, datetime):
        return (value if value.tzinfo is not None else value.replace(tzinfo=UTC)).timestamp()
    return float(value)


def _row_to_event(row: Mapping[str, Any], columns: ColumnMapping) -> Event:
    def required(column: str) -> Any:
        if column not in row:
            raise ValueError(f"missing column {column!r} (columns: {', '.join(map(str, row))})")
        if not has_value(row[column]):  # an empty cell, null or blank string: the column is there
            raise ValueError(f"empty {column}")
        return _plain(row[column])

    fields: dict[str, Any] = {"user": required(columns.user), "item": required(columns.item)}
    if columns.timestamp in row:
        fields["timestamp"] = _timestamp(_plain(row[columns.timestamp]))
    if columns.value is not None:
        fields["value"] = required(columns.value)
    if columns.kind is not None:
        fields["kind"] = str(required(columns.kind))
    return Event(**fields)


def read_events(
    source: Any, columns: ColumnMapping, *, chunk_size: int = 10_000, failures: list[EventFailure] | None = None
) -> Iterator[list[Event]]:
    """Chunks of validated events from a path, a DataFrame or an iterable of Event/dict.

    Raises :class:`EventError` for the first invalid row (where it is and why); given a
    ``failures`` list, each invalid row is added to it instead and the rest are read.
    """
    string_columns = [columns.user, columns.item]
    dataset = _dataset(source)
    if dataset is not None:
        source = dataset.event_records()
    chunk: list[Event] = []
    for number, (label, row) in enumerate(_source_rows(source, chunk_size, string_columns), start=1):
        try:
            if isinstance(row, _Invalid):
                raise ValueError(row.reason)
            if isinstance(row, Event):
                event = row
            elif isinstance(row, Mapping):
                event = _row_to_event(row, columns)
            else:
                raise ValueError(f"expected an Event or a mapping, got {type(row).__name__}")
        except (ValueError, TypeError, ValidationError) as exc:
            where = label.strip("<>")
            if failures is None:
                raise EventError(number, _first_line(exc), where=where) from None
            failures.append(EventFailure(where, _first_line(exc)))
            continue
        chunk.append(event)
        if len(chunk) >= chunk_size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


# -- users --------------------------------------------------------------------------------


def _user_id_column(row: Mapping[str, Any], columns: ColumnMapping) -> str:
    if columns.user_id is not None or columns.user in row:
        return columns.user_id or columns.user
    return "id" if "id" in row else columns.user


def read_users(source: Any, columns: ColumnMapping, *, chunk_size: int = 10_000) -> Iterator[list[UserRecord]]:
    """Chunks of users (id + attributes) from a path (.jsonl/.csv/.parquet ..., or a RecBole/GroupLens
    dataset with a ``.user`` / ``u.user`` file), a DataFrame or an iterable of dicts.

    The id is in ``columns.user_id`` (default: the events' ``columns.user``, else ``id``); every
    other column is an attribute. Raises :class:`UserError` for the first row without an id.
    """
    dataset = _dataset(source)
    if dataset is not None:
        if dataset.users is None:
            raise UserError(f"{source}: the dataset has no users file (RecBole NAME.user or GroupLens u.user)")
        from polyrec.engine.evaluate.loaders import USER_ID

        source, columns = dataset.users, columns.model_copy(update={"user_id": USER_ID})
    id_hint = columns.user_id or columns.user
    chunk: list[UserRecord] = []
    for number, (_label, row) in enumerate(_source_rows(source, chunk_size, [id_hint, "id"]), start=1):
        if isinstance(row, _Invalid) or not isinstance(row, Mapping):
            reason = row.reason if isinstance(row, _Invalid) else f"expected a mapping, got {type(row).__name__}"
            raise UserError(f"users row {number}: {reason}")
        try:
            chunk.append(user_record(row, _user_id_column(row, columns)))
        except UserError as exc:
            raise UserError(f"users row {number}: {exc}") from None
        if len(chunk) >= chunk_size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
