"""The ingest writes each write group in a background thread while the next group encodes
(engine/ingest.py, ``_WriteBehind``). These tests make the writes of one group fail while the
next one is being encoded, and check that nothing of the later groups is stored, that the
error raised is the one an in-order ingest meets first, and that a re-ingest completes it."""

from __future__ import annotations

import sys
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from engine_fakes import BUILTINS_USED, ENCODED

from polyrec.contracts import PolyrecError, StoreError, VectorRecord
from polyrec.engine.engine import Engine

#: chunks of 4 make write groups of 4, 8 and 16 items (see ingest.write_groups)
CHUNK = 4
GROUPS = [range(0, 4), range(4, 12), range(12, 28)]


def make_engine(folder: Path) -> Engine:
    import engine_fakes

    from polyrec.engine.plugins import build_plugin_manager

    extra = [("engine-fakes", engine_fakes), ("write-behind", sys.modules[__name__])]
    manager = build_plugin_manager(builtins=BUILTINS_USED, extra=extra, load_entry_points=False)
    config = {
        "store": {"plugin": "lancedb", "uri": str(folder / "db")},
        "encoders": {"title": {"plugin": "bag-of-words"}, "blurb": {"plugin": "bag-of-words", "field": "blurb"}},
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Engine.from_config(config, plugin_manager=manager)


def catalog() -> list[dict[str, Any]]:
    return [{"id": f"m{i}", "title": f"title word{i}", "blurb": f"blurb text{i}"} for i in range(28)]


def texts_of(group: int) -> set[str]:
    return {f"title word{i}" for i in GROUPS[group]} | {f"blurb text{i}" for i in GROUPS[group]}


def ids_of(group: int) -> set[str]:
    return {f"m{i}" for i in GROUPS[group]}


def stored_ids(engine: Engine) -> dict[str, set[str]]:
    """The ids in each collection (``items`` and every field collection)."""
    layout = engine.assembly.layout
    everything = [f"m{i}" for i in range(28)]
    found = {"items": {record.id for record in layout.items().get(everything)}}
    for encoder in engine.assembly.encoders.values():
        found[encoder.slot] = {record.id for record in layout.field(encoder).get(everything)}
    return found


def wait_until(condition: Callable[[], bool], seconds: float = 20.0) -> bool:
    """Poll ``condition`` (not an assertion on time: it only gives the encode thread its chance)."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def failing_items_upsert(engine: Engine, group: int, seen: list[bool]) -> None:
    """Make ``items``' upsert of ``group`` raise, once the next group's encode has begun."""
    collection = engine.assembly.layout.items()
    upsert = collection.upsert

    def fail(records: Sequence[VectorRecord]) -> None:
        if {record.id for record in records} & ids_of(group):
            seen.append(wait_until(lambda: bool(texts_of(group + 1) & set(ENCODED))))
            raise StoreError("disk full (test)")
        upsert(records)

    collection.upsert = fail  # type: ignore[method-assign]


@pytest.fixture(autouse=True)
def _clean_encoded() -> None:
    ENCODED.clear()


def test_a_write_error_stops_the_ingest_and_later_groups_store_nothing(tmp_path: Path) -> None:
    engine = make_engine(tmp_path)
    overlapped: list[bool] = []
    failing_items_upsert(engine, 1, overlapped)
    with pytest.raises(StoreError, match="disk full"):
        engine.ingest(catalog(), chunk_size=CHUNK)
    assert overlapped == [True]  # group 2 was encoding while group 1's write failed
    stored = stored_ids(engine)
    assert stored["items"] == ids_of(0)
    for slot in ("title", "blurb"):  # group 1's field writes ran before the failing one; group 2 wrote nothing
        assert stored[slot] == ids_of(0) | ids_of(1)

    engine.close()
    ENCODED.clear()
    engine = make_engine(tmp_path)  # a new run (the old engine would reuse group 2's vectors from memory)
    report = engine.ingest(catalog(), chunk_size=CHUNK)
    assert (report.stored, report.unchanged, report.failures) == (24, 4, [])
    assert report.encoded == 2 * len(GROUPS[2])  # group 1 reuses its stored field vectors, group 2 encodes
    assert set(ENCODED) == texts_of(2)
    assert stored_ids(engine)["items"] == ids_of(0) | ids_of(1) | ids_of(2)


def test_the_earlier_groups_write_error_wins_over_the_next_groups_encode_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = make_engine(tmp_path)
    overlapped: list[bool] = []
    failing_items_upsert(engine, 1, overlapped)
    encoder = engine.assembly.encoders["title"].encoder
    encode = encoder.encode

    def model_gone(batch: Sequence[Any]) -> Any:
        if set(batch) & texts_of(2):
            ENCODED.extend(batch)  # seen by the failing write: the encode of group 2 has begun
            raise PolyrecError("model files vanished (test)")
        return encode(batch)

    monkeypatch.setattr(encoder, "encode", model_gone)
    with pytest.raises(StoreError, match="disk full") as raised:
        engine.ingest(catalog(), chunk_size=CHUNK)
    assert overlapped == [True]
    assert isinstance(raised.value.__context__, PolyrecError)  # the later error is kept as the context
    assert stored_ids(engine)["items"] == ids_of(0)


def test_an_encode_error_of_the_next_group_leaves_the_earlier_groups_fully_stored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = make_engine(tmp_path)
    encoder = engine.assembly.encoders["blurb"].encoder
    encode = encoder.encode

    def model_gone(batch: Sequence[Any]) -> Any:
        if set(batch) & texts_of(2):
            raise PolyrecError("model files vanished (test)")
        return encode(batch)

    monkeypatch.setattr(encoder, "encode", model_gone)
    with pytest.raises(PolyrecError, match="vanished"):
        engine.ingest(catalog(), chunk_size=CHUNK)
    stored = stored_ids(engine)
    assert stored == {"items": ids_of(0) | ids_of(1), "title": ids_of(0) | ids_of(1), "blurb": ids_of(0) | ids_of(1)}


def test_an_id_repeated_in_the_next_group_waits_for_the_write_before_it(tmp_path: Path) -> None:
    """What is stored for an id is read before encoding it: with the id's earlier write still
    running, that read would miss it, and the later copy's missing blurb would leave the earlier
    blurb vector behind."""
    engine = make_engine(tmp_path)
    collection = engine.assembly.layout.items()
    upsert = collection.upsert

    def slow(records: Sequence[VectorRecord]) -> None:
        if {record.id for record in records} & ids_of(1):
            time.sleep(0.5)  # group 1's write still runs when group 2 is planned (without the wait)
        upsert(records)

    collection.upsert = slow  # type: ignore[method-assign]
    rows = catalog()
    rows[20] = {**rows[5], "blurb": None}  # m5 of group 1 again in group 2, now without a blurb
    report = engine.ingest(rows, chunk_size=CHUNK)
    assert report.failures == []
    stored = stored_ids(engine)
    assert "m5" in stored["items"] and "m5" in stored["title"]
    assert "m5" not in stored["blurb"]
