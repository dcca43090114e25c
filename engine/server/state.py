"""What one app holds: the engine, its limits, the write lock, the media resolver and the user directory.

Writes (ingest, events, delete) take :attr:`ServerState.write_lock`: the store's event log
numbers events in-process and LanceDB commits one table version per write, so writes are
serialised here while reads run concurrently beside them.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, Request

from polyrec.engine.server.limits import ServerLimits
from polyrec.engine.server.media import MediaResolver

if TYPE_CHECKING:
    from polyrec.engine.engine import Engine

__all__ = ["ServerState", "State", "UserDirectory", "server_state"]


class UserDirectory:
    """Sorted ids of the users in the event log, read again only when the log's size changed."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._count = -1
        self._users: list[str] = []

    def users(self, engine: Engine) -> list[str]:
        log = engine.assembly.store.events()
        count = log.count()
        with self._lock:
            if count != self._count:
                self._users = sorted({event.user for event in log.read()})
                self._count = count
            return self._users


@dataclass
class ServerState:
    engine: Engine
    limits: ServerLimits
    owns_engine: bool
    write_lock: threading.Lock = field(default_factory=threading.Lock)
    users: UserDirectory = field(default_factory=UserDirectory)
    media: MediaResolver = field(init=False)

    def __post_init__(self) -> None:
        self.media = MediaResolver(self.limits.media_dirs)

    def close(self) -> None:
        if self.owns_engine:
            with self.write_lock:
                self.engine.close()


def server_state(request: Request) -> ServerState:
    """FastAPI dependency: the state of the app serving ``request``."""
    return request.app.state.polyrec


#: route parameter type: ``def route(state: State)``
State = Annotated[ServerState, Depends(server_state)]
