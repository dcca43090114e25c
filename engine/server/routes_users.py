"""``/events`` and ``/users``: record events, list users, read a user's events, recommend.

Recommendations read the user's history from the event log at request time, so an event
that got a 2xx counts in the user's very next recommendation, without a refit.
"""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Query, Response

from polyrec.contracts import Event
from polyrec.engine.server.catalog import items_metadata
from polyrec.engine.server.context import Context, ServerContext
from polyrec.engine.server.query_params import check_k, parse_filter
from polyrec.engine.server.results import fallback_of, json_response, to_results
from polyrec.engine.server.routes_items import check_batch
from polyrec.engine.server.schemas import (
    EventOut,
    EventsIn,
    EventsOut,
    RecommendationsOut,
    UserErasedOut,
    UserEventsOut,
    UserExportOut,
    UsersOut,
)

__all__ = ["RECOMMEND_PATH", "recommendations", "router"]

router = APIRouter(tags=["users and events"])


def _event_out(event: Event) -> EventOut:
    return EventOut(**event.model_dump())


@router.post("/events", response_model=EventsOut, summary="Record events (batch)")
def add_events(body: EventsIn, ctx: Context) -> EventsOut:
    """Append events to the store's event log; they count in the next recommendation at once.
    Events of items not (yet) in the store are kept and listed in ``unknown_items``."""
    check_batch(len(body.events), "events", ctx.limits)
    now = time.time()
    events = [
        Event(
            user=e.user,
            item=e.item,
            kind=e.kind,
            value=e.value,
            timestamp=now if e.timestamp is None else e.timestamp,
            id=e.id,
        )
        for e in body.events
    ]
    appended = ctx.writes.add_events(events)  # committed with concurrent posts: see writes.py
    items = sorted({event.item for event in events})
    known = items_metadata(ctx.engine, items)
    return EventsOut(appended=appended, unknown_items=[item for item in items if item not in known])


@router.get("/users", response_model=UsersOut, summary="Users in the event log (sorted, paginated)")
def list_users(
    ctx: Context,
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1)] = 100,
) -> UsersOut:
    limit = min(limit, ctx.limits.max_page)
    users = ctx.engine.event_users()  # kept by the store per fragment: no scan of the log
    return UsersOut(users=users[offset : offset + limit], total=len(users), offset=offset, limit=limit)


@router.get("/users/{user_id:path}/events", response_model=UserEventsOut, summary="A user's events, oldest first")
def user_events(
    user_id: str,
    ctx: Context,
    limit: Annotated[int | None, Query(ge=1, description="only the latest `limit` events")] = None,
    include_items: Annotated[bool, Query(description="add the events' item metadata and image URLs")] = False,
) -> UserEventsOut:
    events = ctx.engine.events(user_id)
    shown = events[-limit:] if limit is not None else events
    out = UserEventsOut(
        user=user_id,
        total=len(events),
        events=[_event_out(event) for event in shown],
    )
    if include_items:
        out.items = items_metadata(ctx.engine, sorted({e.item for e in shown}))
        out.media = {item: links for item, meta in out.items.items() if (links := ctx.media.links(item, meta))}
    return out


#: the hot route, which :mod:`.fast_recommend` also answers (same answers, without the framework's cost)
RECOMMEND_PATH = "/users/{user_id:path}/recommendations"


@router.get(RECOMMEND_PATH, response_model=RecommendationsOut, summary="Top-k items for a user")
def recommend(
    user_id: str,
    ctx: Context,
    k: Annotated[int, Query(ge=1, description="how many results")] = 10,
    filter: Annotated[str | None, Query(description='metadata filter as JSON, e.g. {"genre": "Comedy"}')] = None,
    explain: Annotated[bool, Query(description="list the history items (and weights) behind each result")] = False,
    diversity: Annotated[float, Query(ge=0.0, le=1.0, description="0 (off) to 1: trade relevance for variety")] = 0.0,
    exclude_seen: Annotated[bool, Query(description="leave out items the user interacted with")] = True,
) -> Response:
    """Unknown users (or users whose items are not in the store) get popular items, or the
    catalog's most typical ones when there are no events: ``fallback`` says which."""
    return recommendations(ctx, user_id, k, filter, explain, diversity, exclude_seen)


def recommendations(
    ctx: ServerContext, user_id: str, k: int, filter: str | None, explain: bool, diversity: float, exclude_seen: bool
) -> Response:
    """The answer of ``GET /users/{user_id}/recommendations`` with its query parameters validated."""
    check_k(k, ctx.limits)
    parsed = parse_filter(filter)
    results = ctx.engine.recommend(user_id, k=k, filter=parsed, exclude_seen=exclude_seen, diversity=diversity)
    if not results and parsed:
        ctx.engine.check_filter_fields(parsed)  # a misspelled key: 400 naming the known fields
    fallback = fallback_of(results)
    # results without a fallback flag came from a history; otherwise ask the log
    known = (fallback is None and bool(results)) or bool(ctx.engine.events(user_id))
    out = RecommendationsOut(
        user=user_id, known_user=known, fallback=fallback, results=to_results(results, ctx.media, explain)
    )
    return json_response(out)  # the hot route: serialised once (see json_response)


@router.get("/users/{user_id:path}/export", response_model=UserExportOut, summary="Everything stored about a user")
def export_user(user_id: str, ctx: Context) -> UserExportOut:
    """The user's events (all of them, oldest first) and the history recommendations derive from them."""
    exported = ctx.engine.export_user(user_id)
    events = [EventOut(**event) for event in exported["events"]]
    return UserExportOut(user=user_id, attributes=exported["attributes"], events=events, history=exported["history"])


@router.delete("/users/{user_id:path}", response_model=UserErasedOut, summary="Erase a user (right to erasure)")
def forget_user(user_id: str, ctx: Context) -> UserErasedOut:
    """Erase the user's events from the log and from the store's files (older versions are
    removed), and so their history and weight in popularity. Erasing an unknown user erases 0
    events. Trained state keeps what it learnt until the next ``polyrec fit``."""
    with ctx.writes.lock:
        erased = ctx.engine.forget_user(user_id)
    return UserErasedOut(user=user_id, events=erased.events, attributes=erased.attributes)
