"""One reader stack: the evaluation loaders read whole tables through the engine's readers."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from polyrec.contracts import ColumnMapping
from polyrec.engine.evaluate.loaders import load_dataset, load_generic
from polyrec.engine.readers import read_events, read_items, read_table


def test_a_table_reads_the_same_rows_as_the_stream(tmp_path: Path) -> None:
    rows = [{"id": "007", "title": "Bond", "tags": ["spy", "car"]}, {"id": "010", "title": "Other", "tags": []}]
    for suffix in (".jsonl", ".json", ".csv", ".parquet"):
        path = tmp_path / f"items{suffix}"
        if suffix == ".jsonl":
            path.write_text("".join(json.dumps(row) + "\n" for row in rows))
        elif suffix == ".json":
            path.write_text(json.dumps(rows))
        elif suffix == ".csv":
            pd.DataFrame(rows).drop(columns="tags").to_csv(path, index=False)
        else:
            pd.DataFrame(rows).to_parquet(path)
        frame = read_table(path, ["id"])
        streamed = [item for chunk in read_items(path) for item in chunk.items]
        assert frame["id"].tolist() == ["007", "010"] == [item.id for item in streamed], suffix
        assert frame["title"].tolist() == [item.fields["title"] for item in streamed], suffix


def test_a_broken_json_line_names_the_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "items.jsonl"
    path.write_text('{"id": "a"}\n{"id": \n')
    with pytest.raises(ValueError, match=r"items\.jsonl: line 2: invalid JSON"):
        read_table(path)
    events = tmp_path / "events.jsonl"
    events.write_text('{"user": "u", "item": "a", "timestamp": 1}\n')
    with pytest.raises(ValueError, match="line 2"):
        load_generic(path, events, ColumnMapping())


@pytest.fixture
def local_time_is_new_york(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.mark.usefixtures("local_time_is_new_york")
def test_a_date_without_a_zone_is_utc_in_ingest_and_evaluation(tmp_path: Path) -> None:
    (tmp_path / "items.csv").write_text("id\na\n")
    (tmp_path / "events.csv").write_text("user,item,timestamp\nu,a,2024-01-01 00:00:00\n")
    streamed = next(read_events(tmp_path / "events.csv", ColumnMapping()))[0].timestamp
    evaluated = load_dataset(tmp_path).events["timestamp"].tolist()[0]
    assert streamed == evaluated == 1704067200.0  # read as local time it was 1704085200
