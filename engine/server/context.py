"""What one app holds: the engine, its limits, its writes, the media resolver and the user directory.

Routes take it as ``ctx: Context``. Writes (ingest, events, delete) are serialised by
:class:`~.writes.Writes` while reads run concurrently beside them. The app talks to the
store only through the :class:`~polyrec.engine.engine.Engine`.
"""

from __future__ import annotations

import logging
import threading
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

__all__ = ["CatalogDirectory", "Context", "ServerContext", "load_text_query_model", "server_context"]

log = logging.getLogger(__name__)


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
