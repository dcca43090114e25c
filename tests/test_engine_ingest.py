"""Engine ingest: readers, metadata, the content-hash cache, missing fields, rebuilds."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from engine_fakes import ENCODED, plugin_manager

from polyrec.contracts import Item, ProvenanceMismatchError
from polyrec.engine.engine import Engine
from polyrec.engine.readers import read_events, read_items


@pytest.fixture(autouse=True)
def _clear_spy() -> None:
    ENCODED.clear()


def make_rows(n: int = 12) -> list[dict]:
    topics = ["space rocket orbit", "cooking pasta sauce", "jazz saxophone trumpet"]
    return [
        {"id": f"{i:03d}", "title": f"{topics[i % 3]} number {i}", "topic": topics[i % 3].split()[0], "year": 1990 + i}
        for i in range(n)
    ]


def config(store: dict | None = None, **encoder: object) -> dict:
    return {
        "store": store or {"plugin": "memory"},
        "encoders": {"title": {"plugin": "bag-of-words", **encoder}},
    }


def engine_for(cfg: dict, tmp_path: Path | None = None) -> Engine:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # built-ins other engineers have not written yet
        return Engine.from_config(cfg, plugin_manager=plugin_manager(), base_dir=tmp_path)


def lancedb_config(path: Path, **encoder: object) -> dict:
    pytest.importorskip("polyrec.plugins.stores.lancedb", reason="the lancedb store plugin is not written yet")
    return config({"plugin": "lancedb", "uri": str(path)}, **encoder)


def require_drop(engine: Engine) -> None:
    from polyrec.contracts import VectorStore

    if type(engine.assembly.store).drop is VectorStore.drop:
        pytest.skip(f"store {engine.assembly.store.name!r} does not implement VectorStore.drop yet")


# -- readers ------------------------------------------------------------------------------


def write_source(kind: str, rows: list[dict], tmp_path: Path) -> object:
    frame = pd.DataFrame(rows)
    if kind == "jsonl":
        path = tmp_path / "items.jsonl"
        path.write_text("".join(json.dumps(row) + "\n" for row in rows))
        return path
    if kind == "csv":
        path = tmp_path / "items.csv"
        frame.to_csv(path, index=False)
        return path
    if kind == "parquet":
        path = tmp_path / "items.parquet"
        frame.to_parquet(path)
        return path
    if kind == "dataframe":
        return frame
    if kind == "items":
        return (Item(id=row["id"], fields={k: v for k, v in row.items() if k != "id"}) for row in rows)
    return iter(rows)  # dicts


@pytest.mark.parametrize("kind", ["jsonl", "csv", "parquet", "dataframe", "items", "dicts"])
def test_ingest_from_every_source_kind(kind: str, tmp_path: Path) -> None:
    rows = make_rows(12)
    engine = engine_for(config())
    report = engine.ingest(write_source(kind, rows, tmp_path), chunk_size=5)
    assert (report.stored, report.failures) == (12, [])
    assert report.encoded == 12
    ids, vectors = engine.item_matrix()
    assert ids == sorted(row["id"] for row in rows)  # "007" stays a string id, not 7
    assert vectors.shape == (12, 64)
    hit = engine.similar("003", k=1, filter={"year": {"$gte": 1990}})[0]
    assert hit.metadata["year"] == int(hit.metadata["year"])  # numbers stay numbers: filterable
    only_1995 = engine.similar("000", k=5, filter={"year": 1995})
    assert [r.item for r in only_1995] == ["005"]


def test_readers_stream_in_bounded_chunks() -> None:
    pulled = []

    def rows():
        for i in range(10_000):
            pulled.append(i)
            yield {"id": str(i), "title": "x"}

    chunks = read_items(rows(), chunk_size=100)
    first = next(chunks)
    assert len(first.items) == 100
    assert len(pulled) == 100  # nothing read ahead: memory stays flat whatever the catalog size
    assert sum(len(chunk.items) for chunk in chunks) == 9_900


def test_parquet_directory_and_csv_chunks_are_streamed(tmp_path: Path) -> None:
    folder = tmp_path / "catalog"
    folder.mkdir()
    for part in range(3):
        rows = [{**row, "id": f"{row['id']}-{part}"} for row in make_rows(10)]
        pd.DataFrame(rows).to_parquet(folder / f"{part}.parquet")
    assert sum(len(c.items) for c in read_items(folder, chunk_size=7)) == 30
    pd.DataFrame(make_rows(25)).to_csv(tmp_path / "items.csv", index=False)
    sizes = [len(chunk.items) for chunk in read_items(tmp_path / "items.csv", chunk_size=10)]
    assert sizes == [10, 10, 5]


def test_bad_catalog_rows_fail_alone(tmp_path: Path) -> None:
    path = tmp_path / "items.jsonl"
    lines = [json.dumps({"id": "a", "title": "space rocket"}), "{not json", json.dumps({"title": "no id"}), ""]
    lines.append(json.dumps({"id": "b", "title": "jazz trumpet"}))
    path.write_text("\n".join(lines) + "\n")
    report = engine_for(config()).ingest(path)
    assert report.stored == 2
    reasons = {failure.item_id: failure.reason for failure in report.failures}
    assert set(reasons) == {"<line 2>", "<line 3>"}
    assert "invalid JSON" in reasons["<line 2>"]
    assert "id" in reasons["<line 3>"]


def test_unsupported_file_type_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "items.xml"
    path.write_text("<items/>")
    with pytest.raises(Exception, match=r"unsupported file type '\.xml'"):
        engine_for(config()).ingest(path)


# -- missing fields and metadata ----------------------------------------------------------


def test_missing_field_is_not_an_error_but_no_field_at_all_is() -> None:
    cfg = {
        "store": {"plugin": "memory"},
        "encoders": {"title": {"plugin": "bag-of-words"}, "blurb": {"plugin": "bag-of-words", "dim": 16}},
    }
    engine = engine_for(cfg)
    report = engine.ingest(
        [
            {"id": "both", "title": "space rocket", "blurb": "a long trip"},
            {"id": "title-only", "title": "jazz night", "blurb": None},
            {"id": "nothing", "genre": "drama"},
        ]
    )
    assert report.stored == 2
    assert [(f.item_id, f.field) for f in report.failures] == [("nothing", None)]
    assert "no encodable field" in report.failures[0].reason
    records = {r.id: r for r in engine.assembly.layout.items().get(["both", "title-only"])}
    assert records["both"].metadata["_missing"] == []
    assert records["title-only"].metadata["_missing"] == ["blurb"]
    assert engine.assembly.layout.field(engine.assembly.encoders["blurb"]).count() == 1


def test_all_zero_vector_counts_as_missing_field() -> None:
    engine = engine_for(config())
    report = engine.ingest([{"id": "quiet", "title": "silence"}, {"id": "loud", "title": "space rocket"}])
    assert report.stored == 1
    assert report.failures[0].item_id == "quiet"


def test_metadata_keeps_filterable_values_only() -> None:
    engine = engine_for(config())
    engine.ingest(
        [
            {
                "id": "x",
                "title": "space rocket",
                "tags": ["a", "b"],
                "score": 4.5,
                "raw": b"\x00\x01",
                "matrix": np.eye(2),
                "nested": {"k": 1},
                "nan": float("nan"),
                "_private": "reserved",
            }
        ]
    )
    metadata = engine.assembly.layout.items().get(["x"])[0].metadata
    public = {k: v for k, v in metadata.items() if not k.startswith("_")}
    assert public == {"title": "space rocket", "tags": ["a", "b"], "score": 4.5}


def test_derived_text_field_is_encoded_but_not_stored() -> None:
    cfg = config()
    cfg["encoders"]["title"]["field"] = "text"
    cfg["derived"] = {"text": ["title", "topic"]}
    engine = engine_for(cfg)
    report = engine.ingest([{"id": "a", "title": "rocket", "topic": "space"}])
    assert report.stored == 1
    assert ENCODED == ["title: rocket\ntopic: space"]
    assert "text" not in engine.assembly.layout.items().get(["a"])[0].metadata
    composed_already = {"id": "a", "title": "rocket", "topic": "space", "text": "title: rocket\ntopic: space"}
    assert engine.ingest([composed_already]).unchanged == 1


# -- the content-hash cache ---------------------------------------------------------------


def test_second_ingest_encodes_nothing_and_changes_cost_only_themselves() -> None:
    engine = engine_for(config())
    rows = make_rows(20)
    first = engine.ingest(rows, chunk_size=8)
    assert first.encoded == 20 and len(ENCODED) == 20

    again = engine.ingest(rows, chunk_size=8)
    assert (again.encoded, again.unchanged, again.stored, again.cached) == (0, 20, 0, 20)
    assert len(ENCODED) == 20

    rows[3] = {**rows[3], "title": "completely new words here"}
    rows[4] = {**rows[4], "year": 1800}  # metadata only: stored again, not encoded
    changed = engine.ingest(rows, chunk_size=8)
    assert (changed.encoded, changed.stored, changed.unchanged) == (1, 2, 18)
    assert ENCODED[-1] == "completely new words here"
    assert engine.similar("005", k=20, filter={"year": 1800})[0].item == "004"


def test_duplicate_texts_in_one_catalog_are_cached_by_content() -> None:
    engine = engine_for(config())
    engine.ingest([{"id": "a", "title": "same words"}])
    report = engine.ingest([{"id": "a", "title": "same words", "extra": 1}, {"id": "b", "title": "other words"}])
    assert report.encoded == 1  # "a" changed metadata only; its vector came from the cache
    assert report.cached == 1


def test_repeated_contents_in_a_catalog_are_encoded_once() -> None:
    engine = engine_for(config())
    titles = ["red apple", "green pear", "red apple", "red apple", "blue plum", "green pear", "red apple"]
    rows = [{"id": f"i{i}", "title": title} for i, title in enumerate(titles)]
    report = engine.ingest(rows, chunk_size=4)  # repeats inside a chunk and across chunks
    assert sorted(ENCODED) == ["blue plum", "green pear", "red apple"]
    assert (report.stored, report.encoded, report.cached, report.failures) == (7, 3, 4, [])
    vectors = {record.id: record.vector for record in engine.assembly.layout.items().get(["i0", "i3", "i6", "i1"])}
    np.testing.assert_array_equal(vectors["i0"], vectors["i6"])
    assert not np.allclose(vectors["i0"], vectors["i1"])


def test_a_repeated_content_that_fails_fails_every_item_that_has_it() -> None:
    engine = engine_for(config())
    rows = [
        {"id": "a", "title": "explode now"},
        {"id": "b", "title": "fine words"},
        {"id": "c", "title": "explode now"},
    ]
    report = engine.ingest(rows)
    assert report.stored == 1
    assert sorted(failure.item_id for failure in report.failures) == ["a", "c"]
    assert all(failure.field == "title" and failure.plugin == "bag-of-words" for failure in report.failures)


def test_changed_model_raises_then_rebuild_reencodes(tmp_path: Path) -> None:
    rows = make_rows(6)
    with engine_for(lancedb_config(tmp_path / "db")) as engine:
        engine.ingest(rows)
    with engine_for(lancedb_config(tmp_path / "db", salt="v2")) as engine:
        with pytest.raises(ProvenanceMismatchError, match="rebuild"):
            engine.ingest(rows)
        require_drop(engine)
        ENCODED.clear()
        report = engine.ingest(rows, rebuild=True)
        assert (report.stored, report.encoded) == (6, 6)
    with engine_for(lancedb_config(tmp_path / "db", salt="v2")) as engine:
        assert engine.ingest(rows).encoded == 0


def test_fusion_change_refuses_without_encoding(tmp_path: Path) -> None:
    cfg = lancedb_config(tmp_path / "db")
    cfg["encoders"]["blurb"] = {"plugin": "bag-of-words", "dim": 16}
    rows = [{**row, "blurb": f"blurb {row['topic']}"} for row in make_rows(6)]
    with engine_for(cfg) as engine:
        engine.ingest(rows)
        before = engine.item_matrix()[1]
    cfg["fusion"] = {"plugin": "weighted-concat", "weights": {"blurb": 0.0}}
    ENCODED.clear()
    with engine_for(cfg) as engine:
        require_drop(engine)
        report = engine.ingest(rows)
        ids, after = engine.item_matrix()
    assert report.encoded == 0 and ENCODED == []
    assert len(ids) == 6
    assert not np.allclose(before, after)
    assert np.allclose(after[:, 64:], 0.0)  # the blurb block is weighted out


# -- events -------------------------------------------------------------------------------


def test_events_from_csv_with_mapped_columns(tmp_path: Path) -> None:
    path = tmp_path / "events.csv"
    pd.DataFrame(
        {"uid": ["007", "007", "8"], "iid": ["a", "b", "ghost"], "ts": [2.0, 1.0, 3.0], "stars": [5, 3, 1]}
    ).to_csv(path, index=False)
    cfg = config()
    cfg["columns"] = {"user": "uid", "item": "iid", "timestamp": "ts", "value": "stars"}
    engine = engine_for(cfg)
    assert engine.add_events(path) == 3  # "ghost" is not in the catalog (yet): accepted
    events = engine.assembly.store.events().read("007")
    assert [(e.item, e.timestamp, e.value) for e in events] == [("a", 2.0, 5.0), ("b", 1.0, 3.0)]


def test_event_timestamps_may_be_iso_strings() -> None:
    from polyrec.contracts import ColumnMapping

    events = next(read_events([{"user": "u", "item": "i", "timestamp": "2024-01-02T03:04:05+00:00"}], ColumnMapping()))
    assert events[0].timestamp == pytest.approx(1704164645.0)
