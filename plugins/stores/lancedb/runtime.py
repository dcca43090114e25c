"""The one event loop every LanceDB call of polyrec runs on, and table upkeep they share.

LanceDB's async API is used from sync code through a daemon thread running one asyncio loop
(the sync wrapper would cost several thread hops per query).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Coroutine
from datetime import timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from polyrec.contracts import PolyrecError, StoreError

if TYPE_CHECKING:
    import asyncio

__all__ = [
    "run",
    "commit_retrying",
    "compact_if_fragmented",
    "fold_new_rows",
    "purge_deleted",
    "COMPACT_EVERY",
    "KEEP_VERSIONS",
]

T = TypeVar("T")
log = logging.getLogger(__name__)

COMPACT_EVERY = 32  # writes between checks for small fragments
_SMALL_FRAGMENTS = 24  # compact when a table has more small fragments than this ...
_FULL_FRAGMENT_ROWS = 8192  # ... and half its fragments hold fewer rows than this
KEEP_VERSIONS = timedelta(hours=1)  # old versions removed by compaction
COMMIT_ATTEMPTS = 6  # a write that keeps losing commit races to other writers fails after this many


class _LoopThread:
    """One asyncio loop in a daemon thread, shared by every LanceDB store in the process."""

    _lock = threading.Lock()
    _loop: asyncio.AbstractEventLoop | None = None

    @classmethod
    def run(cls, coroutine: Coroutine[Any, Any, T]) -> T:
        import asyncio  # here, not at the top: a store read from its snapshot never needs it (30 modules)

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
    """Compact (rewrite every small fragment into large ones) once more than ``_SMALL_FRAGMENTS``
    fragments are small and most hold under ``_FULL_FRAGMENT_ROWS`` rows: many tiny writes
    (an upsert at a time) slow scans down, while the large appends of a bulk write are worth
    no rewrite. (LanceDB calls "small" any fragment under its 1M-row compaction target, so a
    1M-row ingest in 16k-row writes would otherwise be written twice.)"""
    fragments = (await table.stats())["fragment_stats"]
    if fragments["num_small_fragments"] > _SMALL_FRAGMENTS and fragments["lengths"]["p50"] < _FULL_FRAGMENT_ROWS:
        await table.optimize(cleanup_older_than=KEEP_VERSIONS)


async def fold_new_rows(table: Any, index: str, fraction: float) -> bool:
    """Fold the rows added since ``index`` was last updated into it (``optimize``) once they
    pass ``fraction`` of the indexed ones; until then queries scan them. True if it did."""
    stats = await table.index_stats(index)
    if stats is None or stats.num_unindexed_rows <= fraction * stats.num_indexed_rows:
        return False
    await table.optimize(cleanup_older_than=KEEP_VERSIONS)
    return True


def is_commit_conflict(error: Exception) -> bool:
    return "commit conflict" in str(error).lower()


def commit_retrying(
    writing: Callable[[], Coroutine[Any, Any, T]],
    refresh: Callable[[], Coroutine[Any, Any, None]],
    do: Callable[[Coroutine[Any, Any, Any], str], Any],
    what: str,
    table: str,
) -> tuple[T, bool]:
    """Run a write; if another writer's commit beat it (Lance's retryable conflict), move to
    the latest version and run it again: for idempotent writes only (merge or delete by key,
    index builds). Returns the result and whether it ever conflicted."""
    for attempt in range(COMMIT_ATTEMPTS):
        try:
            return do(writing(), what), attempt > 0
        except StoreError as exc:
            if attempt == COMMIT_ATTEMPTS - 1 or not is_commit_conflict(exc):
                raise
            log.info("%s: %s conflicted with another writer; retrying", table, what)
            time.sleep(0.02 * 2**attempt)
            do(refresh(), "reading the latest version")
    raise AssertionError("unreachable")


async def purge_deleted(table: Any) -> None:
    """Rewrite every file that holds deleted rows and remove all older versions, so deleted
    rows are gone from disk, not only hidden (LanceDB's ``optimize`` rewrites a file only
    past 10% deleted rows). Uses pylance. A reader in another process still on an older
    version fails once and reads the latest on its retry."""
    import lance

    uri = await table.uri()
    _discard_snapshot_beside(uri)  # it may hold the rows being erased

    def purge() -> None:
        dataset = lance.dataset(uri)
        dataset.optimize.compact_files(materialize_deletions=True, materialize_deletions_threshold=0.0)
        lance.dataset(uri).cleanup_old_versions(older_than=timedelta(0), error_if_tagged_old_versions=False)

    import asyncio

    await asyncio.to_thread(purge)
    await table.checkout_latest()


def _discard_snapshot_beside(table_uri: str) -> None:
    from pathlib import Path

    from polyrec.plugins.stores.lancedb.snapshot import discard

    if "://" in table_uri and not table_uri.startswith("file://"):
        return  # object storage: never snapshotted
    discard(Path(table_uri.removeprefix("file://")).parent)
