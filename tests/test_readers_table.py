"""One reader stack: the evaluation loaders read whole tables through the engine's readers."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from polyrec.contracts import ColumnMapping
from polyrec.engine.evaluate.loaders import load_generic
from polyrec.engine.readers import read_items, read_table


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
