"""The event log with several writers (issue 13, defects 2 and 3) and event identity (issue 15).

Two LanceDB store objects on one directory stand for two processes (the server and
``polyrec events``): each has its own table handle, counters and commits. Upkeep (index
builds, folds, compaction) that loses a commit race must not fail an append that committed;
``seq`` must give one order across writers; re-appending the same events adds nothing.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from polyrec.contracts import Event
from polyrec.plugins.stores.lancedb import LanceDBStore
from polyrec.plugins.stores.memory import MemoryStore

APPENDS = 60


def two_writers(db: Path) -> list[LanceDBStore]:
    # tiny thresholds: index builds and folds (each its own commit) race the other writer's appends
    return [LanceDBStore(uri=db, index_threshold=20, reindex_fraction=0.01, read_consistency_s=0) for _ in range(2)]


def test_upkeep_losing_a_commit_race_never_fails_a_stored_append(tmp_path: Path) -> None:
    stores = two_writers(tmp_path / "db")
    errors: list[str] = []

    def write(n: int) -> None:
        log = stores[n].events()
        for k in range(APPENDS):
            try:
                log.append([Event(user=f"writer-{n}", item=f"i{k}", timestamp=float(k))])
            except Exception as exc:  # the defect: a stored append reported as failed
                errors.append(f"{type(exc).__name__}: {exc}")

    threads = [threading.Thread(target=write, args=(n,)) for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    events = stores[0].events().read()
    assert Counter(event.user for event in events) == {"writer-0": APPENDS, "writer-1": APPENDS}
    # defect 3: each writer's events come back in the order it appended them, and one order for all readers
    for n in range(2):
        mine = [event.item for event in stores[n].events().read(f"writer-{n}")]
        assert mine == [f"i{k}" for k in range(APPENDS)]
    assert [e.item for e in stores[1].events().read()] == [e.item for e in events]
    for store in stores:
        store.close()


def test_order_across_writers_is_append_order(tmp_path: Path) -> None:
    first, second = two_writers(tmp_path / "db")
    first.events().append([Event(user="u", item="a", timestamp=5.0)])
    second.events().append([Event(user="u", item="b", timestamp=5.0)])  # the second process had no events yet
    first.events().append([Event(user="u", item="c", timestamp=5.0)])
    for store in (first, second):
        assert [event.item for event in store.events().read("u")] == ["a", "b", "c"]  # latest is "c"


@pytest.mark.parametrize(
    "make_store", [lambda path: LanceDBStore(uri=path / "db"), lambda path: MemoryStore()], ids=["lancedb", "memory"]
)
def test_reappending_the_same_events_adds_nothing(tmp_path: Path, make_store) -> None:
    store = make_store(tmp_path)
    log = store.events()
    batch = [
        Event(user="u", item="i", timestamp=1.0),
        Event(user="u", item="i", timestamp=1.0),
        Event(user="v", item="j"),
    ]
    log.append(batch)
    assert log.count() == 3  # the same event twice in one batch: both kept
    log.append(batch)  # a retry of the whole batch
    assert log.count() == 3
    with_ids = [
        Event(user="u", item="i", timestamp=1.0, id="evt-1"),
        Event(user="u", item="i", timestamp=1.0, id="evt-2"),
    ]
    log.append(with_ids)
    log.append(with_ids[1:])
    assert log.count() == 5
    assert [event.id for event in log.read("u")] == [None, None, "evt-1", "evt-2"]
    assert store.events().erase_user("u") == 4
    assert [event.user for event in log.read()] == ["v"]
    store.close()


def test_the_servers_user_list_follows_its_own_and_other_writers(tmp_path: Path) -> None:
    from bow_server import bow_app, bow_engine
    from fastapi.testclient import TestClient

    with TestClient(bow_app(tmp_path / "db")) as client:
        assert client.get("/users").json()["users"] == []
        client.post("/events", json={"events": [{"user": "b", "item": "x"}, {"user": "a", "item": "y"}]})
        assert client.get("/users").json()["users"] == ["a", "b"]
        client.post("/events", json={"events": [{"user": "ab", "item": "x"}]})  # added without a re-read
        assert client.get("/users").json()["users"] == ["a", "ab", "b"]
        with bow_engine(tmp_path / "db", read_consistency_s=0) as other:  # another process's write
            other.add_events([Event(user="0-first", item="x", timestamp=1.0)])
        deadline = time.monotonic() + 30  # the server's handle sees it within read_consistency_s (5 s)
        while "0-first" not in client.get("/users").json()["users"] and time.monotonic() < deadline:
            time.sleep(0.2)
        assert client.get("/users").json()["users"] == ["0-first", "a", "ab", "b"]
