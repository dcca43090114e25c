"""The LanceDB event log's per-user read cache: repeated reads come from memory, and every
write (this process's appends and erasures, another process's commits) is seen."""

from __future__ import annotations

from pathlib import Path

import pytest

from polyrec.contracts import Event

pytest.importorskip("lancedb")
from polyrec.plugins.stores.lancedb import LanceDBStore


def events(user: str, items: list[str], start: float = 0.0) -> list[Event]:
    return [Event(user=user, item=item, timestamp=start + t) for t, item in enumerate(items)]


def items_of(log: object, user: str) -> list[str]:
    return [event.item for event in log.read(user)]  # type: ignore[attr-defined]


def spy_on_reads(log: object) -> list[str | None]:
    queries: list[str | None] = []
    original = log._read  # type: ignore[attr-defined]
    log._read = lambda user: queries.append(user) or original(user)  # type: ignore[attr-defined]
    return queries


@pytest.mark.parametrize("budget", [1_000, 3], ids=["read-whole", "per-user"])
def test_repeated_reads_come_from_memory_and_own_writes_are_seen(tmp_path: Path, budget: int) -> None:
    log = LanceDBStore(uri=tmp_path, read_consistency_s=3600, user_cache_events=budget).events()
    log.append(events("u1", ["a", "b"]) + events("u2", ["c"]))
    queries = spy_on_reads(log)
    assert items_of(log, "u1") == ["a", "b"]
    # a log of at most half the budget is read whole once; a larger one user by user
    assert queries == ([None] if budget > 6 else ["u1"])
    assert items_of(log, "u1") == ["a", "b"] and len(queries) == 1  # from memory
    assert items_of(log, "nobody") == [] and items_of(log, "u2") == ["c"]
    log.read("u1").clear()  # a caller's list is its own
    assert items_of(log, "u1") == ["a", "b"]
    log.append(events("u1", ["d"], start=10))
    assert items_of(log, "u1") == ["a", "b", "d"]
    log.erase_user("u1")
    assert items_of(log, "u1") == [] and items_of(log, "u2") == ["c"]


def test_another_process_append_is_seen_within_the_consistency_interval(tmp_path: Path) -> None:
    reader = LanceDBStore(uri=tmp_path, read_consistency_s=0).events()
    reader.append(events("u1", ["a"]))
    assert items_of(reader, "u1") == ["a"]
    LanceDBStore(uri=tmp_path).events().append(events("u1", ["b"], start=5))  # another writer
    assert items_of(reader, "u1") == ["a", "b"]


def test_a_read_racing_a_write_does_not_keep_what_it_read(tmp_path: Path) -> None:
    log = LanceDBStore(uri=tmp_path, read_consistency_s=3600, user_cache_events=1).events()  # per user
    log.append(events("u1", ["a"]))
    original = log._read

    def read_then_write(user: str) -> list[Event]:
        found = original(user)
        log._read = original  # type: ignore[method-assign]
        log.append(events("u1", ["b"], start=5))  # lands after the read, before it is cached
        return found

    log._read = read_then_write  # type: ignore[method-assign]
    assert items_of(log, "u1") == ["a"]
    assert items_of(log, "u1") == ["a", "b"]


def test_no_cache_with_a_zero_budget(tmp_path: Path) -> None:
    log = LanceDBStore(uri=tmp_path, user_cache_events=0, read_consistency_s=3600).events()
    log.append(events("u1", ["a"]))
    assert items_of(log, "u1") == ["a"]
    assert log._cache.size == 0
