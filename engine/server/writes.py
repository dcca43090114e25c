"""Serialised writes, and group commit for events.

Every write (ingest, events, delete) holds :attr:`Writes.lock`: the store's event log
numbers events in-process and LanceDB commits one table version per write. Event posts are
small and frequent, and a commit costs about the same for 1 event as for 100, so concurrent
posts are committed together: each request queues its events, then waits for the lock; the
request that gets it appends everything queued so far in one commit and answers for all of
them (a "leader" drains the queue). A request returns only after its own events are in.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from concurrent.futures import Future
from typing import TYPE_CHECKING

from polyrec.contracts import Event

if TYPE_CHECKING:
    from polyrec.engine.engine import Engine

__all__ = ["Writes"]


class Writes:
    """The write lock of one engine, and its event queue."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.lock = threading.Lock()
        self._queue_lock = threading.Lock()
        self._queue: list[tuple[Sequence[Event], Future[int]]] = []

    @property
    def queued(self) -> int:
        """Requests whose events wait for a commit."""
        with self._queue_lock:
            return len(self._queue)

    def add_events(self, events: Sequence[Event]) -> int:
        """Append ``events`` (possibly in one commit with other requests'); return how many."""
        done: Future[int] = Future()
        with self._queue_lock:
            self._queue.append((events, done))
        with self.lock:
            if not done.done():  # no leader took our events yet: we lead, for everything queued
                self._commit_queued()
        return done.result()

    def _commit_queued(self) -> None:
        with self._queue_lock:
            batch, self._queue = self._queue, []
        try:
            self.engine.add_events([event for events, _ in batch for event in events])
        except Exception as exc:  # every request of the batch (this one too) gets the error: not acknowledged
            for _, done in batch:
                done.set_exception(exc)
            return
        for events, done in batch:
            done.set_result(len(events))
