"""User attributes in the store: one record per user, kept where the catalog is kept.

Attributes (any columns: categories, numbers, free text, lists) are stored as the
metadata of a ``users`` collection of the configured store, so they live wherever the
store lives (a local directory, object storage, a database) and every replica sees the
same users. The collection's vectors carry nothing (one constant number): users are
looked up by id, never searched by vector. Writing a user again replaces their
attributes, as writing an item again replaces its fields.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from polyrec.contracts import Collection, PolyrecError, VectorRecord, VectorStore, is_missing

__all__ = ["USERS", "UserRecord", "UserError", "UserDirectory", "user_record"]

USERS = "users"
_PROVENANCE = {"kind": "user-attributes", "version": "1"}
_PLACEHOLDER = np.ones(1, dtype=np.float32)


class UserError(PolyrecError, ValueError):
    """A users row cannot become a user (no id, an attribute that is not plain data)."""


@dataclass(frozen=True)
class UserRecord:
    """A user id and their attributes (missing values left out)."""

    id: str
    attributes: dict[str, Any] = field(default_factory=dict)


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return [_plain(element) for element in value.tolist()]
    if isinstance(value, list | tuple):
        return [_plain(element) for element in value]
    return value


def user_record(row: Mapping[str, Any], id_column: str) -> UserRecord:
    """A :class:`UserRecord` from one row of a users table; ``id_column`` holds the id."""
    if id_column not in row or is_missing(row[id_column]) or str(row[id_column]).strip() == "":
        raise UserError(f"users row has no {id_column!r} (the user id; columns: {', '.join(map(str, row))})")
    attributes = {}
    for key, value in row.items():
        if key == id_column or (not isinstance(value, list | tuple | np.ndarray) and is_missing(value)):
            continue
        value = _plain(value)
        if isinstance(value, float) and math.isinf(value):
            continue
        try:
            json.dumps(value)
        except TypeError:
            raise UserError(f"user {row[id_column]!r}: attribute {key!r} is a {type(value).__name__}") from None
        attributes[str(key)] = value
    return UserRecord(str(_plain(row[id_column])), attributes)


class UserDirectory:
    """Stores and reads user attributes through the store's ``users`` collection."""

    def __init__(self, store: VectorStore) -> None:
        self.store = store
        self._collection: Collection | None = None

    def _users(self) -> Collection:
        if self._collection is None:
            self._collection = self.store.open(USERS, dim=1, provenance=_PROVENANCE)
        return self._collection

    def upsert(self, users: Sequence[UserRecord]) -> int:
        records = [VectorRecord(id=user.id, vector=_PLACEHOLDER, metadata=user.attributes) for user in users]
        if records:
            self._users().upsert(records)
        return len(records)

    def get(self, ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        """Attributes of the stored ``ids`` (unknown ids are left out)."""
        wanted = list(dict.fromkeys(str(user) for user in ids))
        if not wanted:
            return {}
        return {record.id: dict(record.metadata) for record in self._users().get(wanted)}

    def scan(self) -> Iterator[UserRecord]:
        for batch in self._users().scan():
            yield from (UserRecord(record.id, dict(record.metadata)) for record in batch)

    def count(self) -> int:
        return self._users().count()

    def erase(self, ids: Sequence[str]) -> int:
        """Remove the users' attributes so that no store file keeps them (right to erasure)."""
        return self._users().erase(list(ids))
