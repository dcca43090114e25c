"""Distributed ingest on a real single-node Ray: the same collections as an in-process ingest.

One small Ray (2 CPUs, no dashboard, usage reporting off, a small object store) for the whole
module. The catalog is tiny and the encoder cheap (the plugin template's ``hashing-text``),
so the test costs Ray's start-up and little more. The two-node kill test is
``bench/scale_test.py`` (``make scale``).
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from polyrec.contracts import DistributedSettings, VectorRecord
from polyrec.engine.distributed import require_ray
from polyrec.engine.engine import Engine

os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
if importlib.util.find_spec("ray") is None:
    pytest.skip("Ray is not installed (pip install 'polyrec[ray]')", allow_module_level=True)
FIRST_IMPORT = "ray" not in sys.modules
ray = require_ray(own_cluster=True)  # as polyrec imports it for a Ray of its own
#: Ray was imported here with polyrec's setting for a Ray of its own: on 127.0.0.1 only
LOOPBACK = FIRST_IMPORT and os.environ.get("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER") == "0"
pytest.importorskip("lance", reason="pylance is not installed (pip install 'polyrec[ray]')")
pytest.importorskip("polyrec_plugin_template", reason="the plugin template is not installed (make install)")

SETTINGS = DistributedSettings(
    block_rows=8,  # several blocks, several write tasks, several fragments per collection
    encoders={"title": {"num_cpus": 0.5}, "body": {"num_cpus": 0.5}},
)


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[None]:
    from polyrec.engine.distributed import connect

    # the Ray polyrec starts by itself (address unset): our own, 2 CPUs, a 300 MB object store
    with connect(DistributedSettings(num_cpus=2, object_store_mb=300)):
        if LOOPBACK:  # nothing of it listens on, or is advertised under, the host's interface address
            assert {node["NodeManagerAddress"] for node in ray.nodes()} == {"127.0.0.1"}
            assert ray.get_runtime_context().gcs_address.startswith("127.0.0.1:")
        yield


def write_catalog(path: Path, n: int = 30, offset: int = 0) -> Path:
    rows: list[dict] = [
        {
            "id": f"i{i:03d}",
            "title": f"title {i} about {['space', 'food', 'jazz'][i % 3]}",
            "body": f"body text number {i + (offset if i % 3 == 0 else 0)}",
            "year": 1990 + i,
            "genre": ["a", "b"][i % 2],
            "score": i / 7,
        }
        for i in range(n)
    ]
    rows[3]["title"] = 12345  # the encoder rejects it: a failure naming item, field and plugin
    rows[5]["body"] = "   "  # empty text
    rows[7] = {"id": "i007", "year": 1}  # nothing to encode
    lines = [json.dumps(row) for row in rows] + ["{broken", json.dumps({"title": "no id"})]
    path.write_text("\n".join(lines) + "\n")
    return path


def config(store: Path) -> dict:
    return {
        "store": {"plugin": "lancedb", "uri": str(store)},
        "encoders": {
            "title": {"plugin": "hashing-text", "dim": 64},
            "body": {"plugin": "hashing-text", "dim": 32},
        },
        "fusion": {"plugin": "weighted-concat"},
    }


def collection(engine: Engine, name: str) -> object:
    layout = engine.assembly.layout
    return layout.items() if name == "items" else layout.field(engine.assembly.encoders[name.removeprefix("field__")])


def records(engine: Engine, name: str) -> dict[str, VectorRecord]:
    found = [record for batch in collection(engine, name).scan() for record in batch]  # type: ignore[attr-defined]
    assert len(found) == len({record.id for record in found}), f"{name}: an id is stored twice"
    return {record.id: record for record in found}


COLLECTIONS = ("items", "field__title", "field__body")


def assert_same_store(local: Engine, distributed: Engine) -> None:
    for name in COLLECTIONS:
        expected, got = records(local, name), records(distributed, name)
        assert sorted(got) == sorted(expected), name
        for item_id, record in expected.items():
            np.testing.assert_allclose(got[item_id].vector, record.vector, rtol=1e-6, atol=1e-7)
            assert got[item_id].metadata == record.metadata, (name, item_id)


def failures(report: object) -> list[tuple[str, str, str, str]]:
    return sorted((str(f.item_id), f.field or "", f.plugin or "", f.reason) for f in report.failures)  # type: ignore[attr-defined]


def counts(report: object) -> tuple[int, ...]:
    return tuple(getattr(report, name) for name in ("stored", "unchanged", "pending", "encoded", "cached"))


def test_single_node_ray_ingest_equals_in_process(tmp_path: Path, ray_cluster: None) -> None:
    catalog = write_catalog(tmp_path / "items.jsonl")
    with Engine.from_config(config(tmp_path / "local")) as local, Engine.from_config(config(tmp_path / "ray")) as dist:
        expected = local.ingest(catalog)
        got = dist.ingest(catalog, ray=SETTINGS)
        assert counts(got) == counts(expected)
        assert failures(got) == failures(expected)
        assert {f.item_id for f in got.failures} >= {"i003", "i005", "i007", "<line 31>", "<line 32>"}
        assert_same_store(local, dist)
        # filtered search reads the typed columns the workers added to the tables
        query = local.get_items(["i010"])[0].vector
        for flt in ({"genre": "a"}, {"year": {"$gte": 2000}}, {"score": {"$lt": 1.5}}):
            want = local.assembly.layout.items().search(query, 5, flt)
            hits = dist.assembly.layout.items().search(query, 5, flt)
            assert [h.id for h in hits] == [h.id for h in want], flt

        # the catalog again, a third of the bodies changed: those items are replaced by id (not
        # appended), their titles come from the cache, the rest is unchanged and not written
        changed = write_catalog(tmp_path / "changed.jsonl", offset=100)
        again_local, again = local.ingest(changed), dist.ingest(changed, ray=SETTINGS)
        assert counts(again) == counts(again_local)
        assert failures(again) == failures(again_local)
        assert again.unchanged > 0 and 0 < again.encoded < expected.encoded and again.cached > 0
        assert_same_store(local, dist)
        assert dist.count() == local.count() == expected.stored


def test_a_repeated_commit_writes_nothing_twice(tmp_path: Path) -> None:
    """A whole job re-run after a crash commits the same ids again: they replace, never add."""
    with Engine.from_config(config(tmp_path / "store")) as engine:
        collection = engine.assembly.layout.items()
        rng = np.random.default_rng(0)

        def batch(n: int, tag: str) -> list[VectorRecord]:
            return [
                VectorRecord(id=f"x{i}", vector=rng.standard_normal(collection.dim), metadata={"tag": tag, "i": i})
                for i in range(n)
            ]

        writer = collection.bulk_writer()
        first = writer.write(batch(20, "first"))
        collection.commit_bulk([first], replaced=[])
        assert collection.count() == 20
        rerun = [writer.write(batch(12, "second")), writer.write(batch(12, "second"))]  # two blocks, same ids
        collection.commit_bulk(rerun, replaced=[f"x{i}" for i in range(12)])
        stored = {record.id: record for batch_ in collection.scan() for record in batch_}
        assert collection.count() == len(stored) == 20
        assert {stored[f"x{i}"].metadata["tag"] for i in range(12)} == {"second"}
        assert collection.search(np.ones(collection.dim, np.float32), 3, {"tag": "second"})


def test_an_unfit_cluster_is_refused_with_the_numbers(tmp_path: Path, ray_cluster: None) -> None:
    from polyrec.contracts import PolyrecError

    greedy = DistributedSettings(encoders={"title": {"actors": 4, "num_cpus": 1}})
    catalog = write_catalog(tmp_path / "items.jsonl", n=10)
    with Engine.from_config(config(tmp_path / "store")) as engine, pytest.raises(PolyrecError, match="CPUs at once"):
        engine.ingest(catalog, ray=greedy)


# -- catalogs on object storage, and the config-vs-data check ------------------------------


def upload(endpoint: str, files: dict[str, Path]) -> None:
    from s3_fixtures import BUCKET, s3_client

    client = s3_client(endpoint)
    for key, path in files.items():
        client.put_object(Bucket=BUCKET, Key=key, Body=path.read_bytes())  # type: ignore[attr-defined]


def s3_store(cfg: dict, endpoint: str, prefix: str, state_dir: Path) -> dict:
    from s3_fixtures import BUCKET, storage_options

    store = {"plugin": "lancedb", "uri": f"s3://{BUCKET}/{prefix}", "storage_options": storage_options(endpoint)}
    return {**cfg, "store": {**store, "state_dir": str(state_dir), "read_consistency_s": 0}}


def test_a_catalog_on_s3_is_read_by_the_workers(tmp_path: Path, ray_cluster: None, s3_endpoint: str) -> None:
    """``ingest("s3://bucket/prefix/", ray=...)``: the objects under the prefix are listed with the
    store's storage_options and read by the workers; the store (on S3 too) ends up as an
    in-process ingest of the same files leaves a local one."""
    from s3_fixtures import storage_options

    from polyrec.contracts import PolyrecError
    from polyrec.engine.distributed import catalog_files

    first = write_catalog(tmp_path / "part-0.jsonl", n=12)
    second = tmp_path / "part-1.jsonl"
    second.write_text("\n".join(json.dumps({"id": f"n{i}", "title": f"new {i}", "body": "b"}) for i in range(4)))
    (tmp_path / "notes.txt").write_text("not a catalog")
    upload(
        s3_endpoint,
        {"shop/part-0.jsonl": first, "shop/more/part-1.jsonl": second, "shop/notes.txt": tmp_path / "notes.txt"},
    )
    options = storage_options(s3_endpoint)
    assert catalog_files("s3://polyrec/shop/", options) == [
        "s3://polyrec/shop/more/part-1.jsonl",
        "s3://polyrec/shop/part-0.jsonl",
    ]
    assert catalog_files("s3://polyrec/shop/part-0.jsonl", options) == ["s3://polyrec/shop/part-0.jsonl"]
    with pytest.raises(PolyrecError, match="no such object or prefix: s3://polyrec/nothing"):
        catalog_files("s3://polyrec/nothing/", options)

    remote = s3_store(config(tmp_path / "unused"), s3_endpoint, "ray-store", tmp_path / "state")
    with Engine.from_config(config(tmp_path / "local")) as local, Engine.from_config(remote) as dist:
        expected = [local.ingest(second), local.ingest(first)]  # the prefix's files in listed order
        got = dist.ingest("s3://polyrec/shop/", ray=SETTINGS)
        assert got.stored == sum(report.stored for report in expected) > 0
        assert failures(got) == sorted(f for report in expected for f in failures(report))
        assert_same_store(local, dist)


def test_the_ray_ingest_checks_the_config_against_the_data(tmp_path: Path, ray_cluster: None, s3_endpoint: str) -> None:
    """A slot whose field no item has stops a Ray ingest before anything is encoded, with the
    in-process ingest's message (here from a catalog on S3, read on the driver)."""
    from polyrec.contracts import ConfigError

    catalog = write_catalog(tmp_path / "items.jsonl", n=10)
    upload(s3_endpoint, {"check/items.jsonl": catalog})
    cfg = config(tmp_path / "local")
    cfg["encoders"]["poster"] = {"plugin": "hashing-text", "field": "poster", "dim": 16}
    with Engine.from_config(cfg) as local, pytest.raises(ConfigError) as in_process:
        local.ingest(catalog)
    remote = s3_store(cfg, s3_endpoint, "check-store", tmp_path / "state")
    slots = ("title", "body", "poster")  # pools that fit the 2 CPUs: without the check it would run
    fits = DistributedSettings(block_rows=8, encoders={slot: {"num_cpus": 0.25} for slot in slots})
    with Engine.from_config(remote) as dist:
        with pytest.raises(ConfigError) as on_ray:
            dist.ingest("s3://polyrec/check/items.jsonl", ray=fits)
        assert str(on_ray.value) == str(in_process.value)
        assert "encoders.poster" in str(on_ray.value)
        assert dist.count() == 0


def test_a_catalog_file_travels_in_blocks_of_block_rows(tmp_path: Path, ray_cluster: None) -> None:
    """One catalog file is one read task; its rows must reach the encoder pools as blocks of
    ``block_rows``, not as the one block Ray Data would coalesce them into (which one encoder
    actor got whole: a second actor idled, and the fuser waited for the last item)."""
    from polyrec.engine.distributed.run import _Catalog, build_pipeline
    from polyrec.engine.distributed.stages import Job

    catalog = write_catalog(tmp_path / "items.jsonl")  # 30 items and 2 bad rows, one file
    with Engine.from_config(config(tmp_path / "ray")) as engine:
        assembly = engine.assembly
        for encoder in assembly.encoders.values():  # as ray_ingest does: workers open existing ones
            assembly.layout.field(encoder)
        assembly.layout.items()
        job = Job(assembly.resolved, assembly.manifest.directory, tuple(assembly.encoders), SETTINGS.block_rows)
        source = _Catalog.read(engine, catalog, SETTINGS.block_rows, check_fields=False)
        dataset = build_pipeline(ray, source, job, SETTINGS)
        sizes = [block.num_rows for block in dataset.iter_batches(batch_size=None, batch_format="pyarrow")]
    assert sum(sizes) == 31  # 30 items + the row that carries the read failures
    assert len(sizes) >= 31 // SETTINGS.block_rows and max(sizes) < 2 * SETTINGS.block_rows, sizes
