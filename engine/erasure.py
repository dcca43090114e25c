"""A user's right to be forgotten (:func:`forget_user`) and to see what is kept about them
(:func:`export_user`).

What erasure removes: the user's events and stored attributes (``users`` collection), from
the log and the collection and from the store's files (``EventLog.erase_user`` and
``Collection.erase`` also rewrite the files that held them and drop older versions: a
LanceDB directory holds no byte of them afterwards), and with them everything computed from
them: the user's history, their weight in the popularity counts (the retriever and a
popularity prior count the log as it is now) and their attribute prior.

What it does not remove: trained state. A fitted scorer or fusion (``polyrec fit``) learnt
from the log including the user's events and keeps what it learnt (weights, not the events
or the user's id) until it is refitted on the remaining log at the next ``fit``; run
``polyrec fit`` after erasures when that matters.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from polyrec.engine.assembly import Assembly
    from polyrec.engine.retrieval import Retriever
    from polyrec.engine.users import UserDirectory

__all__ = ["UserErasure", "forget_user", "export_user"]


@dataclass(frozen=True)
class UserErasure:
    """What :func:`forget_user` removed."""

    user: str
    events: int
    attributes: int = 0  # 1 when the user had stored attributes


def forget_user(assembly: Assembly, users: UserDirectory, user: str) -> UserErasure:
    erased = assembly.layout.events().erase_user(str(user))
    return UserErasure(user=str(user), events=erased, attributes=users.erase([str(user)]))


def export_user(assembly: Assembly, retriever: Retriever, user: str) -> dict[str, Any]:
    """Everything stored about ``user``: their attributes, their events (oldest first) and the
    history the scorer derives from them (the items that are in the store, oldest first)."""
    events = assembly.layout.events().read(str(user))
    history = retriever.history(str(user))[0]
    return {
        "user": str(user),
        "attributes": retriever.cold_start.users.get([str(user)]).get(str(user), {}),
        "events": [event.model_dump() for event in events],
        "history": list(history.item_ids),
    }
