"""``/users`` attributes: store who users are, read it back (the cold-start prior learns from it).

``POST /users`` stores a batch of users' attributes (any JSON values: categories, numbers,
text, lists); posting a user again replaces their attributes. They count for that user's
next recommendation once ``fit`` has learnt the prior (see ``polyrec.engine.cold_start``).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from polyrec.engine.server.context import Context
from polyrec.engine.server.errors import ApiError
from polyrec.engine.server.routes_items import check_batch
from polyrec.engine.server.schemas import Identifier
from polyrec.engine.users import UserError

__all__ = ["router"]

router = APIRouter(tags=["users and events"])


class UserIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: Identifier
    attributes: dict[str, Any] = Field(default_factory=dict, description="any columns: categories, numbers, text")


class UsersIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    users: list[UserIn]


class UsersStoredOut(BaseModel):
    stored: int


class UserAttributesOut(BaseModel):
    user: str
    attributes: dict[str, Any]


@router.post("/users", response_model=UsersStoredOut, summary="Store users' attributes (batch)")
def add_users(body: UsersIn, ctx: Context) -> UsersStoredOut:
    check_batch(len(body.users), "users", ctx.limits)
    columns = ctx.engine.settings.columns
    key = columns.user_id or columns.user
    rows = [{**user.attributes, key: user.id} for user in body.users]
    try:
        with ctx.writes.lock:
            stored = ctx.engine.add_users(rows)
    except UserError as exc:
        raise ApiError(422, str(exc), field="users") from None
    return UsersStoredOut(stored=stored)


@router.get("/users/{user_id:path}/attributes", response_model=UserAttributesOut, summary="A user's attributes")
def user_attributes(user_id: str, ctx: Context) -> UserAttributesOut:
    attributes = ctx.engine.users([user_id]).get(user_id)
    if attributes is None:
        raise ApiError(404, f"user {user_id!r} has no stored attributes (POST /users first)", field="user_id")
    return UserAttributesOut(user=user_id, attributes=attributes)
