"""The in-memory ANN index that serves the lancedb store's unfiltered searches: that it
mirrors the table through this store's writes, other writers' and growth, with the recall
of the LanceDB index it stands in front of."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from polyrec.contracts import VectorRecord
from polyrec.plugins.stores.lancedb import LanceDBStore, auto_num_partitions
from polyrec.plugins.stores.lancedb.memory_index import MemoryANN

DIM = 16


def unit_vectors(n: int, seed: int, dim: int = DIM) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(max(2, n // 50), dim))
    vectors = centres[rng.integers(0, len(centres), n)] + 0.8 * rng.normal(size=(n, dim))
    return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)


def exact_ids(ids: list[str], vectors: np.ndarray, query: np.ndarray, k: int) -> list[str]:
    return [ids[i] for i in np.argsort(-(vectors @ query), kind="stable")[:k]]


def records(vectors: np.ndarray, start: int = 0, tag: str = "v1") -> list[VectorRecord]:
    return [
        VectorRecord(id=f"i{start + row}", vector=vector, metadata={"tag": tag, "row": start + row})
        for row, vector in enumerate(vectors)
    ]


class CountingRebuilds:
    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        original = MemoryANN.rebuild

        def rebuild(memory: MemoryANN, *args: object) -> None:
            self.count += 1
            original(memory, *args)

        monkeypatch.setattr(MemoryANN, "rebuild", rebuild)


# -- the index on its own ---------------------------------------------------------------------


@pytest.mark.parametrize("exact_below", [10**9, 1], ids=["flat", "ivf"])
def test_upsert_replaces_delete_removes_and_scores_are_inner_products(exact_below: int) -> None:
    vectors = unit_vectors(2_000, seed=1)
    ids = [f"i{row}" for row in range(len(vectors))]
    memory = MemoryANN(DIM, exact_below=exact_below, partitions=auto_num_partitions, retrain_growth=4.0)
    memory.rebuild(ids, vectors, [f'{{"row": {row}}}' for row in range(len(ids))])
    assert memory.partitions == (0 if exact_below > 1 else auto_num_partitions(2_000))
    query = vectors[7]
    found, scores, metadata = memory.search(query, 10, nprobes=memory.partitions)  # every partition: exact
    assert found == exact_ids(ids, vectors, query, 10)
    np.testing.assert_allclose(scores, vectors[[int(i[1:]) for i in found]] @ query, atol=1e-5)
    assert metadata[0] == {"row": 7}
    metadata[0]["row"] = "changed by a caller"
    assert memory.search(query, 1, nprobes=memory.partitions)[2] == [{"row": 7}]  # callers get copies

    moved = -vectors[7]  # i7 now points away from its old neighbours
    memory.upsert(["i7", "new"], np.stack([moved, query]), ['{"row": "moved"}', '{"row": "new"}'])
    memory.delete(["i8", "missing"])
    found, _, metadata = memory.search(query, 2_000, nprobes=memory.partitions)
    assert len(memory) == len(found) == 2_000  # +new, -i8; i7 replaced, not duplicated
    assert found[0] == "new" and found[-1] == "i7" and "i8" not in found
    assert metadata[-1] == {"row": "moved"}
    got, got_vectors, got_metadata = memory.get(["i7", "i8", "new", "i9", "i7"])
    assert got == ["i7", "new", "i9", "i7"]  # missing ids left out, order and repeats kept
    np.testing.assert_array_equal(got_vectors, np.stack([moved, query, vectors[9], moved]))
    assert got_metadata[:2] == [{"row": "moved"}, {"row": "new"}]


def test_an_ivf_search_probing_too_few_rows_widens_to_return_k() -> None:
    vectors = unit_vectors(4_000, seed=2)
    memory = MemoryANN(DIM, exact_below=1, partitions=lambda rows: 64, retrain_growth=4.0)
    memory.rebuild([f"i{row}" for row in range(4_000)], vectors, ["{}"] * 4_000)
    found, _, _ = memory.search(vectors[0], 1_000, nprobes=1)  # one partition holds ~60 rows
    assert len(found) == len(set(found)) == 1_000


def test_needs_rebuild_when_outgrowing_its_kind() -> None:
    vectors = unit_vectors(300, seed=3)
    memory = MemoryANN(DIM, exact_below=100, partitions=auto_num_partitions, retrain_growth=2.0)
    memory.rebuild([f"i{row}" for row in range(99)], vectors[:99], ["{}"] * 99)
    assert memory.partitions == 0 and not memory.needs_rebuild
    memory.upsert(["i99"], vectors[99:100], ["{}"])
    assert memory.needs_rebuild  # 100 rows: past exact_below, time for IVF
    memory.rebuild([f"i{row}" for row in range(100)], vectors[:100], ["{}"] * 100)
    assert memory.partitions >= 1 and memory.trained_rows == 100 and not memory.needs_rebuild
    memory.upsert([f"i{row}" for row in range(100, 200)], vectors[100:200], ["{}"] * 100)
    assert memory.needs_rebuild  # twice the rows it was trained on


# -- behind the lancedb store -------------------------------------------------------------------


def test_the_store_mirrors_its_own_writes_without_rebuilding(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rebuilds = CountingRebuilds(monkeypatch)
    vectors = unit_vectors(600, seed=4)
    items = LanceDBStore(uri=tmp_path).open("items", dim=DIM, provenance={})
    items.upsert(records(vectors[:500]))
    assert [hit.id for hit in items.search(vectors[3], 1)] == ["i3"]
    assert rebuilds.count == 1  # built at the first unfiltered search
    items.upsert(records(vectors[500:], start=500))
    items.upsert([VectorRecord(id="i3", vector=-vectors[3], metadata={"tag": "v2"})])
    assert items.delete(["i4", "i5"]) == 2
    current = np.concatenate([vectors[:3], -vectors[3:4], vectors[6:]])
    ids = [f"i{row}" for row in range(4)] + [f"i{row}" for row in range(6, 600)]
    for query in vectors[[3, 4, 550]]:
        hits = items.search(query, 10)
        assert [hit.id for hit in hits] == exact_ids(ids, current, query, 10)
    assert items.search(-vectors[3], 1)[0].metadata == {"tag": "v2"}
    got = items.get(["i3", "i4", "i550"])  # from memory now, and the same as the table holds
    assert [record.id for record in got] == ["i3", "i550"]
    np.testing.assert_array_equal(got[0].vector, -vectors[3])
    assert got[1].metadata == {"tag": "v1", "row": 550}
    assert rebuilds.count == 1, "the store's own writes are applied to the index, not rebuilt from the table"
    from_table = LanceDBStore(uri=tmp_path, memory_index=False).open("items", dim=DIM, provenance={})
    for mine, theirs in zip(items.get(ids), from_table.get(ids), strict=True):
        assert (mine.id, mine.metadata) == (theirs.id, theirs.metadata)
        np.testing.assert_array_equal(mine.vector, theirs.vector)


@pytest.mark.parametrize("index_threshold", [10**6, 500], ids=["exact", "ivf"])
def test_filtered_searches_from_memory_match_lancedb_and_follow_writes(tmp_path: Path, index_threshold: int) -> None:
    vectors = unit_vectors(1_500, seed=9)
    rows = [VectorRecord(id=f"i{r}", vector=vectors[r], metadata={"row": r, "shard": r % 20}) for r in range(1_500)]
    store = LanceDBStore(uri=tmp_path, index_threshold=index_threshold, num_partitions=8, nprobes=8)
    items = store.open("items", dim=DIM, provenance={})
    items.upsert(rows)
    from_table = LanceDBStore(uri=tmp_path, memory_index=False).open("items", dim=DIM, provenance={})
    shard = {"shard": 3}  # 5% of the rows
    for query in vectors[[3, 10, 777]]:
        exact = [r for r in exact_ids([row.id for row in rows], vectors, query, 1_500) if int(r[1:]) % 20 == 3]
        mine, twice = items.search(query, 10, shard), items.search(query, 10, shard)  # the second: cached rows
        assert [hit.id for hit in mine] == [hit.id for hit in twice] == exact[:10]
        assert [hit.id for hit in from_table.search(query, 10, shard)] == exact[:10]
        assert all(hit.metadata["shard"] == 3 for hit in mine)
    items.upsert([VectorRecord(id="i4", vector=vectors[3], metadata={"row": 4, "shard": 3})])  # now passes
    items.upsert([VectorRecord(id="i63", vector=vectors[63], metadata={"row": 63, "shard": 5})])  # no longer
    found = [hit.id for hit in items.search(vectors[3], 40, shard)]
    assert found[:2] == ["i3", "i4"] or found[:2] == ["i4", "i3"]
    assert "i63" not in found and len(found) == 40
    assert items.search(vectors[3], 5, {"shard": 99}) == []


def test_another_writer_is_seen_within_read_consistency(tmp_path: Path) -> None:
    """A second store on the same directory stands in for another process."""
    vectors = unit_vectors(200, seed=5)
    reader = LanceDBStore(uri=tmp_path, read_consistency_s=0).open("items", dim=DIM, provenance={})
    reader.upsert(records(vectors[:100]))
    assert reader.search(vectors[150], 1)[0].id != "i150"
    writer = LanceDBStore(uri=tmp_path).open("items", dim=DIM, provenance={})
    writer.upsert(records(vectors[100:], start=100))
    writer.delete(["i0"])
    assert reader.search(vectors[150], 1)[0].id == "i150"
    assert "i0" not in {hit.id for hit in reader.search(vectors[0], 20)}
    reader.upsert(records(vectors[:1], tag="back"))  # a write of its own after the other's
    assert reader.search(vectors[0], 1)[0].metadata == {"tag": "back", "row": 0}


def test_growing_past_the_threshold_switches_to_ivf_with_good_recall(tmp_path: Path) -> None:
    vectors = unit_vectors(6_000, seed=6, dim=32)
    store = LanceDBStore(uri=tmp_path, index_threshold=2_000)
    items = store.open("items", dim=32, provenance={})
    items.upsert(records(vectors[:1_000]))
    items.search(vectors[0], 10)
    assert items._memory is not None and items._memory.partitions == 0  # exact while small
    for start in range(1_000, 6_000, 1_000):
        items.upsert(records(vectors[start : start + 1_000], start=start))
    ids = [f"i{row}" for row in range(6_000)]
    queries = unit_vectors(50, seed=7, dim=32)
    recalls = [len({h.id for h in items.search(q, 10)} & set(exact_ids(ids, vectors, q, 10))) / 10 for q in queries]
    assert items._memory.partitions == auto_num_partitions(6_000)  # rebuilt as IVF on all rows
    assert np.mean(recalls) >= 0.95
    store.close()


def test_searches_and_writes_from_many_threads(tmp_path: Path) -> None:
    vectors = unit_vectors(1_200, seed=8)
    items = LanceDBStore(uri=tmp_path).open("items", dim=DIM, provenance={})
    items.upsert(records(vectors[:200]))
    errors: list[BaseException] = []

    def write(part: int) -> None:
        try:
            start = 200 + part * 250
            for offset in range(0, 250, 50):
                items.upsert(records(vectors[start + offset : start + offset + 50], start=start + offset))
        except BaseException as exc:
            errors.append(exc)

    def search(seed: int) -> None:
        try:
            for query in unit_vectors(40, seed=seed):
                assert len(items.search(query, 10)) == 10
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(part,)) for part in range(4)]
    threads += [threading.Thread(target=search, args=(seed,)) for seed in range(10, 14)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    ids = [f"i{row}" for row in range(1_200)]
    for query in vectors[[5, 700, 1_100]]:
        assert [hit.id for hit in items.search(query, 10)] == exact_ids(ids, vectors, query, 10)


def test_an_explicit_create_index_makes_the_memory_index_ivf_too(tmp_path: Path) -> None:
    vectors = unit_vectors(1_000, seed=9)
    items = LanceDBStore(uri=tmp_path, index_threshold=10**6, num_partitions=8).open("items", dim=DIM, provenance={})
    items.upsert(records(vectors))
    assert items.search(vectors[1], 1)[0].id == "i1"
    assert items._memory is not None and items._memory.partitions == 0
    assert items.create_index()
    assert items.search(vectors[2], 1)[0].id == "i2"
    assert items._memory is not None and items._memory.partitions == 8


def test_a_foreign_commit_merged_into_our_write_is_not_missed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Another writer commits after this store checked the version and before its own commit,
    and Lance merges the two without a conflict: the in-memory index must not stay behind."""
    from polyrec.plugins.stores.lancedb.collection import LanceCollection

    vectors = unit_vectors(80, seed=10)
    mine = LanceDBStore(uri=tmp_path, read_consistency_s=3600).open("items", dim=DIM, provenance={})
    mine.upsert(records(vectors[:50]))
    assert mine.search(vectors[0], 1)[0].id == "i0"  # the in-memory index is built
    other = LanceDBStore(uri=tmp_path).open("items", dim=DIM, provenance={})
    commit = LanceCollection._commit

    def racing(self: LanceCollection, writing: Any, what: str) -> Any:
        if self is mine:
            other.upsert(records(vectors[50:60], start=50))
        return commit(self, writing, what)

    monkeypatch.setattr(LanceCollection, "_commit", racing)
    mine.upsert(records(vectors[60:61], start=60))
    assert mine.count() == 61
    assert mine.search(vectors[55], 1)[0].id == "i55"
    assert mine.search(vectors[60], 1)[0].id == "i60"
