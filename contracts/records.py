"""Pydantic records exchanged between users, the engine and plugins."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from polyrec.contracts.limits import id_problem

__all__ = [
    "is_missing",
    "Item",
    "Event",
    "AudioClip",
    "HistoryWeight",
    "Recommendation",
    "ItemFailure",
    "VectorRecord",
    "Hit",
    "SearchRows",
]

Metadata = dict[str, Any]


def is_missing(value: Any) -> bool:
    """Whether a field value means "this item has no such field".

    ``None``, NaN (how pandas and numpy spell an empty numeric cell) and pandas' ``NA`` /
    ``NaT``; pandas is not imported to tell. Empty strings and lists are values (an encoder
    decides what they mean).
    """
    if value is None:
        return True
    if isinstance(value, float | np.floating):
        return math.isnan(value)
    return type(value).__name__ in _PANDAS_MISSING and type(value).__module__.startswith("pandas")


_PANDAS_MISSING = frozenset({"NAType", "NaTType"})


def has_value(value: Any) -> bool:
    """Whether a value says something: not missing (:func:`is_missing`), not a blank string,
    not an empty list, tuple or array. What readers, checks and featurisers count as present."""
    if isinstance(value, str):
        return value.strip() != ""
    if isinstance(value, list | tuple | np.ndarray):
        return len(value) > 0
    return not is_missing(value)


class Item(BaseModel):
    """A catalog item: an id and named fields of any modality.

    Field values may be text, an image (path, bytes, PIL image, array), audio (path,
    bytes, :class:`AudioClip`), numbers or tags. Which encoder reads which field is up
    to the config; fields no encoder reads are kept as filterable metadata.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True, frozen=True)

    id: str
    fields: dict[str, Any] = Field(default_factory=dict)

    @field_validator("id", mode="before")
    @classmethod
    def _id_as_str(cls, value: Any) -> str:
        if is_missing(value) or str(value) == "":
            raise ValueError("item id must be a non-empty string")
        text = str(value)
        if (problem := id_problem(text)) is not None:  # every route and the CLI must address it
            raise ValueError(f"item id {problem}")
        return text

    @classmethod
    def from_mapping(cls, row: dict[str, Any], id_key: str = "id") -> Item:
        """Build an item from a flat row (JSONL object, CSV line): ``id_key`` + fields."""
        if id_key not in row:
            raise ValueError(f"row has no id column {id_key!r}; columns: {sorted(row)}")
        fields = {k: v for k, v in row.items() if k != id_key}
        return cls(id=row[id_key], fields=fields)


class Event(BaseModel):
    """One interaction of a user with an item; ``timestamp`` is seconds since the epoch."""

    model_config = ConfigDict(frozen=True)

    user: str
    item: str
    kind: str = "interaction"
    value: float = 1.0
    timestamp: float = 0.0
    #: the client's event id: a log keeps one event per id (see :mod:`polyrec.contracts.event_keys`)
    id: str | None = None

    @field_validator("user", "item", "id", mode="before")
    @classmethod
    def _as_id(cls, value: Any, info: ValidationInfo) -> str | None:
        if value is None and info.field_name == "id":
            return None
        if value is None or str(value) == "":
            raise ValueError("must be a non-empty string")
        text = str(value)
        if (problem := id_problem(text)) is not None:
            raise ValueError(problem)
        return text

    @field_validator("kind")
    @classmethod
    def _kind(cls, value: str) -> str:
        if (problem := id_problem(value, max_chars=64)) is not None:
            raise ValueError(problem)
        return value

    @field_validator("timestamp", mode="before")
    @classmethod
    def _timestamp(cls, value: Any) -> float:
        if isinstance(value, datetime):
            return value.timestamp()
        return float(value)

    @field_validator("timestamp", "value")
    @classmethod
    def _finite(cls, value: float) -> float:
        if not math.isfinite(value):  # NaN, inf: no order, no weight
            raise ValueError(f"must be a finite number, got {value}")
        return value


class AudioClip(BaseModel):
    """Decoded audio: samples shaped (n,) or (channels, n) and their sample rate."""

    model_config = ConfigDict(arbitrary_types_allowed=True, frozen=True)

    samples: np.ndarray
    sample_rate: int = Field(gt=0)


class HistoryWeight(BaseModel):
    """How much one history item weighed in a score."""

    item: str
    weight: float


class Recommendation(BaseModel):
    """One recommended item, its score, and why."""

    item: str
    score: float
    explanation: list[HistoryWeight] = Field(default_factory=list)
    flags: list[str] = Field(default_factory=list)
    metadata: Metadata = Field(default_factory=dict)


class ItemFailure(BaseModel):
    """A per-item failure reported by ingest; the rest of the batch was processed."""

    item_id: str
    field: str | None = None
    plugin: str | None = None
    reason: str

    def __str__(self) -> str:
        where = f"item {self.item_id!r}"
        if self.field:
            where += f", field {self.field!r}"
        if self.plugin:
            where += f", plugin {self.plugin!r}"
        return f"{where}: {self.reason}"


class VectorRecord(BaseModel):
    """What a store keeps per id: a float32 vector and flat metadata."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    id: str
    vector: np.ndarray
    metadata: Metadata = Field(default_factory=dict)


class Hit(BaseModel):
    """A search result: id, similarity score (higher is nearer) and metadata."""

    id: str
    score: float
    metadata: Metadata = Field(default_factory=dict)


@dataclass(frozen=True)
class SearchRows:
    """A search's results as columns, best first: ids, scores, vectors ``(n, dim)`` and metadata.

    What :meth:`Collection.search_rows` returns: the hits with their vectors, for callers that
    score the hits again (the engine's re-rank), without one record object per row.
    """

    ids: list[str]
    scores: np.ndarray
    vectors: np.ndarray
    metadata: list[Metadata]

    def __len__(self) -> int:
        return len(self.ids)
