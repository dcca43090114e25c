"""A collection that was empty when an ingest run first read it holds only the ids the run has
sent to be written since (engine/ingest.py, ``_RunWrites``): a first ingest looks nothing up
(neither the items' stored hashes nor a slot's cached vectors), an id repeated in a later
group is still looked up, and a store that held rows is read as before. Real LanceDB."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from engine_fakes import ENCODED

# the same engine (LanceDB, two bag-of-words slots) and chunks of 4: write groups of 4, 8 and 16 items
from test_ingest_write_behind import CHUNK, make_engine

from polyrec.contracts import Collection, VectorRecord
from polyrec.engine import ingest
from polyrec.engine.engine import Engine


def catalog(n: int = 28) -> list[dict[str, Any]]:
    # m3 and m17 share a title: one encode for both, as before
    return [
        {"id": f"m{i}", "title": "same title" if i in (3, 17) else f"title word{i}", "blurb": f"blurb {i}", "n": i}
        for i in range(n)
    ]


def collections(engine: Engine) -> dict[str, Collection]:
    layout = engine.assembly.layout
    found = {"items": layout.items()}
    for encoder in engine.assembly.encoders.values():
        found[encoder.slot] = layout.field(encoder)
    return found


def spy_gets(engine: Engine) -> dict[str, list[list[str]]]:
    """The ids of every ``get`` each collection is asked for from now on."""
    asked: dict[str, list[list[str]]] = {}
    for name, collection in collections(engine).items():
        asked[name] = []

        def get(ids: Sequence[str], get: Any = collection.get, calls: list[list[str]] = asked[name]) -> Any:
            calls.append(list(ids))
            return get(ids)

        collection.get = get  # type: ignore[method-assign]
    return asked


def stored(engine: Engine) -> dict[str, dict[str, VectorRecord]]:
    ids = [f"m{i}" for i in range(28)]
    return {name: {r.id: r for r in collection.get(ids)} for name, collection in collections(engine).items()}


def same_records(left: dict[str, dict[str, VectorRecord]], right: dict[str, dict[str, VectorRecord]]) -> None:
    assert left.keys() == right.keys()
    for name in left:
        assert left[name].keys() == right[name].keys(), name
        for item_id, record in left[name].items():
            other = right[name][item_id]
            assert record.metadata == other.metadata, (name, item_id)
            np.testing.assert_array_equal(record.vector, other.vector)


@pytest.fixture(autouse=True)
def _clean_encoded() -> None:
    ENCODED.clear()


def test_a_first_ingest_looks_nothing_up_and_stores_what_a_looking_one_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = make_engine(tmp_path / "fresh")
    asked = spy_gets(engine)
    report = engine.ingest(catalog(), chunk_size=CHUNK)
    assert (report.stored, report.unchanged, report.failures) == (28, 0, [])
    assert asked == {"items": [], "title": [], "blurb": []}
    assert ENCODED.count("same title") == 1  # a content repeated in the catalog is still encoded once
    assert (report.encoded, report.cached) == (55, 1)
    fresh = stored(engine)

    # the same ingest with every id looked up, as before _RunWrites: the same records
    monkeypatch.setattr(ingest._RunWrites, "lookup", lambda self, collection, ids: list(ids))
    ENCODED.clear()
    looking = make_engine(tmp_path / "looking")
    asked = spy_gets(looking)
    again = looking.ingest(catalog(), chunk_size=CHUNK)
    assert (again.stored, again.encoded, again.cached, again.failures) == (28, 55, 1, [])
    assert [len(ids) for ids in asked["items"]] == [4, 8, 16]
    same_records(fresh, stored(looking))


def test_an_id_repeated_in_a_later_group_is_looked_up(tmp_path: Path) -> None:
    engine = make_engine(tmp_path)
    asked = spy_gets(engine)
    rows = catalog()
    rows[20] = {**rows[5], "blurb": None}  # m5 of group 1 again in group 2, now without a blurb
    report = engine.ingest(rows, chunk_size=CHUNK)
    assert report.failures == []
    assert asked["items"] == [["m5"]]  # group 2 reads back the one id group 1 wrote
    after = stored(engine)
    assert "m5" in after["items"] and "m5" in after["title"]
    assert "m5" not in after["blurb"]  # its old blurb vector was found, and deleted


def test_a_store_that_held_rows_is_looked_up_as_before(tmp_path: Path) -> None:
    make_engine(tmp_path).ingest(catalog(10), chunk_size=CHUNK)
    ENCODED.clear()
    engine = make_engine(tmp_path)
    asked = spy_gets(engine)
    report = engine.ingest(catalog(), chunk_size=CHUNK)
    assert (report.stored, report.unchanged, report.failures) == (18, 10, [])
    assert [len(ids) for ids in asked["items"]] == [4, 8, 16]
    assert "title word0" not in ENCODED


def test_past_the_most_ids_every_id_is_looked_up_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ingest, "RUN_WRITES_MOST_IDS", 6)  # dropped after group 1 (4) and 2 (8 more)
    engine = make_engine(tmp_path)
    asked = spy_gets(engine)
    rows = catalog()
    rows[20] = {**rows[5], "blurb": None}
    report = engine.ingest(rows, chunk_size=CHUNK)
    assert report.failures == []
    assert [len(ids) for ids in asked["items"]] == [16]  # group 3: every id, as for a store with rows
    assert "m5" not in stored(engine)["blurb"]
