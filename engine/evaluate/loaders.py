"""Read datasets into a :class:`Dataset`: RecBole atomic files, GroupLens files, generic tables.

Every loader keeps the file's line order in ``Dataset.events`` (protocols break
timestamp ties by it) and the item file's order in ``Dataset.items``.

RecBole atomic files (``<name>.inter``, ``<name>.item``, ``<name>.user``; a tab-separated
header of ``name:type``): ids come from ``user_id`` / ``item_id``, time from ``timestamp``
(absent: every event gets 0 and file order decides), the event value from ``rating``
(absent: 1.0). Item fields keep their declared type: ``token`` -> str, ``float`` -> float,
``float_seq`` -> list of floats. A ``token_seq`` field ``f`` (space-separated tokens) becomes
two fields: ``f``, the text as written (what a text encoder reads), and ``f_tokens``, the
list of tokens (what tag filters such as ``{"f_tokens": "Comedy"}`` match). Empty values
are left out, so the field is missing for that item.

MovieLens reads into the same item fields whichever files hold it, so one config serves
all of them: ``title`` (without the "(1995)" some files append), ``year`` (an int) and
``genres`` (a list), from RecBole's ``movie_title`` / ``release_year`` / ``class`` (or
``genre``), from GroupLens ``u.item`` and from ``movies.csv``. Users (``.user``,
``u.user``) come as a table of strings with the id in ``user_id``.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from polyrec.contracts import ColumnMapping, Item, is_missing
from polyrec.engine.evaluate.dataset import Dataset, events_frame
from polyrec.engine.readers import read_table

__all__ = [
    "GROUPLENS_GENRES",
    "MOVIELENS_FIELDS",
    "USER_ID",
    "split_title",
    "TABLE_SUFFIXES",
    "load_dataset",
    "load_known_dataset",
    "load_recbole",
    "load_grouplens",
    "load_generic",
    "read_atomic_file",
    "read_table",
]

#: Genre order of the 19 flags in GroupLens ``u.item`` (used when ``u.genre`` is absent).
GROUPLENS_GENRES: tuple[str, ...] = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary", "Drama",
    "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western",
)  # fmt: skip

#: Generic table formats, by file suffix.
TABLE_SUFFIXES: tuple[str, ...] = (".csv", ".tsv", ".jsonl", ".json", ".parquet")

RECBOLE_TYPES = ("token", "token_seq", "float", "float_seq")

#: RecBole's MovieLens item columns -> the fields every MovieLens reader gives
MOVIELENS_FIELDS = {"movie_title": "title", "release_year": "year", "class": "genres", "genre": "genres"}
#: the id column of :attr:`Dataset.users`, whatever the users file calls it
USER_ID = "user_id"
#: GroupLens ``u.user`` columns, named as RecBole names them
GROUPLENS_USER_COLUMNS = (USER_ID, "age", "gender", "occupation", "zip_code")
_TITLE_YEAR = re.compile(r"^(.*?)\s*\((\d{4})\)\s*$")


def split_title(text: str) -> tuple[str, int | None]:
    """``"Toy Story (1995)"`` -> ``("Toy Story", 1995)``; a title without a year is kept as it is."""
    match = _TITLE_YEAR.match(text)
    return (match.group(1), int(match.group(2))) if match else (text.strip(), None)


# --- RecBole atomic files -------------------------------------------------------------


def read_atomic_file(path: Path) -> tuple[pd.DataFrame, dict[str, str]]:
    """Read one atomic file as strings; return the table (columns renamed to bare names) and name -> type."""
    with path.open(encoding="utf-8") as handle:
        header = handle.readline().rstrip("\r\n").split("\t")
    types: dict[str, str] = {}
    for column in header:
        name, sep, kind = column.partition(":")
        if not sep or kind not in RECBOLE_TYPES:
            raise ValueError(f"{path}: header column {column!r} is not 'name:type' with type in {RECBOLE_TYPES}")
        types[name] = kind
    frame = pd.read_csv(
        path, sep="\t", dtype=str, keep_default_na=False, quoting=csv.QUOTE_NONE, encoding="utf-8", header=0
    )
    frame.columns = list(types)
    return frame, types


def _atomic_value(raw: str, kind: str) -> Any:
    if kind == "float":
        return float(raw)
    if kind == "float_seq":
        return [float(part) for part in raw.split()]
    return raw  # token and token_seq keep the text as written


def _movielens_value(name: str, raw: str) -> Any:
    if name == "genres":
        return raw.split()
    if name == "year":
        return int(raw) if raw.isdigit() else raw
    return raw


def _atomic_items(path: Path) -> list[Item]:
    frame, types = read_atomic_file(path)
    if "item_id" not in types:
        raise ValueError(f"{path}: no 'item_id' column; columns: {list(types)}")
    columns = [name for name in types if name != "item_id"]
    # MovieLens in RecBole's names: read into the fields the GroupLens files give
    renamed = MOVIELENS_FIELDS if {"movie_title", "release_year"} <= set(types) else {}
    items = []
    for row in frame.itertuples(index=False, name=None):
        record = dict(zip(frame.columns, row))
        fields: dict[str, Any] = {}
        for name in columns:
            raw = record[name].strip()
            if not raw:
                continue
            if name in renamed:
                fields[renamed[name]] = _movielens_value(renamed[name], raw)
                continue
            fields[name] = _atomic_value(raw, types[name])
            if types[name] == "token_seq":
                fields[f"{name}_tokens"] = raw.split()
        items.append(Item(id=record["item_id"], fields=_movielens_title(fields) if renamed else fields))
    return items


def _movielens_title(fields: dict[str, Any]) -> dict[str, Any]:
    """A ``release_year`` that is no year ("V" of "... (1995) (V)") was split off the title by
    mistake: put it back, so the title reads as the GroupLens files give it."""
    year = fields.get("year")
    if isinstance(year, str) and "title" in fields:
        fields = {**fields, "title": f"{fields['title']} ({year})"}
        del fields["year"]
    return fields


def _atomic_events(path: Path) -> pd.DataFrame:
    frame, types = read_atomic_file(path)
    missing = [name for name in ("user_id", "item_id") if name not in types]
    if missing:
        raise ValueError(f"{path}: missing columns {missing}; columns: {list(types)}")
    timestamps = frame["timestamp"].astype(float) if "timestamp" in types else np.zeros(len(frame))
    values = frame["rating"].astype(float) if "rating" in types else None
    return events_frame(frame["user_id"], frame["item_id"], timestamps, values)


def _recbole_stem(path: Path) -> Path | None:
    """``dir/name`` for a ``.inter`` file, a stem, or a directory holding one dataset."""
    if path.suffix == ".inter" and path.is_file():
        return path.with_suffix("")
    if path.with_name(path.name + ".inter").is_file():
        return path
    if path.is_dir():
        if (path / f"{path.name}.inter").is_file():
            return path / path.name
        inter = sorted(path.glob("*.inter"))
        if len(inter) == 1:
            return inter[0].with_suffix("")
    return None


def load_recbole(path: str | Path) -> Dataset:
    """Load RecBole atomic files from a directory, a file stem or the ``.inter`` file."""
    stem = _recbole_stem(Path(path))
    if stem is None:
        raise FileNotFoundError(f"no RecBole dataset at {path}: expected NAME.inter (and NAME.item, NAME.user)")
    events = _atomic_events(stem.with_name(stem.name + ".inter"))
    item_file = stem.with_name(stem.name + ".item")
    items = _atomic_items(item_file) if item_file.is_file() else []
    user_file = stem.with_name(stem.name + ".user")
    users = read_atomic_file(user_file)[0] if user_file.is_file() else None
    if users is not None and USER_ID not in users.columns:
        raise ValueError(f"{user_file}: no {USER_ID!r} column; columns: {list(users.columns)}")
    return _finish(Dataset(stem.name, items, events, users, stem.parent))


# --- GroupLens files --------------------------------------------------------------------


def _year(text: str) -> int | None:
    match = re.search(r"(\d{4})\)?\s*$", text)
    return int(match.group(1)) if match else None


def _grouplens_genres(directory: Path) -> list[str]:
    path = directory / "u.genre"
    if not path.is_file():
        return list(GROUPLENS_GENRES)
    pairs = [line.rsplit("|", 1) for line in path.read_text(encoding="latin-1").splitlines() if "|" in line]
    return [name for name, _ in sorted(pairs, key=lambda pair: int(pair[1]))]


def _grouplens_100k_items(directory: Path) -> list[Item]:
    path = directory / "u.item"
    if not path.is_file():
        return []
    genres = _grouplens_genres(directory)
    items = []
    with path.open(encoding="latin-1", newline="") as handle:
        for line_no, row in enumerate(csv.reader(handle, delimiter="|", quoting=csv.QUOTE_NONE), start=1):
            if not row:
                continue
            if len(row) != 5 + len(genres):
                raise ValueError(f"{path}:{line_no}: expected {5 + len(genres)} '|'-separated columns, got {len(row)}")
            item_id, titled, released, video_released, url = row[:5]
            title, year = split_title(titled)
            fields: dict[str, Any] = {"title": title, "genres": [g for g, flag in zip(genres, row[5:]) if flag == "1"]}
            extra = {"release_date": released, "video_release_date": video_released, "imdb_url": url}
            fields.update({key: value for key, value in extra.items() if value})
            year = year or (_year(released) if released else None)
            if year:
                fields["year"] = year
            items.append(Item(id=item_id, fields={k: v for k, v in fields.items() if v != ""}))
    return items


def _grouplens_latest_items(path: Path) -> list[Item]:
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    items = []
    for movie_id, titled, genres in frame[["movieId", "title", "genres"]].itertuples(index=False, name=None):
        names = [] if genres == "(no genres listed)" else [g for g in genres.split("|") if g]
        title, year = split_title(titled)
        fields: dict[str, Any] = {"title": title, "genres": names}
        if year:
            fields["year"] = year
        items.append(Item(id=movie_id, fields=fields))
    return items


def _grouplens_100k_users(path: Path) -> pd.DataFrame | None:
    """``u.user`` (``id|age|gender|occupation|zip``) as strings, as RecBole's ``.user`` reads."""
    if not path.is_file():
        return None
    frame = pd.read_csv(
        path, sep="|", header=None, dtype=str, keep_default_na=False, quoting=csv.QUOTE_NONE, encoding="latin-1"
    )
    if frame.shape[1] != len(GROUPLENS_USER_COLUMNS):
        raise ValueError(f"{path}: expected {len(GROUPLENS_USER_COLUMNS)} '|'-separated columns, got {frame.shape[1]}")
    frame.columns = list(GROUPLENS_USER_COLUMNS)
    return frame


def load_grouplens(path: str | Path) -> Dataset:
    """Load GroupLens MovieLens files: ``u.data`` + ``u.item`` (100k) or ``ratings.csv`` + ``movies.csv``.

    Items get ``title`` (the "(1995)" split off), ``genres`` (a list), ``year`` (int, from the
    title's "(1995)" or else the release date) and, for 100k, ``release_date`` and ``imdb_url``;
    100k's ``u.user`` becomes the users table.
    """
    directory = Path(path)
    if (directory / "u.data").is_file():
        raw = pd.read_csv(
            directory / "u.data", sep="\t", header=None, names=["user", "item", "rating", "ts"], dtype=str
        )
        events = events_frame(raw["user"], raw["item"], raw["ts"].astype(float), raw["rating"].astype(float))
        users = _grouplens_100k_users(directory / "u.user")
        return _finish(Dataset(directory.name, _grouplens_100k_items(directory), events, users, directory))
    if (directory / "ratings.csv").is_file():
        raw = pd.read_csv(directory / "ratings.csv", dtype={"userId": str, "movieId": str})
        events = events_frame(raw["userId"], raw["movieId"], raw["timestamp"], raw["rating"])
        movies = directory / "movies.csv"
        items = _grouplens_latest_items(movies) if movies.is_file() else []
        return _finish(Dataset(directory.name, items, events, source=directory))
    raise FileNotFoundError(f"no GroupLens dataset at {path}: expected u.data (+ u.item) or ratings.csv (+ movies.csv)")


# --- generic tables -------------------------------------------------------------------


def _require(frame: pd.DataFrame, path: Path, columns: dict[str, str]) -> None:
    missing = [f"{column!r} (columns.{role})" for role, column in columns.items() if column not in frame.columns]
    if missing:
        raise ValueError(
            f"{path}: missing column {', '.join(missing)}; the file has {list(frame.columns)}; "
            "map your names in the config's [columns] table"
        )


def _plain(value: Any) -> Any:
    return value.tolist() if isinstance(value, np.ndarray) else value


def _table_items(path: Path, columns: ColumnMapping) -> list[Item]:
    frame = read_table(path, (columns.item_id,))
    _require(frame, path, {"item_id": columns.item_id})
    items = []
    for record in frame.to_dict("records"):
        fields = {k: _plain(v) for k, v in record.items() if k != columns.item_id and not is_missing(v)}
        items.append(Item(id=record[columns.item_id], fields=fields))
    return items


def _seconds(series: pd.Series, path: Path, column: str) -> np.ndarray:
    """Timestamps as seconds since the epoch: numbers as they are, date strings parsed (UTC)."""
    numeric = pd.to_numeric(series, errors="coerce")
    if numeric.notna().all():
        return numeric.to_numpy(dtype=np.float64)
    try:
        parsed = pd.to_datetime(series, utc=True, format="mixed")
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{path}: column {column!r} (columns.timestamp) is neither numbers nor dates: {exc}") from None
    if parsed.isna().any():
        row = int(np.flatnonzero(parsed.isna().to_numpy())[0])
        raise ValueError(f"{path}: column {column!r} (columns.timestamp) is empty on data row {row + 1}")
    return (parsed - pd.Timestamp(0, tz="UTC")).dt.total_seconds().to_numpy()


def _table_events(path: Path, columns: ColumnMapping) -> pd.DataFrame:
    frame = read_table(path, (columns.user, columns.item))
    roles = {"user": columns.user, "item": columns.item, "timestamp": columns.timestamp}
    roles |= {role: name for role, name in (("value", columns.value), ("kind", columns.kind)) if name}
    _require(frame, path, roles)
    for role in ("user", "item"):
        empty = frame[roles[role]].isna().to_numpy()
        if empty.any():
            row = int(np.flatnonzero(empty)[0])
            raise ValueError(f"{path}: column {roles[role]!r} (columns.{role}) is empty on data row {row + 1}")
    values = frame[columns.value].astype(float) if columns.value else None
    kinds = frame[columns.kind] if columns.kind else None
    timestamps = _seconds(frame[columns.timestamp], path, columns.timestamp)
    return events_frame(frame[columns.user], frame[columns.item], timestamps, values, kinds)


def load_generic(items: str | Path, events: str | Path, columns: ColumnMapping | None = None) -> Dataset:
    """Load an items table and an events table (CSV/TSV/JSONL/Parquet) named by ``columns``."""
    columns = columns or ColumnMapping()
    items_path, events_path = Path(items), Path(events)
    name = events_path.parent.name or events_path.stem
    dataset = Dataset(name, _table_items(items_path, columns), _table_events(events_path, columns))
    dataset.source = events_path.parent
    return _finish(dataset)


def _named_table(directory: Path, stem: str) -> Path | None:
    found = [directory / f"{stem}{suffix}" for suffix in TABLE_SUFFIXES if (directory / f"{stem}{suffix}").is_file()]
    if len(found) > 1:
        raise ValueError(f"{directory}: several {stem}.* files ({', '.join(p.name for p in found)}); keep one")
    return found[0] if found else None


# --- detection --------------------------------------------------------------------------


def _detect(path: Path, columns: ColumnMapping | None) -> Callable[[], Dataset] | None:
    if _recbole_stem(path) is not None:
        return lambda: load_recbole(path)
    if path.is_dir() and ((path / "u.data").is_file() or (path / "ratings.csv").is_file()):
        return lambda: load_grouplens(path)
    if path.is_dir():
        items, events = _named_table(path, "items"), _named_table(path, "events")
        if items and events:
            return lambda: load_generic(items, events, columns)
    return None


def load_known_dataset(path: str | Path) -> Dataset | None:
    """The RecBole or GroupLens dataset at ``path`` (a directory, stem or ``.inter`` file), else None.

    What the engine's readers accept besides plain tables: ``polyrec ingest DIR``,
    ``polyrec events DIR`` and ``polyrec users DIR`` read a dataset's items, events and users.
    """
    path = Path(path)
    if _recbole_stem(path) is not None:
        return load_recbole(path)
    if path.is_dir() and ((path / "u.data").is_file() or (path / "ratings.csv").is_file()):
        return load_grouplens(path)
    return None


def load_dataset(path: str | Path, columns: ColumnMapping | None = None) -> Dataset:
    """Load the dataset at ``path``, detecting its format.

    ``path`` is a RecBole dataset (directory, file stem or ``.inter`` file), a GroupLens
    directory (``u.data`` or ``ratings.csv``), or a directory with ``items.*`` and
    ``events.*`` tables (CSV/TSV/JSONL/Parquet) whose column names ``columns`` gives.
    """
    path = Path(path)
    loader = _detect(path, columns)
    if loader is None:
        raise FileNotFoundError(
            f"no dataset found at {path}: expected RecBole atomic files (NAME.inter, NAME.item), GroupLens files "
            "(u.data + u.item, or ratings.csv + movies.csv) or items.* + events.* tables"
        )
    return loader()


def _finish(dataset: Dataset) -> Dataset:
    """Check what the protocols rely on; note events whose item has no row in the item file."""
    known = set(dataset.item_ids)
    if len(known) != len(dataset.items):
        seen: set[str] = set()
        duplicate = next(item.id for item in dataset.items if item.id in seen or seen.add(item.id))
        raise ValueError(f"dataset {dataset.name!r}: item id {duplicate!r} appears more than once in the item file")
    if dataset.items:
        unknown = ~dataset.events["item"].isin(known)
        if unknown.any():
            dataset.notes.append(
                f"{int(unknown.sum())} events name {dataset.events.loc[unknown, 'item'].nunique()} items "
                "missing from the item file; those items cannot be ranked (a held-out one counts as a miss)"
            )
    return dataset
