"""Bulk writes into LanceDB: an ingest of many chunks writes its rows about once.

Before ``Collection.bulk_writes`` an ingest upserted each 256-item chunk on its own, and
each upsert kept the index up: the index was rebuilt at each growth step, and folding new
rows into it compacted (rewrote) every fragment, so a 1M-item store wrote ~10x its data.
These tests count table versions, data files and bytes on disk: no timings.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
from engine_fakes import plugin_manager

from polyrec.engine.engine import Engine
from polyrec.engine.ingest import write_groups
from polyrec.engine.readers import ItemChunk

pytest.importorskip("lancedb")
lance = pytest.importorskip("lance")

TOPICS = ["space rocket orbit", "cooking pasta sauce", "jazz saxophone trumpet", "garden tomato soil"]


def rows(n: int, version: str = "") -> list[dict]:
    return [
        {"id": f"{i:05d}", "title": f"{TOPICS[i % 4]} word{i % 97} item{i}{version}", "topic": TOPICS[i % 4][:4]}
        for i in range(n)
    ]


def engine_at(path: Path, index_threshold: int) -> Engine:
    config = {
        "store": {"plugin": "lancedb", "uri": str(path), "index_threshold": index_threshold},
        "encoders": {"title": {"plugin": "bag-of-words"}},
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Engine.from_config(config, plugin_manager=plugin_manager())


def data_bytes(table: Path) -> tuple[int, int]:
    """Bytes of every data file under ``table``, and of those its latest version reads."""
    dataset = lance.dataset(str(table))
    live = {Path(data_file.path).name for fragment in dataset.get_fragments() for data_file in fragment.data_files()}
    files = list((table / "data").iterdir())
    return sum(f.stat().st_size for f in files), sum(f.stat().st_size for f in files if f.name in live)


def test_a_multi_chunk_ingest_writes_rows_once_and_builds_the_index_once(tmp_path: Path) -> None:
    engine = engine_at(tmp_path / "db", index_threshold=1000)
    report = engine.ingest(rows(3000), chunk_size=100)  # 30 reader chunks
    assert report.stored == 3000 and not report.failures
    for name in ("items", "field__title"):
        table = tmp_path / "db" / f"{name}.lance"
        dataset = lance.dataset(str(table))
        assert dataset.count_rows() == 3000
        # write groups of 100, 200, 400, 800, 1500 items: 5 appends, then the index once
        assert len(dataset.get_fragments()) == 5
        assert len(dataset.versions()) <= 12, name  # one per chunk and upkeep step before: 70+
        on_disk, live = data_bytes(table)
        assert on_disk == live, name  # nothing rewritten: no data file the latest version left behind
    info = engine.assembly.layout.items().index_info
    assert info is not None and info["trained_rows"] == 3000  # built once, on every row (was at 1000)
    hits = engine.assembly.layout.items().search(np.asarray(engine.assembly.layout.items().get(["00007"])[0].vector), 5)
    assert hits[0].id == "00007"
    engine.close()


def test_re_ingest_and_changes_keep_upsert_by_id(tmp_path: Path) -> None:
    engine = engine_at(tmp_path / "db", index_threshold=1000)
    engine.ingest(rows(1500), chunk_size=100)
    again = engine.ingest(rows(1500), chunk_size=100)
    assert again.unchanged == 1500 and again.stored == 0
    changed = rows(1500)[:1200] + rows(1500, version=" new")[1200:]
    report = engine.ingest(changed, chunk_size=100)
    assert report.stored == 300 and report.unchanged == 1200
    items = engine.assembly.layout.items()
    assert items.count() == 1500  # replaced by id, not added
    assert lance.dataset(str(tmp_path / "db" / "items.lance")).count_rows() == 1500
    engine.close()


def test_a_bad_item_fails_alone_inside_a_group(tmp_path: Path) -> None:
    engine = engine_at(tmp_path / "db", index_threshold=10_000)
    catalog = rows(600)
    catalog[450]["title"] = "nanvalue"  # bag-of-words: a NaN vector for this one item
    report = engine.ingest(catalog, chunk_size=100)
    assert [failure.item_id for failure in report.failures] == ["00450"]
    assert report.stored == 599
    assert engine.assembly.layout.items().get(["00450"]) == []
    assert len(engine.assembly.layout.items().get(["00449", "00451"])) == 2
    engine.close()


def test_write_groups_double_up_to_the_cap() -> None:
    chunks = [ItemChunk(items=[object()] * 100) for _ in range(30)]  # type: ignore[list-item]
    sizes = [len(group.items) for group in write_groups(chunks, most=500)]
    assert sizes == [100, 200, 400, 500, 500, 500, 500, 300]
    assert sum(sizes) == 3000
