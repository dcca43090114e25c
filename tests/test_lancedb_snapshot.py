"""The LanceDB store's read snapshot (plugins/stores/lancedb/snapshot.py): reads from it give
what LanceDB gives, any write (by this store, another store object or another process) makes
it stale at once, erasure deletes it, and a one-shot reader imports no LanceDB."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from polyrec.contracts import Collection, Event, VectorRecord
from polyrec.plugins.stores.lancedb import LanceDBStore
from polyrec.plugins.stores.lancedb.snapshot import SNAPSHOT_FILE
from polyrec.plugins.stores.lancedb.snapshot_views import SnapshotCollection, SnapshotEventLog

DIM = 8
PROVENANCE = {"test": "snapshot"}
GENRES = ("drama", "comedy", "noir")
FILTERS = [
    None,
    {"genre": "noir"},
    {"year": {"$gte": 2010}},
    {"genre": {"$in": ["drama", "comedy"]}, "year": {"$lt": 2020}},
    {"genre": {"$ne": "drama"}},
    {"rating": {"$gt": 2.5}},
    {"nowhere": 1},
]


def _records(count: int, seed: int = 0) -> list[VectorRecord]:
    rng = np.random.default_rng(seed)
    records = []
    for n in range(count):
        metadata = {"genre": GENRES[n % 3], "year": 2000 + n, "title": f"film {n}", "tags": ["a", f"t{n % 4}"]}
        if n % 5:
            metadata["rating"] = float(n % 7) / 2
        metadata["note"] = None if n % 2 else "kept"
        records.append(VectorRecord(id=f"i{n:02d}", vector=rng.normal(size=DIM).astype(np.float32), metadata=metadata))
    return records


def _events() -> list[Event]:
    events = [Event(user=f"u{n % 4}", item=f"i{(n * 7) % 30:02d}", timestamp=float(n)) for n in range(40)]
    events += [Event(user="u1", item="i03", kind="rating", value=4.5, timestamp=50.0, id="client-9")]
    return events


def _fill(db: Path) -> None:
    store = LanceDBStore(uri=db)
    store.open("items", dim=DIM, provenance=PROVENANCE).upsert(_records(30))
    store.events().append(_events())
    store.close()  # it used LanceDB: it leaves a snapshot


@pytest.fixture
def db(tmp_path: Path) -> Path:
    _fill(tmp_path / "db")
    assert (tmp_path / "db" / SNAPSHOT_FILE).is_file()
    return tmp_path / "db"


def _hits(hits) -> list[tuple[str, dict]]:
    return [(hit.id, hit.metadata) for hit in hits]


def _dump(records) -> list[tuple[str, list[float], dict]]:
    return [(r.id, np.asarray(r.vector).tolist(), r.metadata) for r in records]


def test_reads_from_the_snapshot_equal_lancedb_reads(db: Path) -> None:
    fast, full = LanceDBStore(uri=db), LanceDBStore(uri=db, read_snapshot=False)
    snap, lance = (store.open("items", dim=DIM, provenance=PROVENANCE) for store in (fast, full))
    assert isinstance(snap, SnapshotCollection) and not isinstance(lance, SnapshotCollection)
    ids = ["i05", "nope", "i29", "i05", "i00"]
    assert _dump(snap.get(ids)) == _dump(lance.get(ids))
    assert snap.count() == lance.count() == 30
    assert [_dump(batch) for batch in snap.scan(7)] == [_dump(batch) for batch in lance.scan(7)]
    queries = np.random.default_rng(5).normal(size=(4, DIM)).astype(np.float32)
    for query in queries:
        for filter in FILTERS:
            for k in (1, 5, 40):
                got, want = snap.search(query, k, filter), lance.search(query, k, filter)
                assert _hits(got) == _hits(want), (filter, k)
                assert [h.score for h in got] == [h.score for h in want], (filter, k)
                rows = snap.search_rows(query, k, filter)  # the engine's re-rank read: columns from the snapshot
                for other in (lance.search_rows(query, k, filter), Collection.search_rows(snap, query, k, filter)):
                    assert rows.ids == other.ids and rows.metadata == other.metadata, (filter, k)
                    assert rows.scores.dtype == other.scores.dtype and rows.scores.tolist() == other.scores.tolist()
                    assert rows.vectors.dtype == np.float32 and np.array_equal(rows.vectors, other.vectors)
    empty = snap.search_rows(queries[0], 0)
    assert empty.ids == [] and empty.vectors.shape == (0, DIM)
    with pytest.raises(ValueError, match="items"):  # a malformed query is refused naming the collection
        snap.search_rows(np.zeros(DIM + 1, np.float32), 3)
    snap_log, lance_log = fast.events(), full.events()
    assert isinstance(snap_log, SnapshotEventLog)
    for user in (None, "u0", "u1", "u3", "nobody"):
        assert snap_log.read(user) == lance_log.read(user), user
    assert snap_log.count() == lance_log.count() == 41
    assert snap_log.users() == lance_log.users()
    assert snap_log.item_counts() == lance_log.item_counts()
    assert snap._full is None and snap_log._full is None, "every read came from the snapshot"
    full.close()
    fast.close()


def _write_upsert(db: Path) -> None:
    changed = VectorRecord(id="i04", vector=np.full(DIM, 9.0, np.float32), metadata={"genre": "new"})
    LanceDBStore(uri=db, read_snapshot=False).open("items", dim=DIM, provenance=PROVENANCE).upsert([changed])


def _write_delete(db: Path) -> None:
    LanceDBStore(uri=db, read_snapshot=False).open("items", dim=DIM, provenance=PROVENANCE).delete(["i04"])


def _write_events(db: Path) -> None:
    LanceDBStore(uri=db, read_snapshot=False).events().append([Event(user="u0", item="i04", timestamp=99.0)])


def _write_erase(db: Path) -> None:
    LanceDBStore(uri=db, read_snapshot=False).events().erase_user("u0")


def _write_recreate(db: Path) -> None:
    """Drop the collection and make it again with as many versions: same version number, other files."""
    store = LanceDBStore(uri=db, read_snapshot=False)
    assert store.drop("items")
    store.open("items", dim=DIM, provenance=PROVENANCE).upsert(_records(30, seed=1))


WRITES = {
    "upsert": _write_upsert,
    "delete": _write_delete,
    "events": _write_events,
    "erase": _write_erase,
    "drop and recreate": _write_recreate,
}


@pytest.mark.parametrize("write", list(WRITES))
def test_any_write_of_another_store_makes_the_snapshot_stale(db: Path, write: str) -> None:
    fast = LanceDBStore(uri=db)
    items, log = fast.open("items", dim=DIM, provenance=PROVENANCE), fast.events()
    query = np.ones(DIM, np.float32)
    assert items.get(["i04"]) and items.search(query, 3) and log.read("u0")
    assert items._full is None and log._full is None, "read from the snapshot"
    WRITES[write](db)
    if write == "erase":
        assert not (db / SNAPSHOT_FILE).exists(), "erasure deletes the snapshot: it held the erased events"
    full = LanceDBStore(uri=db, read_snapshot=False)
    lance_items, lance_log = full.open("items", dim=DIM, provenance=PROVENANCE), full.events()
    assert _dump(items.get(["i04", "i05"])) == _dump(lance_items.get(["i04", "i05"]))
    assert _hits(items.search(query, 5)) == _hits(lance_items.search(query, 5))
    assert log.read("u0") == lance_log.read("u0") and log.count() == lance_log.count()


def test_own_writes_go_to_lancedb_and_the_next_close_leaves_a_fresh_snapshot(db: Path) -> None:
    store = LanceDBStore(uri=db)
    items = store.open("items", dim=DIM, provenance=PROVENANCE)
    items.upsert([VectorRecord(id="new", vector=np.ones(DIM, np.float32), metadata={"genre": "new"})])
    assert [r.id for r in items.get(["new"])] == ["new"] and items.count() == 31
    store.events().append([Event(user="u9", item="new")])
    assert [e.item for e in store.events().read("u9")] == ["new"]
    store.close()
    again = LanceDBStore(uri=db)
    reopened = again.open("items", dim=DIM, provenance=PROVENANCE)
    assert isinstance(reopened, SnapshotCollection) and reopened.count() == 31
    assert [e.item for e in again.events().read("u9")] == ["new"] and reopened._full is None


ANOTHER_PROCESS = """
import json, sys
import numpy as np
from polyrec.plugins.stores.lancedb import LanceDBStore
store = LanceDBStore(uri=sys.argv[1])
items = store.open("items", dim={dim}, provenance={provenance!r})
read = {{"item": [r.id for r in items.get(["i07"])], "events": len(store.events().read("u2"))}}
read["lancedb_after_reads"] = "lancedb" in sys.modules or "lance" in sys.modules
if sys.argv[2] == "write":
    items.upsert([type(items.get(["i07"])[0])(id="i07", vector=np.zeros({dim}, np.float32), metadata={{}})])
    read["lancedb_after_write"] = "lancedb" in sys.modules
print(json.dumps(read))
"""


def _another_process(db: Path, action: str) -> dict:
    script = ANOTHER_PROCESS.format(dim=DIM, provenance=PROVENANCE)
    done = subprocess.run(
        [sys.executable, "-c", script, str(db), action], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


def test_a_reader_process_imports_no_lancedb_and_sees_another_process_write(db: Path) -> None:
    fast = LanceDBStore(uri=db)
    items = fast.open("items", dim=DIM, provenance=PROVENANCE)
    before = items.get(["i07"])[0].metadata
    assert _another_process(db, "read") == {"item": ["i07"], "events": 10, "lancedb_after_reads": False}
    wrote = _another_process(db, "write")
    assert wrote["lancedb_after_reads"] is False and wrote["lancedb_after_write"] is True
    assert before and items.get(["i07"])[0].metadata == {}, "this process sees the other's write"


@pytest.mark.parametrize("how", ["past index_threshold", "create_index"])
def test_no_snapshot_for_an_indexed_collection(tmp_path: Path, how: str) -> None:
    # an IVF index makes the full path approximate: a snapshot would answer otherwise
    store = LanceDBStore(uri=tmp_path, index_threshold=20 if how == "past index_threshold" else 10_000)
    items = store.open("items", dim=DIM, provenance=PROVENANCE)
    items.upsert(_records(30))
    if how == "create_index":
        assert items.create_index()
    store.close()
    assert not (tmp_path / SNAPSHOT_FILE).exists()
    assert not isinstance(LanceDBStore(uri=tmp_path).open("items", dim=DIM, provenance=PROVENANCE), SnapshotCollection)


def test_a_store_past_index_threshold_reads_no_rows_for_a_snapshot(db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every table is checked before any is read: a store that cannot have a snapshot does not read
    its whole event log (which sorts first) at every close only to throw it away."""
    from polyrec.plugins.stores.lancedb import snapshot

    read: list[str] = []
    for reader in ("_event_columns", "_collection_columns"):  # write_snapshot swallows errors: record calls
        monkeypatch.setattr(snapshot, reader, lambda *args, reader=reader: read.append(reader))
    assert snapshot.write_snapshot(db, index_threshold=20, max_bytes=1 << 30) is False  # items has 30 rows
    assert read == []
    assert not (db / SNAPSHOT_FILE).exists()


def test_no_snapshot_past_its_size_cap_or_when_switched_off(tmp_path: Path) -> None:
    for name, options in {"capped": {"read_snapshot_mb": 0.0001}, "off": {"read_snapshot": False}}.items():
        store = LanceDBStore(uri=tmp_path / name, **options)
        store.open("items", dim=DIM, provenance=PROVENANCE).upsert(_records(30))
        store.close()
        assert not (tmp_path / name / SNAPSHOT_FILE).exists(), name


def test_lancedb_connects_without_the_rest_clients_api_modules(tmp_path: Path) -> None:
    script = f"""
import sys
from polyrec.plugins.stores.lancedb import LanceDBStore
store = LanceDBStore(uri={str(tmp_path)!r}, read_snapshot=False)
assert store.events().count() == 0
assert "lancedb" in sys.modules and "lance_namespace_urllib3_client.api" not in sys.modules
import lance_namespace_urllib3_client as client  # a name of its __init__: the real one runs now
assert client.TableApi.__name__ == "TableApi" and "lance_namespace_urllib3_client.api" in sys.modules
if sys.version_info < (3, 12):  # lancedb got typing's @override, as on 3.12+; overrides is itself again
    import lancedb.db, overrides, typing_extensions
    assert lancedb.db.override is typing_extensions.override
    assert overrides.override.__module__ == "overrides.overrides"
print("ok")
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr


FLAT_SCAN = """
import json, sys
import numpy as np
from polyrec.plugins.stores.lancedb.flat_scan import top_inner_products
rng = np.random.default_rng(7)
cases = []
for rows in (1, 7, 36, 150):
    for dim in (3, 24):
        for ties in (True, False):  # small integers: many equal scores; normals: none
            vectors = (rng.integers(0, 3, (rows, dim)) if ties else rng.standard_normal((rows, dim))).astype(np.float32)
            query = vectors[rng.integers(0, rows)] if ties else rng.standard_normal(dim).astype(np.float32)
            subset = np.flatnonzero(rng.random(rows) < 0.5)  # a filter's passing rows
            for k in (1, 5, 99, 100, 150):
                for passing in (None, subset):
                    chosen = vectors if passing is None else vectors[passing]
                    scores, found = top_inner_products(chosen, query, k)
                    found = found if passing is None else passing[found]
                    cases.append((vectors, query, k, passing, scores, found))
imported_by_search = "faiss" in sys.modules
from polyrec.plugins.stores.lancedb.memory_index import MemoryANN  # the full path's exact index
different = 0
for vectors, query, k, passing, scores, found in cases:
    rows, dim = vectors.shape
    index = MemoryANN(dim, exact_below=rows + 1, partitions=lambda rows: 1, retrain_growth=2.0)
    ids = [f"i{row}" for row in range(rows)]
    index.rebuild(ids, vectors, ["{}"] * rows)
    allowed = None if passing is None else index.labels([ids[row] for row in passing])
    want_ids, want_scores, _ = index.search(query, k, 0, allowed)
    if [ids[row] for row in found] != want_ids or not np.array_equal(scores.astype(np.float64), want_scores):
        different += 1
print(json.dumps({"cases": len(cases), "different": different, "faiss_imported": imported_by_search}))
"""


def test_the_snapshot_search_kernel_ranks_as_the_full_paths_exact_index_without_importing_faiss() -> None:
    """flat_scan runs faiss's flat kernel from its extension alone: scores bit for bit and the order of
    ties as MemoryANN's exact index (what LanceCollection searches), filtered or not, k below and past
    faiss's heap/reservoir switch (100), while faiss's Python layer stays unimported."""
    done = subprocess.run([sys.executable, "-c", FLAT_SCAN], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.splitlines()[-1]) == {"cases": 160, "different": 0, "faiss_imported": False}
