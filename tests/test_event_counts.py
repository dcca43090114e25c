"""Event counts kept per fragment (issue 13, defect 10): ``GET /users`` and a cold user's popular
items cost the same whatever the log's size, stay exact with several writers and duplicate
appends, and follow erasure; the popularity prior takes them instead of the whole log."""

from __future__ import annotations

import warnings
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from engine_fakes import plugin_manager

from polyrec.contracts import Event
from polyrec.engine.engine import Engine
from polyrec.plugins.scorers.dot import DotScorer
from polyrec.plugins.stores.lancedb import LanceDBStore, event_counts


@pytest.fixture
def rows_read(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The number of rows each fragment read by the counts had."""
    read: list[int] = []
    count = event_counts._count

    def counting(fragment: Any) -> tuple[dict[str, int], dict[str, int]]:
        users, items = count(fragment)
        read.append(sum(users.values()))
        return users, items

    monkeypatch.setattr(event_counts, "_count", counting)
    return read


def scanned(log: Any) -> tuple[list[str], dict[str, int]]:
    events = log.read()
    return sorted({e.user for e in events}), dict(Counter(e.item for e in events))


def test_after_a_write_only_the_new_rows_are_read(tmp_path: Path, rows_read: list[int]) -> None:
    log = LanceDBStore(uri=tmp_path / "db", read_consistency_s=0).events()
    log.append([Event(user=f"u{n % 7}", item=f"i{n % 5}", timestamp=float(n)) for n in range(500)])
    assert (log.users(), log.item_counts()) == scanned(log)
    assert sum(rows_read) == 500  # the first call of a process reads the log once
    rows_read.clear()
    log.append([Event(user="newcomer", item="i0", timestamp=1e6)])
    assert "newcomer" in log.users() and log.item_counts()["i0"] == 101
    assert rows_read == [1]  # the new fragment only, not the 501 events


def test_counts_follow_other_writers_duplicates_and_erasure(tmp_path: Path, rows_read: list[int]) -> None:
    reader, writer = (LanceDBStore(uri=tmp_path / "db", read_consistency_s=0).events() for _ in range(2))
    batch = [Event(user=f"u{n % 3}", item=f"i{n % 4}", timestamp=float(n)) for n in range(40)]
    writer.append(batch)
    assert (reader.users(), reader.item_counts()) == scanned(reader)
    writer.append(batch)  # a retried append: stored once, counted once
    reader.append([Event(user="u0", item="i0", timestamp=1.0, id="client-1")] * 2)
    writer.append([Event(user="u0", item="i0", timestamp=1.0, id="client-1")])
    assert reader.item_counts()["i0"] == 11 and (reader.users(), reader.item_counts()) == scanned(reader)
    writer.erase_user("u1")  # deletes rows, then rewrites their files
    assert reader.users() == ["u0", "u2"]
    assert (reader.users(), reader.item_counts()) == scanned(reader)


def test_the_popularity_prior_takes_counts_like_the_log() -> None:
    events = [Event(user="u", item=item, timestamp=float(n)) for n, item in enumerate("abacab")]
    from_log, from_counts = DotScorer(popularity=0.3), DotScorer(popularity=0.3)
    from_log.observe(events)
    assert from_counts.observe_item_counts(dict(Counter(e.item for e in events)))
    assert from_counts.fingerprint == from_log.fingerprint  # same counts, same digest
    ids = ["a", "b", "c", "z"]
    np.testing.assert_array_equal(from_counts.popularity_prior.counts(ids, 9.0), [3, 2, 1, 0])
    assert not DotScorer(popularity=0.3, popularity_window=5.0).observe_item_counts({"a": 1})  # needs times


def test_serving_with_a_popularity_prior_reads_no_whole_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = {
        "store": {"plugin": "lancedb", "uri": str(tmp_path / "db")},
        "encoders": {"title": {"plugin": "bag-of-words"}},
        "scorer": {"plugin": "dot", "popularity": 1.0},
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        engine = Engine.from_config(config, plugin_manager=plugin_manager())
    engine.ingest([{"id": f"space-{i}", "title": f"space rocket orbit s{i}"} for i in range(4)])
    engine.add_events([{"user": "fan", "item": "space-0", "timestamp": 1.0}])
    engine.add_events([{"user": f"u{n}", "item": "space-3", "timestamp": 2.0 + n} for n in range(5)])
    whole_log_reads: list[None] = []
    log = engine.assembly.layout.events()
    read = log.read
    monkeypatch.setattr(log, "read", lambda user=None: whole_log_reads.append(None) if user is None else read(user))
    top = engine.recommend("fan", k=1)
    assert top[0].item == "space-3"  # five events outweigh equal content
    assert whole_log_reads == []
    engine.close()
