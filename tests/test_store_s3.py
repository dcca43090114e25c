"""The LanceDB store on object storage: ``uri = "s3://bucket/prefix"`` against a real S3 server.

The server is moto's (``moto_server``, from PyPI) on a free 127.0.0.1 port, one per test
session (``tests/s3_fixtures.py``); nothing leaves the machine. Two processes write the same
collections at once: Lance's commit conflicts are retried and the counts are exact.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from s3_fixtures import BUCKET, storage_options

from polyrec.engine.engine import Engine

pytest.importorskip("boto3", reason="moto[server] is not installed (pip install 'polyrec[dev]')")
pytest.importorskip("polyrec_plugin_template", reason="the plugin template is not installed (make install)")


def s3_config(endpoint: str, prefix: str, state_dir: Path) -> dict:
    options = storage_options(endpoint)
    return {
        "store": {
            "plugin": "lancedb",
            "uri": f"s3://{BUCKET}/{prefix}",
            "storage_options": options,
            "state_dir": str(state_dir),
            "read_consistency_s": 0,  # see the other process's commits at once
        },
        "encoders": {"title": {"plugin": "hashing-text", "dim": 32}},
    }


def catalog(ids: range, tag: str) -> list[dict]:
    return [{"id": f"i{i:03d}", "title": f"{tag} title {i}", "group": i % 3, "tag": tag} for i in ids]


def test_the_store_lives_on_s3(s3_endpoint: str, tmp_path: Path) -> None:
    cfg = s3_config(s3_endpoint, "round-trip", tmp_path / "state")
    with Engine.from_config(cfg) as engine:
        report = engine.ingest(catalog(range(30), "first"))
        assert report.stored == 30 and not report.failures
        engine.add_events([{"user": "u1", "item": "i001"}, {"user": "u1", "item": "i002"}])
        query = engine.get_items(["i004"])[0].vector
        hits = engine.assembly.layout.items().search(query, 5, {"group": 1})
        assert hits[0].id == "i004" and all(hit.metadata["group"] == 1 for hit in hits)
        assert [rec.item for rec in engine.recommend("u1", k=3)]
        log = engine.assembly.layout.events()  # counts kept per fragment, read through pylance on S3
        assert (log.users(), log.item_counts()) == (["u1"], {"i001": 1, "i002": 1})
    assert not any(tmp_path.glob("*.lance")), "nothing of the store is written locally"
    with Engine.from_config(cfg) as reopened:  # a new process would see the same
        assert reopened.count() == 30
        assert reopened.event_count() == 2
        assert reopened.get_items(["i004"])[0].metadata["tag"] == "first"
        np.testing.assert_array_equal(reopened.get_items(["i004"])[0].vector, query)


_WRITER = textwrap.dedent(
    """
    import json, sys
    from polyrec.engine.engine import Engine
    cfg, first, last, tag = json.loads(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    rows = [{"id": f"i{i:03d}", "title": f"{tag} title {i}", "group": i % 3, "tag": tag} for i in range(first, last)]
    with Engine.from_config(cfg) as engine:
        for start in range(0, len(rows), 10):  # many small commits: they race the other writer's
            report = engine.ingest(rows[start : start + 10])
            assert report.stored == len(rows[start : start + 10]), report.summary()
        engine.add_events([{"user": tag, "item": row["id"]} for row in rows])
    """
)


def test_two_processes_write_the_same_collections_at_once(s3_endpoint: str, tmp_path: Path) -> None:
    cfg = s3_config(s3_endpoint, "two-writers", tmp_path / "state")
    with Engine.from_config(cfg) as engine:
        assert engine.ingest(catalog(range(40), "seed")).stored == 40  # both writers update some of these
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    # four processes on shared tables, disjoint ids: two replace seeded rows (0-19, 20-39), two add new ones
    ranges = ((0, 20, "a"), (20, 40, "b"), (40, 60, "a"), (60, 80, "b"))
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", _WRITER, json.dumps(cfg), str(first), str(last), tag],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for first, last, tag in ranges
    ]
    for writer in writers:
        output, _ = writer.communicate(timeout=600)
        assert writer.returncode == 0, output[-3000:]
    with Engine.from_config(cfg) as engine:
        records = [record for batch in engine.assembly.layout.items().scan() for record in batch]
        ids = [record.id for record in records]
        assert len(ids) == len(set(ids)) == 80
        tags = {record.id: record.metadata["tag"] for record in records}
        assert {tags[f"i{i:03d}"] for i in range(0, 20)} == {"a"}
        assert {tags[f"i{i:03d}"] for i in range(20, 40)} == {"b"}
        field = engine.assembly.layout.field(engine.assembly.encoders["title"])
        assert field.count() == 80
        assert engine.event_count() == 80


def test_a_catalog_on_s3_without_ray_is_refused_naming_the_way(tmp_path: Path) -> None:
    """``polyrec ingest s3://...`` keeps the URI as written (a Path would fold it to ``s3:/``) and,
    without ``--ray``, says that a Ray ingest reads object storage."""
    config = tmp_path / "polyrec.toml"
    config.write_text('[store]\nplugin = "lancedb"\nuri = "db"\n\n[encoders.title]\nplugin = "hashing-text"\n')
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "polyrec.engine.cli",
            "ingest",
            "s3://polyrec/shop/items.jsonl",
            "--config",
            str(config),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode != 0
    assert "s3://polyrec/shop/items.jsonl: a catalog on object storage is read by a Ray ingest" in result.stderr
