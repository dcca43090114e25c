"""Filters are bounded before they reach a store (issue 13, defect 1: a 40,000-value ``$in``
crashed the server inside LanceDB), and large ``$in`` lists stay one SQL node in LanceDB."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from polyrec.contracts import ConfigError, VectorRecord, matches, validate_filter
from polyrec.contracts.limits import MAX_FILTER_KEYS, MAX_IN_VALUES
from polyrec.plugins.stores.lancedb import LanceDBStore, where_clause


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"year": {"$in": list(range(MAX_IN_VALUES + 1))}}, f"more than the limit of {MAX_IN_VALUES}"),
        ({f"k{n}": n for n in range(MAX_FILTER_KEYS + 1)}, f"limit of {MAX_FILTER_KEYS}"),
        ({"year": {"$eq": {"nested": {"deeper": 1}}}}, "values must be strings, numbers"),
        ({"year": {"$in": [[1, 2], 3]}}, "values must be strings, numbers"),
        ({"year": [[1]]}, "values must be strings, numbers"),
        ({"title": "x" * 5000}, "exceeds the limit"),
        ({"a\ud800": 1}, "lone surrogate"),
        ({"title": "x\udc00"}, "lone surrogate"),
        ({"k" * 500: 1}, "exceed the limit"),
        (["not", "a", "mapping"], "mapping"),
    ],
)
def test_unbounded_or_invalid_filters_are_refused_naming_the_limit(bad: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        validate_filter(bad)  # type: ignore[arg-type]


def test_filters_at_the_limits_pass() -> None:
    assert validate_filter({"year": {"$in": list(range(MAX_IN_VALUES))}})
    assert len(validate_filter({f"k{n}": n for n in range(MAX_FILTER_KEYS)})) == MAX_FILTER_KEYS
    assert validate_filter({"rating": None, "flag": True, "year": {"$gte": 1.5}})


def test_numeric_in_lists_are_one_in_list_or_ranges_not_or_chains() -> None:
    columns = {"m_year__i", "m_year__f"}
    where = where_clause({"year": {"$in": list(range(5000))}}, columns)
    assert where is not None and " OR " in where and where.count(" OR ") == 1  # int range | float IN
    assert "`m_year__i` >= 0 AND `m_year__i` <= 4999" in where
    sparse = where_clause({"year": {"$in": list(range(0, 20_000, 2))}}, {"m_year__i"})
    assert (
        sparse is not None
        and " OR " not in sparse
        and sparse.startswith("(`m_year__i` IS NOT NULL AND `m_year__i` IN (0, 2, 4")
    )


@pytest.fixture
def collection(tmp_path: Path):
    store = LanceDBStore(uri=tmp_path / "db", memory_index=False)
    items = store.open("items", dim=4, provenance={"encoder": "test"})
    rng = np.random.default_rng(3)
    records = []
    for n in range(60):
        year: int | float | bool = 1990 + n
        if n % 7 == 0:
            year = float(year)
        elif n % 11 == 0:
            year = bool(n % 2)
        records.append(
            VectorRecord(
                id=f"i{n}", vector=rng.normal(size=4).astype(np.float32), metadata={"year": year, "tag": f"t{n % 5}"}
            )
        )
    items.upsert(records)
    yield items, records
    store.close()


@pytest.mark.parametrize(
    "allowed",
    [
        list(range(-5000, 5000)),  # a dense list at the limit: one range
        [*range(0, 4000, 2), 1, 2001.0, 2003.5, True, float("nan"), 2**63, -(2**63), "1995"],
        [1991, 1993, 1995, 2007.0, 2008.0, 2009.0, 2010.0],
    ],
    ids=["dense", "sparse-mixed", "short"],
)
def test_large_in_lists_select_what_matches_selects(collection, allowed: list) -> None:
    items, records = collection
    flt = {"tag": {"$ne": "none"}, "year": {"$in": allowed}}
    expected = {record.id for record in records if matches(record.metadata, flt)}
    assert expected, "the case must select something"
    hits = items.search(np.ones(4, np.float32), k=len(records), filter=flt)
    assert {hit.id for hit in hits} == expected


# -- defect 7: metadata keys that are not filtered on need not become columns ---------------------


def record(item_id: str, **metadata: object) -> VectorRecord:
    return VectorRecord(id=item_id, vector=np.array([1.0, 0.0, 0.0], np.float32), metadata=metadata)


#: the LanceDB table's own reads (not the read snapshot of small stores, where that setting exists)
LANCE_READS = {"read_snapshot": False} if "read_snapshot" in LanceDBStore.Config.model_fields else {}


def typed_column_count(collection) -> int:
    return sum(1 for name in collection._do(collection._table.schema(), "schema").names if "__" in name)


@pytest.mark.parametrize("memory_index", [True, False])
def test_distinct_keys_across_upserts_stop_adding_columns_at_the_bound(tmp_path: Path, memory_index: bool) -> None:
    store = LanceDBStore(uri=tmp_path / "db", max_filter_keys=6, memory_index=memory_index, **LANCE_READS)
    items = store.open("items", dim=3, provenance={"p": "1"})
    items.upsert([record("first", genre="jazz", year=1999)])
    for n in range(40):  # 120 distinct keys, a few per upsert
        items.upsert([record(f"i{n}", genre="rock", **{f"a{n}": n, f"b{n}": "x", f"c{n}": [f"t{n}"]})])
    columns = typed_column_count(items)
    assert columns == 6  # genre, year and the first four keys after them, one type each
    items.upsert([record("late", genre="pop", **{f"z{k}": k for k in range(200)})])
    assert typed_column_count(items) == columns  # a one-item upsert adds no column
    assert items.get(["late"])[0].metadata["z199"] == 199  # every key is kept in the JSON
    assert [hit.id for hit in items.search(np.array([1, 0, 0], np.float32), 5, {"genre": "pop"})] == ["late"]
    assert [hit.id for hit in items.search(np.array([1, 0, 0], np.float32), 5, {"a1": 1})] == ["i1"]
    with pytest.raises(ConfigError, match=r"filter.z3.*not filterable.*first 6 metadata keys.*store.max_filter_keys"):
        items.search(np.array([1, 0, 0], np.float32), 5, {"genre": "pop", "z3": 3})


def test_named_filter_keys_only_and_a_key_named_later_is_filled_in(tmp_path: Path) -> None:
    query = np.array([1, 0, 0], np.float32)
    store = LanceDBStore(uri=tmp_path / "db", filter_keys=["genre"], **LANCE_READS)
    items = store.open("items", dim=3, provenance={"p": "1"})
    items.upsert([record(f"i{n}", genre="jazz" if n % 2 else "rock", year=2000 + n) for n in range(6)])
    assert typed_column_count(items) == 1
    with pytest.raises(ConfigError, match=r"filter.year.*store.filter_keys names the filterable keys \('genre'\)"):
        items.search(query, 5, {"year": 2003})
    assert sorted(hit.id for hit in items.search(query, 5, {"genre": "jazz"})) == ["i1", "i3", "i5"]
    store.close()
    # the operator names ``year`` too: the first write that adds its column fills in the stored rows
    store = LanceDBStore(uri=tmp_path / "db", filter_keys=["genre", "year"], **LANCE_READS)
    items = store.open("items", dim=3, provenance={"p": "1"})
    items.upsert([record("new", genre="pop", year=2010)])
    assert sorted(hit.id for hit in items.search(query, 10, {"year": {"$gte": 2003}})) == ["i3", "i4", "i5", "new"]


def test_filter_keys_are_checked_with_the_config() -> None:
    with pytest.raises(ValidationError, match="max_filter_keys"):
        LanceDBStore(max_filter_keys=-1)
    with pytest.raises(ValidationError, match="filter_keys"):
        LanceDBStore(filter_keys=[f"k{n}" for n in range(300)])


def test_distributed_fragment_writes_keep_the_same_bound(tmp_path: Path) -> None:
    """Ray workers write fragments with the collection's writer: the bound travels with it."""
    from polyrec.plugins.stores.lancedb.bulk import commit_receipts

    store = LanceDBStore(uri=tmp_path / "db", max_filter_keys=3, **LANCE_READS)
    items = store.open("items", dim=3, provenance={"p": "1"})
    writer = items.bulk_writer()
    receipts = [writer.write([record(f"w{n}", genre="rock", **{f"k{n}_{j}": j for j in range(4)})]) for n in range(3)]
    commit_receipts(writer, receipts, [])
    items = LanceDBStore(uri=tmp_path / "db", max_filter_keys=3, **LANCE_READS).open(
        "items", dim=3, provenance={"p": "1"}
    )
    assert typed_column_count(items) == 3 and items.count() == 3
    assert items.get(["w2"])[0].metadata["k2_3"] == 3
