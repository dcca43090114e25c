"""Which metadata keys get typed filter columns (:func:`~.filters.metadata_column`), a bounded set.

Every row keeps all its metadata in the ``metadata`` JSON; a key needs typed columns only to be
filtered on in SQL. Each typed column costs every later write (a one-item upsert took 2.5 s at
2,324 columns instead of 0.12 s), so the keys with columns are bounded across the whole table:

- ``filter_keys`` (store setting) names them: only those keys get columns;
- unset (the default): the first ``max_filter_keys`` distinct keys the table sees get them,
  in the order they arrive; later keys are kept in the JSON only.

A key has at most one column per value type (:data:`~.filters.METADATA_KINDS`), so a table has
at most ``5 * max_filter_keys`` (or ``5 * len(filter_keys)``) typed columns. A filter on a key
that has no column where one could have been made would match nothing silently; it is an
error naming the key and the setting instead (:meth:`FilterColumns.check_filterable`).
(Paths that filter in Python over the JSON, a cold user's popular items and the read snapshot
of small stores, still answer such a filter, exactly.) Writers decide from the schema they
read: several processes (or Ray workers) writing new keys at once may each take the room that
is left, so the automatic bound holds per writer, not strictly across concurrent ones.
Pure logic: no LanceDB or pyarrow import.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from polyrec.contracts import ConfigError
from polyrec.plugins.stores.lancedb.filters import METADATA_KINDS, metadata_column

__all__ = ["FilterColumns", "key_of_column", "DEFAULT_MAX_FILTER_KEYS"]

DEFAULT_MAX_FILTER_KEYS = 32


def key_of_column(column: str) -> str | None:
    """The metadata key of a typed filter column name; None for the other columns."""
    base, sep, kind = column.rpartition("__")
    if not sep or kind not in METADATA_KINDS:
        return None
    if base.startswith("m_"):
        key = base[2:]
    elif base.startswith("mx_"):
        try:
            key = bytes.fromhex(base[3:]).decode("utf-8")
        except ValueError:
            return None
    else:
        return None
    return key if metadata_column(key, kind) == column else None


def filtered_keys(columns: Iterable[str]) -> set[str]:
    """The metadata keys that have at least one typed column among ``columns``."""
    return {key for column in columns if (key := key_of_column(column)) is not None}


@dataclass(frozen=True)
class FilterColumns:
    """The store's rule for which keys get typed columns (see the module docstring)."""

    keys: tuple[str, ...] | None = None  # ``filter_keys``; None: automatic
    max_keys: int = DEFAULT_MAX_FILTER_KEYS

    def kept(self, typed: Mapping[str, list[Any]], columns: Collection[str]) -> dict[str, list[Any]]:
        """The typed columns of a batch (column -> values) that the table has or may add, given
        its current ``columns``; the other keys stay in the JSON only."""
        if self.keys is not None:
            named = set(self.keys)
            return {column: values for column, values in typed.items() if key_of_column(column) in named}
        have = filtered_keys(columns)
        room = self.max_keys - len(have)
        kept: dict[str, list[Any]] = {}
        for column, values in typed.items():  # in the order the batch's keys arrive
            key = key_of_column(column)
            if key not in have and room > 0:
                have.add(key)  # type: ignore[arg-type]  (typed columns always have a key)
                room -= 1
            if key in have:
                kept[column] = values
        return kept

    def check_filterable(self, keys: Iterable[str], columns: Collection[str]) -> None:
        """Raise ConfigError (``filter.<key>``) for keys that can have no typed column while
        items may hold them: a filter on them would silently match nothing."""
        have = filtered_keys(columns)
        if self.keys is not None:
            problems = [
                (
                    f"filter.{key}",
                    f"the metadata key {key!r} is not filterable in this store: store.filter_keys names "
                    f"the filterable keys ({', '.join(map(repr, self.keys)) or 'none'}); add it there",
                )
                for key in keys
                if key not in self.keys
            ]
        elif len(have) >= self.max_keys:
            problems = [
                (
                    f"filter.{key}",
                    f"the metadata key {key!r} is not filterable in this store: it made filter columns for "
                    f"the first {self.max_keys} metadata keys it saw (store.max_filter_keys); name the keys "
                    "to filter on in store.filter_keys",
                )
                for key in keys
                if key not in have
            ]
        else:
            problems = []
        if problems:
            raise ConfigError(problems)

    def added_keys(self, new_columns: Iterable[str], columns: Collection[str]) -> list[str]:
        """Keys of ``new_columns`` that have no column among ``columns`` yet."""
        have = filtered_keys(columns)
        return sorted({key for column in new_columns if (key := key_of_column(column)) and key not in have})


def json_key_marker(key: str) -> str:
    """How ``key`` appears in a row's metadata JSON (``json.dumps`` with its default separators)."""
    return json.dumps(key, ensure_ascii=False) + ": "
