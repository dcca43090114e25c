"""Contract tests every vector store must pass.

Subclass :class:`StoreContract` in a ``Test*`` class of your own test module and
implement :meth:`StoreContract.make_store`; pytest then runs every ``test_*`` method
below against your store::

    from polyrec.contracts.testing.stores import StoreContract

    class TestMyStore(StoreContract):
        persistent = True          # False for stores that forget everything on close()

        def make_store(self, path):
            return MyStore(uri=path)

``path`` is a fresh directory per test; :meth:`make_store` is called again with the same
path to check that data survives ``close()`` and reopening. The suite needs pytest and
numpy only.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest

from polyrec.contracts import (
    Collection,
    Event,
    InvalidVectorError,
    ProvenanceMismatchError,
    VectorRecord,
    VectorStore,
    matches,
)

__all__ = ["StoreContract", "FILTER_CASES", "filter_catalog"]

PROVENANCE = {"encoder.text": "sentence-transformers:all-MiniLM-L6-v2", "fusion": "weighted-concat:{}"}

#: Filters checked against :func:`polyrec.contracts.matches` on :func:`filter_catalog`.
FILTER_CASES: list[dict[str, Any]] = [
    {"genre": "comedy"},
    {"genre": {"$ne": "comedy"}},
    {"genre": {"$in": ["drama", "horror", "missing-value"]}},
    {"genre": {"$gt": "d"}},
    {"year": 1995},
    {"year": {"$gte": 1990, "$lt": 2000}},
    {"year": {"$gt": 1994.5}},
    {"year": {"$lte": 1990.0}},
    {"year": {"$in": [1990, 2001.0, 2002.5]}},
    {"year": {"$ne": 1995}},
    {"rating": {"$gt": 3.5}},
    {"rating": {"$lte": 2}},
    {"rating": 4.0},
    {"tags": "funny"},
    {"tags": {"$in": ["dark", "long"]}},
    {"tags": {"$ne": "funny"}},
    {"tags": {"$gte": "m"}},
    {"flag": True},
    {"flag": 1},
    {"flag": {"$ne": False}},
    {"code": 7},
    {"code": "7"},
    {"code": {"$ne": 7}},
    {"code": {"$gt": 5}},
    {"never_set": "x"},
    {"never_set": {"$ne": "x"}},
    {"genre": "comedy", "year": {"$gte": 1995}},
    {"genre": {"$in": []}},
    {"year": "1995"},
    {"rating": None},
]


def filter_catalog(n: int = 60) -> list[dict[str, Any]]:
    """Metadata covering every filter feature: all types, lists, missing keys, None,
    a key whose type differs between items and a key no item has."""
    genres = ["comedy", "drama", "horror", "documentary"]
    tags = [["funny"], ["dark", "long"], [], ["funny", "short"], ["musical"]]
    catalog: list[dict[str, Any]] = []
    for i in range(n):
        rating = round(1 + (i % 9) * 0.5, 1)
        metadata: dict[str, Any] = {"genre": genres[i % 4], "year": 1985 + i % 20, "rating": rating}
        if i % 3:
            metadata["tags"] = list(tags[i % 5])
        if i % 4 == 0:
            metadata["flag"] = i % 8 == 0
        if i % 5 == 0:
            metadata["code"] = 7 if i % 10 == 0 else "7"
        if i % 7 == 0:
            metadata["rating"] = None
        if i % 11 == 0:
            del metadata["genre"]
        catalog.append(metadata)
    return catalog


def _unit_rows(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    rows = rng.normal(size=(n, dim))
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


class StoreContract:
    """Mixin of store contract tests; see the module docstring."""

    #: the store keeps its data across ``close()`` and a new ``make_store(path)``
    persistent: ClassVar[bool] = True
    #: compare search with brute force exactly (None: use the store class's ``exact``)
    exact_search: ClassVar[bool | None] = None
    #: minimum recall@10 asked of stores whose search is approximate
    min_recall: ClassVar[float] = 0.9
    #: how far a hit's score may be from the exact inner product
    score_atol: ClassVar[float] = 1e-5
    dim: ClassVar[int] = 16

    def make_store(self, path: Path) -> VectorStore:
        """Return a new store whose data lives under ``path`` (if it persists anything)."""
        raise NotImplementedError("implement make_store(path) in your StoreContract subclass")

    # -- fixtures and helpers -------------------------------------------------------

    @pytest.fixture
    def store_path(self, tmp_path: Path) -> Path:
        return tmp_path / "store"

    @pytest.fixture
    def store(self, store_path: Path) -> Iterator[VectorStore]:
        store = self.make_store(store_path)
        yield store
        store.close()

    def is_exact(self, store: VectorStore) -> bool:
        return type(store).exact if self.exact_search is None else self.exact_search

    def open_items(self, store: VectorStore, dim: int | None = None, name: str = "items") -> Collection:
        return store.open(name, dim=dim or self.dim, provenance=PROVENANCE)

    def records(self, n: int, seed: int = 0, prefix: str = "item") -> list[VectorRecord]:
        vectors = _unit_rows(np.random.default_rng(seed), n, self.dim)
        return [VectorRecord(id=f"{prefix}{i}", vector=vectors[i], metadata={"position": i}) for i in range(n)]

    # -- upsert / get ---------------------------------------------------------------

    def test_upsert_then_get_round_trips_vectors_and_metadata(self, store: VectorStore) -> None:
        items = self.open_items(store)
        rng = np.random.default_rng(1)
        vector = rng.normal(size=self.dim).astype(np.float32)
        vector[:3] = [1e-38, -0.0, 3.4e38]  # float32 extremes must survive untouched
        metadata = {
            "title": "Amélie — 2001 ✓",
            "year": 2001,
            "big": 2**62 + 1,
            "negative": -5,
            "rating": 0.1,
            "ratio": 1e-300,
            "liked": True,
            "hidden": False,
            "tags": ["romance", "comedy"],
            "no_tags": [],
            "quote": 'it\'s "quoted" \\ back',
            "nothing": None,
        }
        items.upsert([VectorRecord(id="a", vector=vector, metadata=metadata)])
        (got,) = items.get(["a"])
        assert got.id == "a"
        assert got.vector.dtype == np.float32
        assert got.vector.tobytes() == vector.tobytes()  # bit for bit, -0.0 included
        assert got.metadata == metadata
        assert {key: type(value) for key, value in got.metadata.items()} == {
            key: type(value) for key, value in metadata.items()
        }

    def test_get_keeps_the_asked_order_and_skips_unknown_ids(self, store: VectorStore) -> None:
        items = self.open_items(store)
        records = self.records(5)
        items.upsert(records)
        got = items.get(["item3", "nope", "item0", "item4"])
        assert [record.id for record in got] == ["item3", "item0", "item4"]
        np.testing.assert_array_equal(got[0].vector, records[3].vector)
        assert got[1].metadata == {"position": 0}
        assert items.get([]) == []

    def test_reupsert_replaces_without_duplicates(self, store: VectorStore) -> None:
        items = self.open_items(store)
        items.upsert(self.records(10))
        replacement = self.records(1, seed=99)[0]
        replacement = VectorRecord(id="item4", vector=replacement.vector, metadata={"genre": "new"})
        items.upsert([replacement])
        assert items.count() == 10
        (got,) = items.get(["item4"])
        np.testing.assert_array_equal(got.vector, replacement.vector)
        assert got.metadata == {"genre": "new"}  # old keys are gone, not merged
        hits = items.search(replacement.vector, k=10)
        assert [hit.id for hit in hits].count("item4") == 1
        assert all(hit.id != "item4" for hit in items.search(replacement.vector, k=10, filter={"position": 4}))

    def test_duplicate_ids_in_one_batch_keep_the_last(self, store: VectorStore) -> None:
        items = self.open_items(store)
        first, second = self.records(2)
        items.upsert([first, VectorRecord(id=first.id, vector=second.vector, metadata={"v": 2})])
        assert items.count() == 1
        (got,) = items.get([first.id])
        np.testing.assert_array_equal(got.vector, second.vector)
        assert got.metadata == {"v": 2}

    # -- search ---------------------------------------------------------------------

    def test_search_agrees_with_brute_force(self, store: VectorStore) -> None:
        items = self.open_items(store)
        records = self.records(300, seed=2)
        items.upsert(records)
        matrix = np.stack([record.vector for record in records])
        queries = _unit_rows(np.random.default_rng(3), 20, self.dim)
        recalls = []
        for query in queries:
            hits = items.search(query, k=10)
            scores = matrix @ query
            expected = np.argsort(-scores)[:10]
            assert len(hits) == 10
            got_scores = np.array([hit.score for hit in hits])
            assert np.all(np.diff(got_scores) <= 1e-6), "hits must be sorted by descending score"
            by_id = {record.id: i for i, record in enumerate(records)}
            np.testing.assert_allclose(got_scores, scores[[by_id[hit.id] for hit in hits]], atol=self.score_atol)
            if self.is_exact(store):
                assert {hit.id for hit in hits} == {records[i].id for i in expected}
            recalls.append(len({hit.id for hit in hits} & {records[i].id for i in expected}) / 10)
        assert np.mean(recalls) >= (1.0 if self.is_exact(store) else self.min_recall)

    def test_search_returns_metadata_and_at_most_what_exists(self, store: VectorStore) -> None:
        items = self.open_items(store)
        records = self.records(4)
        items.upsert(records)
        hits = items.search(records[2].vector, k=10)
        assert len(hits) == 4
        assert hits[0].id == "item2"
        assert hits[0].metadata == {"position": 2}
        assert items.search(records[2].vector, k=0) == []

    @pytest.mark.parametrize("filter", [None, {"position": {"$gte": 10}}], ids=["unfiltered", "filtered"])
    def test_search_rows_are_the_search_hits_with_their_stored_vectors(
        self, store: VectorStore, filter: dict[str, Any] | None
    ) -> None:
        items = self.open_items(store)
        records = self.records(60, seed=5)
        items.upsert(records)
        query = records[30].vector
        hits = items.search(query, k=20, filter=filter)
        rows = items.search_rows(query, k=20, filter=filter)
        assert rows.ids == [hit.id for hit in hits]
        np.testing.assert_allclose(rows.scores, [hit.score for hit in hits], atol=self.score_atol)
        assert rows.metadata == [hit.metadata for hit in hits]
        stored = {record.id: record.vector for record in records}
        assert rows.vectors.shape == (len(hits), self.dim)
        for item_id, vector in zip(rows.ids, rows.vectors, strict=True):
            np.testing.assert_allclose(vector, stored[item_id], atol=1e-6)
        empty = items.search_rows(query, k=0)
        assert len(empty) == 0 and empty.vectors.shape == (0, self.dim)

    def test_empty_collection_search_returns_nothing(self, store: VectorStore) -> None:
        items = self.open_items(store)
        query = np.ones(self.dim, dtype=np.float32)
        assert items.search(query, k=5) == []
        assert items.search(query, k=5, filter={"genre": "comedy"}) == []
        assert items.count() == 0
        assert [record for batch in items.scan() for record in batch] == []

    def test_search_rejects_bad_query_vectors(self, store: VectorStore) -> None:
        items = self.open_items(store)
        items.upsert(self.records(3))
        with pytest.raises(ValueError):
            items.search(np.ones(self.dim + 1, dtype=np.float32), k=3)
        with pytest.raises(ValueError):
            items.search(np.full(self.dim, np.nan, dtype=np.float32), k=3)

    @pytest.mark.parametrize("filter", FILTER_CASES, ids=[repr(case) for case in FILTER_CASES])
    def test_filters_agree_with_matches(self, store: VectorStore, filter: dict[str, Any]) -> None:
        items = self.open_items(store)
        catalog = filter_catalog()
        vectors = _unit_rows(np.random.default_rng(4), len(catalog), self.dim)
        items.upsert(
            [VectorRecord(id=f"m{i}", vector=vectors[i], metadata=metadata) for i, metadata in enumerate(catalog)]
        )
        expected = {f"m{i}" for i, metadata in enumerate(catalog) if matches(metadata, filter)}
        query = vectors[0]
        hits = items.search(query, k=len(catalog), filter=filter)
        assert {hit.id for hit in hits} == expected
        assert len(hits) == len(expected)
        assert all(matches(hit.metadata, filter) for hit in hits)
        top = items.search(query, k=3, filter=filter)
        scores = {f"m{i}": float(vectors[i] @ query) for i in range(len(catalog))}
        best = sorted(expected, key=lambda item_id: -scores[item_id])[:3]
        if self.is_exact(store):
            assert [hit.id for hit in top] == best
        assert len(top) == len(best)

    def test_invalid_filters_are_rejected(self, store: VectorStore) -> None:
        items = self.open_items(store)
        items.upsert(self.records(3))
        query = np.ones(self.dim, dtype=np.float32)
        with pytest.raises(ValueError, match="position"):
            items.search(query, k=3, filter={"position": {"$regex": "x"}})
        with pytest.raises(ValueError, match="position"):
            items.search(query, k=3, filter={"position": {"$in": 3}})

    # -- delete / count / scan ------------------------------------------------------

    def test_delete_returns_how_many_existed(self, store: VectorStore) -> None:
        items = self.open_items(store)
        records = self.records(6)
        items.upsert(records)
        assert items.delete(["item1", "item3", "nope", "item1"]) == 2
        assert items.count() == 4
        assert items.get(["item1", "item3"]) == []
        assert {hit.id for hit in items.search(records[1].vector, k=10)} == {"item0", "item2", "item4", "item5"}
        assert items.delete(["item1"]) == 0
        assert items.delete([]) == 0
        items.upsert([records[1]])
        assert items.count() == 5

    def test_scan_yields_every_record_in_batches(self, store: VectorStore) -> None:
        items = self.open_items(store)
        records = self.records(23)
        items.upsert(records)
        batches = list(items.scan(batch_size=7))
        assert all(0 < len(batch) <= 7 for batch in batches)
        scanned = {record.id: record for batch in batches for record in batch}
        assert sum(len(batch) for batch in batches) == 23
        assert set(scanned) == {record.id for record in records}
        for record in records:
            np.testing.assert_array_equal(scanned[record.id].vector, record.vector)
            assert scanned[record.id].metadata == record.metadata

    def test_collections_are_independent(self, store: VectorStore) -> None:
        items = self.open_items(store)
        other = store.open("field__text", dim=self.dim * 2, provenance={"encoder": "x"})
        items.upsert(self.records(3))
        other.upsert([VectorRecord(id="item0", vector=np.ones(self.dim * 2, dtype=np.float32), metadata={})])
        assert items.count() == 3
        assert other.count() == 1
        assert other.dim == self.dim * 2
        assert other.provenance == {"encoder": "x"}

    # -- invalid vectors ----------------------------------------------------------------

    @pytest.mark.parametrize("bad", ["nan", "inf", "-inf", "short", "long", "matrix"])
    def test_invalid_vectors_are_rejected_naming_the_item(self, store: VectorStore, bad: str) -> None:
        items = self.open_items(store)
        stored = self.records(3)
        items.upsert(stored)
        vector = np.ones(self.dim, dtype=np.float32)
        broken = {
            "nan": np.where(np.arange(self.dim) == 2, np.nan, vector),
            "inf": np.where(np.arange(self.dim) == 0, np.inf, vector),
            "-inf": np.where(np.arange(self.dim) == 5, -np.inf, vector),
            "short": vector[:-1],
            "long": np.ones(self.dim + 1, dtype=np.float32),
            "matrix": np.ones((2, self.dim), dtype=np.float32),
        }[bad]
        fresh = VectorRecord(id="fresh", vector=vector, metadata={})
        replacement = VectorRecord(id="item0", vector=-stored[0].vector, metadata={"changed": True})
        with pytest.raises(InvalidVectorError) as caught:
            items.upsert([fresh, replacement, VectorRecord(id="broken-7", vector=broken, metadata={})])
        error = caught.value
        assert error.item_id == "broken-7"
        assert error.field == items.name
        assert error.plugin == store.name
        assert "broken-7" in str(error)
        assert items.count() == 3
        assert items.get(["fresh"]) == []
        (kept,) = items.get(["item0"])
        np.testing.assert_array_equal(kept.vector, stored[0].vector)
        assert kept.metadata == stored[0].metadata

    def test_float64_values_overflowing_float32_are_rejected(self, store: VectorStore) -> None:
        items = self.open_items(store)
        vector = np.ones(self.dim, dtype=np.float64)
        vector[1] = 1e300
        with pytest.raises(InvalidVectorError, match="huge"):
            items.upsert([VectorRecord(id="huge", vector=vector, metadata={})])
        assert items.count() == 0

    # -- provenance and persistence -------------------------------------------------

    def test_reopening_with_the_same_provenance_sees_the_data(self, store: VectorStore) -> None:
        self.open_items(store).upsert(self.records(4))
        again = self.open_items(store)
        assert again.count() == 4
        assert again.provenance == PROVENANCE
        assert again.dim == self.dim

    def test_other_provenance_or_dim_is_refused(self, store: VectorStore) -> None:
        self.open_items(store).upsert(self.records(2))
        changed = {**PROVENANCE, "encoder.text": "open-clip:ViT-B-32"}
        with pytest.raises(ProvenanceMismatchError) as caught:
            store.open("items", dim=self.dim, provenance=changed)
        message = str(caught.value)
        assert "encoder.text" in message
        assert "sentence-transformers:all-MiniLM-L6-v2" in message and "open-clip:ViT-B-32" in message
        with pytest.raises(ProvenanceMismatchError, match="dim"):
            store.open("items", dim=self.dim + 1, provenance=PROVENANCE)
        with pytest.raises(ProvenanceMismatchError, match="scorer"):
            store.open("items", dim=self.dim, provenance={**PROVENANCE, "scorer": "dot"})
        assert self.open_items(store).count() == 2  # a refused open loses nothing

    def test_drop_deletes_a_collection_so_it_can_be_made_again(self, store: VectorStore) -> None:
        items = self.open_items(store)
        items.upsert(self.records(3))
        other = store.open("other", dim=self.dim, provenance=PROVENANCE)
        other.upsert(self.records(2))
        try:
            assert store.drop("items") is True
        except NotImplementedError:
            pytest.skip("this store cannot drop collections (the default VectorStore.drop)")
        assert store.drop("items") is False
        assert store.drop("never-made") is False
        rebuilt = store.open("items", dim=self.dim + 2, provenance={"encoder.text": "open-clip:ViT-B-32"})
        assert rebuilt.count() == 0
        assert rebuilt.dim == self.dim + 2
        assert store.open("other", dim=self.dim, provenance=PROVENANCE).count() == 2

    def test_data_and_events_survive_close_and_reopen(self, store_path: Path) -> None:
        if not self.persistent:
            pytest.skip("this store does not persist data")
        store = self.make_store(store_path)
        records = self.records(12)
        self.open_items(store).upsert(records)
        events = [Event(user="u1", item="item1", timestamp=1.0), Event(user="u2", item="item2", value=3.5)]
        store.events().append(events)
        store.close()
        reopened = self.make_store(store_path)
        try:
            items = self.open_items(reopened)
            assert items.count() == 12
            got = items.get([record.id for record in records])
            for record, kept in zip(records, got, strict=True):
                np.testing.assert_array_equal(kept.vector, record.vector)
                assert kept.metadata == record.metadata
            assert reopened.events().read() == events
            with pytest.raises(ProvenanceMismatchError, match=r"encoder\.text"):
                reopened.open("items", dim=self.dim, provenance={**PROVENANCE, "encoder.text": "other"})
        finally:
            reopened.close()

    # -- event log ------------------------------------------------------------------

    def test_event_log_appends_reads_and_counts(self, store: VectorStore) -> None:
        log = store.events()
        assert log.count() == 0
        assert log.read() == []
        first = [Event(user="u1", item=f"i{i}", timestamp=float(10 - i)) for i in range(3)]
        second = [
            Event(user="u2", item="i9", kind="purchase", value=2.5, timestamp=1.5),
            Event(user="u1", item="i0", timestamp=0.0),
            Event(user="it's", item="i1"),
        ]
        log.append(first)
        log.append([])
        log.append(second)
        assert log.count() == 6
        assert log.read() == first + second  # append order, not timestamp order
        assert log.read("u1") == [*first, second[1]]
        assert log.read("it's") == [second[2]]
        assert log.read("nobody") == []
        assert store.events().count() == 6

    def test_event_log_keeps_one_event_per_key_and_erases_users(self, store: VectorStore) -> None:
        log = store.events()
        batch = [Event(user="u1", item="i1", timestamp=1.0), Event(user="u1", item="i1", timestamp=1.0)]
        batch += [Event(user="u2", item="i2", id="evt-7")]
        added = [log.append(batch), log.append(batch)]  # the second: a retried append, nothing new
        added.append(log.append([Event(user="u3", item="i9", id="evt-7")]))  # a known client id: nothing new
        if added[0] is not None:  # the log says how many were new (optional: None when it cannot tell)
            assert added == [3, 0, 0]
        assert log.count() == 3 and log.read("u1") == batch[:2]  # one batch may hold an event twice
        assert [event.id for event in log.read("u2")] == ["evt-7"]
        try:
            erased = log.erase_user("u1")
        except NotImplementedError:
            pytest.skip("this store cannot erase users")
        assert erased == 2 and log.read("u1") == [] and log.count() == 1
        assert log.erase_user("u1") == 0

    def test_event_log_users_and_item_counts_agree_with_read(self, store: VectorStore) -> None:
        log = store.events()
        log.append([Event(user=f"u{n % 3}", item=f"i{n % 4}", timestamp=float(n)) for n in range(10)])
        log.append([Event(user="it's", item="i0", timestamp=99.0)])
        events = log.read()
        assert log.users() == sorted({event.user for event in events})
        expected: dict[str, int] = {}
        for event in events:
            expected[event.item] = expected.get(event.item, 0) + 1
        assert log.item_counts() == expected
