"""The per-user history cache of recommend (engine/history_cache.py): answers stay those of the
uncached path, and every write a history depends on (a new event, an item update or delete, an
erasure) is seen at the next request."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from engine_fakes import plugin_manager

from polyrec.contracts import History
from polyrec.engine.engine import Engine
from polyrec.engine.history_cache import EVENT_BYTES, HistoryCache
from polyrec.engine.retrieval import Retriever

TOPICS = {"space": "space rocket orbit", "cook": "pasta sauce kitchen", "jazz": "jazz saxophone swing"}


def catalog() -> list[dict[str, Any]]:
    return [
        {"id": f"{topic}-{i}", "title": f"{words} {topic}{i}", "topic": topic}
        for topic, words in TOPICS.items()
        for i in range(8)
    ]


def make_engine(store: dict[str, Any]) -> Engine:
    config = {
        "store": store,
        "encoders": {"title": {"plugin": "bag-of-words"}},
        "scorer": {"plugin": "target-attention"},
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        engine = Engine.from_config(config, plugin_manager=plugin_manager())
    engine.ingest(catalog())
    engine.add_events(
        [{"user": "alice", "item": f"space-{i}", "timestamp": 10 + i} for i in range(3)]
        + [{"user": "bob", "item": "jazz-1", "timestamp": 5}, {"user": "bob", "item": "cook-2", "timestamp": 6}]
    )
    return engine


@pytest.fixture(params=["memory", "lancedb"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Engine:
    if request.param == "lancedb":
        pytest.importorskip("lancedb")
        return make_engine({"plugin": "lancedb", "uri": str(tmp_path / "db")})
    return make_engine({"plugin": "memory"})


def answers(retriever: Retriever, user: str, **query: Any) -> list[tuple[Any, ...]]:
    results = retriever.recommend(user, k=6, **query)
    return [(r.item, r.score, [(w.item, w.weight) for w in r.explanation], r.metadata, r.flags) for r in results]


def assert_as_uncached(engine: Engine, users: tuple[str, ...] = ("alice", "bob")) -> None:
    """Each answer (the cached path, asked twice) is that of a retriever with nothing kept yet."""
    for user in users:
        for query in ({}, {"filter": {"topic": "space"}}, {"diversity": 0.5}):
            first = answers(engine.retriever, user, **query)
            assert answers(engine.retriever, user, **query) == first
            assert answers(Retriever(engine.assembly), user, **query) == first


def counting_reads(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    reads: list[int] = []
    read = engine.retriever._read_history
    monkeypatch.setattr(engine.retriever, "_read_history", lambda events: reads.append(1) or read(events))
    return reads


def test_a_repeated_request_reads_no_history_and_answers_the_same(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    reads = counting_reads(engine, monkeypatch)
    assert_as_uncached(engine)
    assert len(reads) == 2  # one read per user for the six requests each
    history = engine.history("alice")
    history.vectors[:] = 0  # a caller's copy: the kept history is unchanged
    history.item_ids.clear()
    assert engine.history("alice").item_ids == ["space-0", "space-1", "space-2"]
    assert np.abs(engine.history("alice").vectors).sum() > 0
    assert len(reads) == 2


def test_a_new_event_is_in_the_next_history_and_other_users_stay_kept(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert_as_uncached(engine)
    reads = counting_reads(engine, monkeypatch)
    engine.add_events([{"user": "alice", "item": "jazz-3", "timestamp": 20}])
    assert engine.history("alice").item_ids == ["space-0", "space-1", "space-2", "jazz-3"]
    assert "jazz-3" not in {r.item for r in engine.recommend("alice", k=20)}  # seen now
    assert len(reads) == 1
    engine.history("bob")  # bob's events did not change: still kept
    assert len(reads) == 1
    assert_as_uncached(engine)


def test_an_item_update_or_delete_is_in_the_next_history(engine: Engine) -> None:
    assert_as_uncached(engine)
    before = engine.history("alice")
    engine.ingest([{"id": "space-1", "title": "pasta sauce kitchen cook9", "topic": "cook"}])  # moved to cooking
    after = engine.history("alice")
    assert after.item_ids == before.item_ids
    assert not np.array_equal(after.vectors[1], before.vectors[1])
    np.testing.assert_array_equal(after.vectors[1], engine.get_items(["space-1"])[0].vector)
    assert_as_uncached(engine)
    engine.delete_items(["space-2"])
    assert engine.history("alice").item_ids == ["space-0", "space-1"]
    assert_as_uncached(engine)


def test_an_erased_user_has_no_history_at_the_next_request(engine: Engine) -> None:
    assert_as_uncached(engine)
    engine.forget_user("alice")
    assert len(engine.history("alice")) == 0
    assert all("fallback:popularity" in r.flags or "fallback:content" in r.flags for r in engine.recommend("alice"))
    assert_as_uncached(engine)


def test_the_cache_keeps_the_most_recently_used_within_its_bytes() -> None:
    def history(n: int) -> History:
        return History([f"i{j}" for j in range(n)], np.ones((n, 4), np.float32), np.arange(n, dtype=np.float64))

    cache = HistoryCache(max_bytes=3 * (10 * 4 * 4 + EVENT_BYTES))  # three users of ten 4-d float32 rows, no events
    for user in ("a", "b", "c"):
        cache.put(user, [], 0, history(10), set())
    assert cache.get("a", [], 0) is not None  # a is the most recent now
    cache.put("d", [], 0, history(10), set())
    assert len(cache) == 3 and cache.get("b", [], 0) is None  # the least recently used went
    assert cache.get("a", [], 1) is None and cache.get("a", [], 0) is None  # a newer items version drops it
    cache.put("e", [], 0, history(1000), set())  # larger than the whole cache: not kept
    assert cache.get("e", [], 0) is None and len(cache) == 2
