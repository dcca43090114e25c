"""The one event loop every LanceDB call of polyrec runs on, and table upkeep they share.

LanceDB's async API is used from sync code through a daemon thread running one asyncio loop
(the sync wrapper would cost several thread hops per query).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from datetime import timedelta
from typing import Any, TypeVar

from polyrec.contracts import PolyrecError, StoreError

__all__ = ["run", "compact_if_fragmented", "fold_new_rows", "COMPACT_EVERY", "KEEP_VERSIONS"]

T = TypeVar("T")

COMPACT_EVERY = 32  # writes between checks for small fragments
_SMALL_FRAGMENTS = 24  # compact when a table has more small fragments than this
KEEP_VERSIONS = timedelta(hours=1)  # old versions removed by compaction


class _LoopThread:
    """One asyncio loop in a daemon thread, shared by every LanceDB store in the process."""

    _lock = threading.Lock()
    _loop: asyncio.AbstractEventLoop | None = None

    @classmethod
    def run(cls, coroutine: Coroutine[Any, Any, T]) -> T:
        with cls._lock:
            if cls._loop is None:
                cls._loop = asyncio.new_event_loop()
                threading.Thread(target=cls._loop.run_forever, name="polyrec-lancedb", daemon=True).start()
        return asyncio.run_coroutine_threadsafe(coroutine, cls._loop).result()


def run(coroutine: Coroutine[Any, Any, T], what: str) -> T:
    """Run a LanceDB coroutine; its errors become StoreError saying what failed."""
    try:
        return _LoopThread.run(coroutine)
    except PolyrecError:
        raise
    except Exception as exc:
        raise StoreError(f"lancedb: {what} failed: {type(exc).__name__}: {exc}") from exc


async def compact_if_fragmented(table: Any) -> None:
    stats = await table.stats()
    if stats["fragment_stats"]["num_small_fragments"] > _SMALL_FRAGMENTS:
        await table.optimize(cleanup_older_than=KEEP_VERSIONS)


async def fold_new_rows(table: Any, index: str, fraction: float) -> bool:
    """Fold the rows added since ``index`` was last updated into it (``optimize``) once they
    pass ``fraction`` of the indexed ones; until then queries scan them. True if it did."""
    stats = await table.index_stats(index)
    if stats is None or stats.num_unindexed_rows <= fraction * stats.num_indexed_rows:
        return False
    await table.optimize(cleanup_older_than=KEEP_VERSIONS)
    return True
