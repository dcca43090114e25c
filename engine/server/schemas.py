"""Request and response models of the HTTP API (they also make the OpenAPI docs at ``/docs``)."""

from __future__ import annotations

import math
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, field_validator

from polyrec.contracts import HistoryWeight, ItemFailure
from polyrec.contracts.limits import MAX_ID_CHARS, id_problem

__all__ = [
    "ItemIn",
    "ItemsIn",
    "IngestOut",
    "FieldVector",
    "ItemOut",
    "DeletedOut",
    "EventIn",
    "EventsIn",
    "EventsOut",
    "EventOut",
    "UserEventsOut",
    "UserErasedOut",
    "UserExportOut",
    "UsersOut",
    "ResultOut",
    "RecommendationsOut",
    "SimilarOut",
    "SearchIn",
    "SearchOut",
    "CatalogItemOut",
    "CatalogPageOut",
]


def _id_text(value: Any) -> Any:
    # ids that arrive as JSON numbers are ids all the same; booleans are not
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


def _addressable(value: str) -> str:
    # an id every route can address and the CLI can print: no control characters, valid text
    if (problem := id_problem(value)) is not None:
        raise ValueError(problem)
    return value


Identifier = Annotated[
    str, BeforeValidator(_id_text), Field(min_length=1, max_length=MAX_ID_CHARS), AfterValidator(_addressable)
]
Kind = Annotated[str, Field(min_length=1, max_length=64), AfterValidator(_addressable)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ItemIn(_Strict):
    id: Identifier
    fields: dict[str, Any] = Field(default_factory=dict, description="field values: text, image paths, tags, ...")


class ItemsIn(_Strict):
    items: list[ItemIn]


class IngestOut(BaseModel):
    stored: int = Field(description="items written (new or changed)")
    unchanged: int = Field(description="items already stored with the same content")
    pending: int = Field(description="items whose field vectors wait for a fit of the fusion")
    failures: list[ItemFailure] = Field(description="items that were not stored: item id, field, plugin, reason")


class FieldVector(BaseModel):
    field: str
    plugin: str
    modality: str
    has_vector: bool
    note: str | None = None


class ItemOut(BaseModel):
    id: str
    metadata: dict[str, Any]
    fused: bool = Field(description="the item has a fused vector (it can be recommended)")
    vectors: dict[str, FieldVector] = Field(description="per encoder slot: whether the item has a vector")
    media: dict[str, str] = Field(default_factory=dict, description="image fields and their URLs")


class DeletedOut(BaseModel):
    deleted: str
    records: int = Field(description="records removed across the fused and per-field collections")


class EventIn(_Strict):
    user: Identifier
    item: Identifier
    kind: Kind = "interaction"
    value: float = 1.0
    timestamp: float | None = Field(default=None, description="seconds since the epoch (default: time received)")
    id: Identifier | None = Field(
        default=None,
        description="your id for the event: posting it again (a retry) adds nothing; without one, "
        "an event identical to one of an earlier post (timestamp too) is that event",
    )

    @field_validator("value", "timestamp")
    @classmethod
    def _finite(cls, value: float | None) -> float | None:
        if value is not None and not math.isfinite(value):
            raise ValueError("must be a finite number")
        return value


class EventsIn(_Strict):
    events: list[EventIn]


class EventsOut(BaseModel):
    appended: int
    unknown_items: list[str] = Field(
        description="items not in the store: kept, counted for popularity, in histories once ingested"
    )


class EventOut(BaseModel):
    user: str
    item: str
    kind: str
    value: float
    timestamp: float
    id: str | None = Field(default=None, description="the id the event was posted with, if any")


class UserErasedOut(BaseModel):
    user: str
    events: int = Field(description="events erased (from the log and from the store's files)")
    attributes: int = Field(default=0, description="1 when the user's stored attributes were erased too")


class UserExportOut(BaseModel):
    user: str
    attributes: dict[str, Any] = Field(default_factory=dict, description="the user's stored attributes")
    events: list[EventOut] = Field(description="every event of the user, oldest first")
    history: list[str] = Field(description="the items of the history recommendations use, oldest first")


class UserEventsOut(BaseModel):
    user: str
    total: int = Field(description="events of the user in the log")
    events: list[EventOut] = Field(description="the latest `limit` events, oldest first")
    items: dict[str, dict[str, Any]] = Field(default_factory=dict, description="metadata of the items, if asked")
    media: dict[str, dict[str, str]] = Field(default_factory=dict, description="image URLs per item, if asked")


class UsersOut(BaseModel):
    users: list[str]
    total: int
    offset: int
    limit: int


class ResultOut(BaseModel):
    item: str
    score: float
    explanation: list[HistoryWeight] = Field(default_factory=list, description="history items and their weights")
    flags: list[str] = Field(default_factory=list)
    metadata: dict[str, Any] = Field(default_factory=dict)
    media: dict[str, str] = Field(default_factory=dict, description="image fields and their URLs")


class RecommendationsOut(BaseModel):
    user: str
    known_user: bool = Field(description="the user has events in the log")
    fallback: str | None = Field(description="'popularity' or 'content' when the user has no usable history, else null")
    results: list[ResultOut]


class SimilarOut(BaseModel):
    item: str
    results: list[ResultOut]


class SearchIn(_Strict):
    query: str = Field(min_length=1, max_length=10_000, description="query text")
    k: int = Field(default=10, ge=1)
    user: Identifier | None = Field(
        default=None, description="a user: their seen items are left out, their taste blended in by user_weight"
    )
    field: str | None = Field(default=None, description="encoder slot or item field to search")
    filter: dict[str, Any] | None = None
    user_weight: float = Field(
        default=0.3, ge=0.0, le=1.0, description="with a user: how much their taste counts (0: the query alone)"
    )
    exclude_seen: bool = Field(default=True, description="with a user: leave out the items they interacted with")


class CatalogItemOut(BaseModel):
    item: str
    metadata: dict[str, Any] = Field(default_factory=dict)
    media: dict[str, str] = Field(default_factory=dict, description="image and audio fields and their URLs")


class CatalogPageOut(BaseModel):
    items: list[CatalogItemOut] = Field(description="items with a fused vector, sorted by id")
    total: int
    offset: int
    limit: int


class SearchOut(BaseModel):
    query: str = Field(description="the query text, or the uploaded file's name")
    modality: str
    slot: str | None = Field(description="the encoder slot whose space was searched")
    results: list[ResultOut]
