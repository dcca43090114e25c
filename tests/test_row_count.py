"""count_rows: the progress bar's total for ingest, from real files of each format."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from polyrec.engine.row_count import count_rows


def test_rows_of_each_format(tmp_path: Path) -> None:
    (tmp_path / "a.jsonl").write_text('{"id": 1}\n{"id": 2}\n')
    (tmp_path / "b.jsonl").write_text('{"id": 1}\n{"id": 2}')  # no line break at the end
    (tmp_path / "c.csv").write_text("id,title\n1,a\n2,b\n3,c\n")
    (tmp_path / "d.tsv").write_text("id\ttitle\n")
    (tmp_path / "empty.csv").write_text("")
    pq.write_table(pa.table({"id": list(range(7))}), tmp_path / "e.parquet")
    assert count_rows(tmp_path / "a.jsonl") == 2
    assert count_rows(str(tmp_path / "b.jsonl")) == 2
    assert count_rows(tmp_path / "c.csv") == 3
    assert count_rows(tmp_path / "d.tsv") == 0
    assert count_rows(tmp_path / "empty.csv") == 0
    assert count_rows(tmp_path / "e.parquet") == 7


def test_no_total_when_it_is_not_cheap_or_not_a_file(tmp_path: Path) -> None:
    assert count_rows(tmp_path) is None  # a dataset directory
    assert count_rows(tmp_path / "missing.jsonl") is None
    assert count_rows([{"id": "a"}]) is None
    (tmp_path / "x.json").write_text("[]")
    assert count_rows(tmp_path / "x.json") is None
