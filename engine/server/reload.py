"""A serving process follows what other processes write to its store: a new fit, new events, new items.

Every ``read_consistency_s`` (the store's setting, 5 s by default for LanceDB) a thread of the
server (:class:`StoreFollower`) looks at two cheap stamps:

- the trained state: the manifest's fitted records (``engine.json``) and the size and time of
  the files of every fitted component and of the user prior (not the rest of the state folder:
  uploaded item files are kept there too). When another process's ``polyrec fit`` changed them,
  a fresh engine is built from the same config (it loads the new state), warmed up (collections,
  the in-memory index, the text query model, the user prior) and swapped in under the write
  lock, so no write runs on the old engine meanwhile. A request that started on the old engine
  finishes on it (it is closed a minute later); the next ones use the new one. A state read while
  ``fit`` was still writing it either fails to load or leaves a stamp that moves again: the old
  engine stays, or the next look loads the finished state.
- the row counts of the event log and of ``items``: when they moved (another process appended or
  erased events, added or deleted items), the layout hears of it
  (:meth:`~polyrec.engine.layout.StoreLayout.changed_elsewhere`), so what this process derived
  from them (popularity for cold users, the catalog centroid, the scorer's observed statistics)
  is computed again at the next request. An update of existing items by another process that
  leaves the count as it was is not seen by the centroid until the next fit or restart.

The store's own handles see other processes' commits within ``read_consistency_s`` too, so the
bound is two intervals, plus the time to load the new state.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

from polyrec.contracts import PolyrecError
from polyrec.engine.assembly import assemble
from polyrec.engine.cold_start import PRIOR_KEY
from polyrec.engine.engine import Engine
from polyrec.engine.layout import EVENTS, ITEMS
from polyrec.engine.manifest import MANIFEST_NAME

if TYPE_CHECKING:
    from polyrec.engine.server.context import ServerContext

__all__ = ["RETIRED_ENGINE_S", "StoreFollower", "fresh_engine", "follow_interval", "trained_state_stamp"]

log = logging.getLogger(__name__)

#: seconds a replaced engine stays open for the requests still running on it
RETIRED_ENGINE_S = 60.0
#: how often to look when the store does not say (a store without ``read_consistency_s``)
DEFAULT_INTERVAL_S = 5.0
#: the shortest interval: ``read_consistency_s = 0`` (every read checks) must not spin
MIN_INTERVAL_S = 0.25


def follow_interval(engine: Engine) -> float | None:
    """Seconds between looks: the store's ``read_consistency_s`` (None there: never look)."""
    config = engine.assembly.store.config
    if not hasattr(config, "read_consistency_s"):
        return DEFAULT_INTERVAL_S
    seconds = config.read_consistency_s
    return None if seconds is None else max(float(seconds), MIN_INTERVAL_S)


def trained_state_stamp(directory: Path | None) -> str | None:
    """What changes when a fit saves state: the manifest's fitted records and the size and
    modification time of every file of a fitted component and of the user prior (None: no
    state directory). Nothing else in the folder counts (uploaded item files live there too)."""
    if directory is None or not directory.is_dir():
        return None
    manifest = directory / MANIFEST_NAME
    try:
        fitted = json.loads(manifest.read_text(encoding="utf-8")).get("fitted", {}) if manifest.is_file() else {}
    except (OSError, ValueError):
        fitted = {"unreadable": True}  # being written: the next look reads it whole
    files = []
    for key in sorted({*fitted, PRIOR_KEY}):
        for path in sorted((directory / key).rglob("*")):
            try:
                stat = path.stat()
            except OSError:  # removed meanwhile (a fit replaces a component's directory)
                continue
            if path.is_file():
                files.append([path.relative_to(directory).as_posix(), stat.st_size, stat.st_mtime_ns])
    return json.dumps({"fitted": fitted, "files": files}, sort_keys=True)


def fresh_engine(engine: Engine) -> Engine:
    """A new engine of the same config, store and state directory (it loads the state saved now)."""
    assembly = engine.assembly
    return Engine(assemble(assembly.resolved, assembly.registry, assembly.manifest.directory))


class StoreFollower:
    """The thread that keeps one server's engine in step with the store (see the module doc)."""

    def __init__(self, ctx: ServerContext, interval: float) -> None:
        self.ctx = ctx
        self.interval = interval
        self.reloads = 0  # engines swapped in (the tests read it)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._stamp = ctx.state_stamp
        self._counts = self._store_counts(ctx.engine)
        self._retired: list[tuple[float, Engine]] = []

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="polyrec-store-follower", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop looking and close the engines still kept for old requests."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=max(30.0, self.interval * 2))
        for _, engine in self._retired:
            engine.close()
        self._retired.clear()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.look()
            except Exception:  # one failed look must not end the following; the next one tries again
                log.exception("polyrec server: could not look for other processes' writes")

    def look(self) -> None:
        """One look: a new trained state is swapped in, else moved counts reset derived caches."""
        if not self._follow_trained_state():
            self._follow_counts()
        self._close_retired()

    def _follow_trained_state(self) -> bool:
        directory = self.ctx.engine.assembly.manifest.directory
        stamp = trained_state_stamp(directory)
        if stamp == self._stamp:
            return False
        try:  # a state half written by a running fit fails in any way a component's load does
            engine = fresh_engine(self.ctx.engine)
        except Exception as exc:
            log.warning("polyrec server: the new trained state cannot be loaded yet: %s", exc)
            return False
        try:
            warm(engine)
        except Exception as exc:  # keep the old engine, look again
            engine.close()
            log.warning("polyrec server: the new trained state cannot be loaded yet: %s", exc)
            return False
        if trained_state_stamp(directory) != stamp:  # the fit went on writing while we loaded
            engine.close()
            return False
        self._retired.append((time.monotonic(), self.ctx.replace_engine(engine)))
        self._stamp, self._counts = stamp, self._store_counts(engine)
        self.reloads += 1
        log.info("polyrec server: loaded the trained state of a new fit")
        return True

    def _follow_counts(self) -> None:
        engine = self.ctx.engine
        counts = self._store_counts(engine)
        if counts is None or counts == self._counts:
            return
        layout = engine.assembly.layout
        for name, (before, now) in zip((EVENTS, ITEMS), zip(self._counts or (None, None), counts, strict=True)):
            if before != now:
                layout.changed_elsewhere(name)
        self._counts = counts

    @staticmethod
    def _store_counts(engine: Engine) -> tuple[int, int] | None:
        try:
            return engine.event_count(), engine.count()
        except PolyrecError:  # the store cannot be opened as configured: /health reports it
            return None

    def _close_retired(self) -> None:
        now = time.monotonic()
        keep = []
        for retired_at, engine in self._retired:
            if now - retired_at >= RETIRED_ENGINE_S:
                engine.close()
            else:
                keep.append((retired_at, engine))
        self._retired = keep


def warm(engine: Engine) -> None:
    """What a server does at startup, so the first requests on a swapped-in engine are fast."""
    from polyrec.engine.server.context import load_text_query_model

    engine.warm_up()
    load_text_query_model(engine)
    # what a cold user's first request reads: the prior, the users collection, popularity
    engine.retriever.cold_start.prior()
    engine.users(["polyrec-warm-up"])
    engine.retriever.popularity()
