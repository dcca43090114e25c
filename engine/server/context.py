"""What one app holds: the engine, its limits, its writes, the media resolver and the user directory.

Routes take it as ``ctx: Context``. Writes (ingest, events, delete) are serialised by
:class:`~.writes.Writes` while reads run concurrently beside them. The app talks to the
store only through the :class:`~polyrec.engine.engine.Engine`.
"""

from __future__ import annotations

import bisect
import logging
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, Request

from polyrec.contracts import PolyrecError
from polyrec.engine.server.limits import ServerLimits
from polyrec.engine.server.media import MediaResolver
from polyrec.engine.server.writes import Writes

if TYPE_CHECKING:
    from polyrec.engine.engine import Engine
    from polyrec.engine.server.reload import StoreFollower

__all__ = ["CatalogDirectory", "Context", "ServerContext", "UserDirectory", "load_text_query_model", "server_context"]

log = logging.getLogger(__name__)


class UserDirectory:
    """Sorted ids of the users in the event log. This server's own appends add their users
    (:meth:`added`: no read of the log); a log whose size changed otherwise (another process
    wrote) is read again, its user column only (0.5 s at 1M events; every event took 38 s).
    A user another process appends between one of ours and the count read after it shows up
    at the log's next change."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._count = -1
        self._users: list[str] = []

    def added(self, users: Iterable[str], engine: Engine) -> None:
        """The users of events this server just appended (the log's size read after them)."""
        count = engine.event_count()
        with self._lock:
            if self._count < 0:
                return  # never read: the next users() reads the log
            for user in set(users):
                at = bisect.bisect_left(self._users, user)
                if at == len(self._users) or self._users[at] != user:
                    self._users.insert(at, user)
            self._count = count

    def forget(self) -> None:
        """Read the users again next time (an erasure may leave the log's size as it was)."""
        with self._lock:
            self._count = -1

    def users(self, engine: Engine) -> list[str]:
        count = engine.event_count()
        with self._lock:
            if count != self._count:
                self._users = engine.event_users()
                self._count = count
            return self._users


class CatalogDirectory:
    """Sorted ids of the items with a fused vector (the catalog pages of the web page), read again
    when the item count changed or after an item write (:meth:`forget`)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._count = -1
        self._ids: list[str] = []

    def forget(self) -> None:
        with self._lock:
            self._count = -1

    def ids(self, engine: Engine) -> list[str]:
        count = engine.count()
        with self._lock:
            if count != self._count:
                self._ids = engine.item_ids()
                self._count = count
            return self._ids


@dataclass
class ServerContext:
    engine: Engine
    limits: ServerLimits
    owns_engine: bool
    users: UserDirectory = field(default_factory=UserDirectory)
    catalog: CatalogDirectory = field(default_factory=CatalogDirectory)
    media: MediaResolver = field(init=False)
    writes: Writes = field(init=False)
    follower: StoreFollower | None = field(default=None, init=False)
    state_stamp: str | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        from polyrec.engine.server.reload import trained_state_stamp

        self.media = MediaResolver(self.limits.media_dirs)
        self.writes = Writes(self.engine)
        # the trained state as the engine loaded it, just now: a fit ending during startup is not missed
        self.state_stamp = trained_state_stamp(self.engine.assembly.manifest.directory)

    def open_collections(self) -> None:
        """Warm the engine up once at startup, before concurrent requests race to create collections;
        then follow other processes' writes and fits (an engine this app built: see :mod:`.reload`)."""
        with self.writes.lock:
            try:
                self.engine.warm_up()
            except PolyrecError as exc:  # e.g. a provenance mismatch: /health and each request report it
                log.warning("polyrec server: the store's collections cannot be opened: %s", exc)
                return
        load_text_query_model(self.engine)
        self._follow_the_store()

    def _follow_the_store(self) -> None:
        from polyrec.engine.server.reload import StoreFollower, follow_interval

        interval = follow_interval(self.engine)
        if self.owns_engine and interval is not None:  # an Engine passed in is its owner's to reload
            self.follower = StoreFollower(self, interval)
            self.follower.start()

    def replace_engine(self, engine: Engine) -> Engine:
        """Serve from ``engine`` from now on (a new fit's state); return the one it replaces.
        Under the write lock, so every write runs wholly on one engine."""
        with self.writes.lock:
            previous, self.engine = self.engine, engine
            self.writes.engine = engine
        self.users.forget()
        self.catalog.forget()
        return previous

    def close(self) -> None:
        if self.follower is not None:
            self.follower.stop()
        if self.owns_engine:
            with self.writes.lock:
                self.engine.close()


def load_text_query_model(engine: Engine) -> None:
    """One text search at startup loads the model a text query needs (seconds), so the first
    search a person makes is not the one that waits for it."""
    takes_text = any(
        "text" in encoder["query_modalities"] and encoder["usable"]
        for encoder in engine.components()["encoders"].values()
    )
    if not takes_text or engine.count() == 0:
        return
    try:
        engine.search("warm up", k=1)
    except (PolyrecError, ValueError) as exc:  # the first real search reports it
        log.warning("polyrec server: the text query model could not be loaded at startup: %s", exc)


def server_context(request: Request) -> ServerContext:
    """FastAPI dependency: the context of the app serving ``request``."""
    return request.app.state.polyrec


#: route parameter type: ``def route(ctx: Context)``
Context = Annotated[ServerContext, Depends(server_context)]
