"""The histories of the users asked for most recently, kept in memory for the next request.

A history is derived from two things: the user's events, and the stored records (fused
vectors) of the items in them. An entry keeps the events it was read from and the item
collection's write version (:meth:`.StoreLayout.version`), and is used only while both are
unchanged:

- the events are compared with what the event log returns now (a read the log answers from
  its own memory), so a new event or an erasure of this user, appended here or by another
  process as the log sees it, reads the history again, and other users' events do not;
- any write to the items (an update, a delete, a re-fusion), or another process's as a
  server's store follower reports it (:meth:`.StoreLayout.changed_elsewhere`), reads every
  history again at its next use. Without a follower (an engine opened from Python), another
  process's item writes are seen once this user's events or this process's items change, as
  the other derived caches (popularity, the catalog centroid) see them.

Callers get copies: a scorer that changes its history's arrays changes no entry.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from polyrec.contracts import Event, History

__all__ = ["EVENT_BYTES", "HISTORY_CACHE_BYTES", "HistoryCache"]

#: bytes kept in all (64 MiB: ~1,500 users of 50 events and items at 384 dims)
HISTORY_CACHE_BYTES = 64 * 2**20
#: what one kept event costs, counted against the bytes (an Event object and its fields' values)
EVENT_BYTES = 600


@dataclass(frozen=True)
class _Entry:
    events: list[Event]
    items_version: int
    history: History
    seen: frozenset[str]

    @property
    def nbytes(self) -> int:
        return int(np.asarray(self.history.vectors).nbytes) + EVENT_BYTES * (len(self.events) + 1)


class HistoryCache:
    """Histories of recent users, least recently used dropped first (see the module docstring)."""

    def __init__(self, max_bytes: int = HISTORY_CACHE_BYTES) -> None:
        self.max_bytes = max_bytes
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()  # requests are answered on several threads

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, user: str, events: Sequence[Event], items_version: int) -> tuple[History, set[str]] | None:
        """A copy of ``user``'s kept history if it was read from these events at this items version."""
        with self._lock:
            entry = self._entries.get(user)
            if entry is None:
                return None
            # list equality compares the events the log hands out again by identity first
            if entry.items_version != items_version or entry.events != list(events):
                self._drop_locked(user)
                return None
            self._entries.move_to_end(user)
        return _copy(entry.history), set(entry.seen)

    def put(self, user: str, events: Sequence[Event], items_version: int, history: History, seen: set[str]) -> None:
        entry = _Entry(list(events), items_version, _copy(history), frozenset(seen))
        if entry.nbytes > self.max_bytes:
            return
        with self._lock:
            self._drop_locked(user)
            self._entries[user] = entry
            self._bytes += entry.nbytes
            while self._bytes > self.max_bytes:
                self._drop_locked(next(iter(self._entries)))

    def _drop_locked(self, user: str) -> None:
        entry = self._entries.pop(user, None)
        if entry is not None:
            self._bytes -= entry.nbytes


def _copy(history: History) -> History:
    return History(list(history.item_ids), np.array(history.vectors), np.array(history.timestamps))
