"""One write path: every write goes through the Engine, and what is computed from the stored
data (popularity, the catalog's centroid) follows each write without a cache reset by hand.
Also: deleting items, re-fusing, re-encoding failures during fit, item descriptions, and
the deprecated names that still import."""

from __future__ import annotations

import json
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
from engine_fakes import BUILTINS_USED, ENCODED

from polyrec.contracts import ComponentConfig, Encoder, Event, Item, ProvenanceMismatchError, hookimpl
from polyrec.engine.engine import Engine
from polyrec.engine.retrieval import QueryError


class PickyTaste(Encoder):
    """A trainable encoder of item ids that cannot encode ids containing ``bad`` once fitted."""

    name: ClassVar[str] = "picky-taste"
    modality: ClassVar[str] = "behavior"
    trainable: ClassVar[bool] = True
    reads_item_id: ClassVar[bool] = True
    Config = ComponentConfig

    def __init__(self, config: ComponentConfig | None = None, **params: Any) -> None:
        super().__init__(config, **params)
        self.seen: list[str] = []

    @property
    def dim(self) -> int:
        return 4

    def fit(self, events: Sequence[Event], items: Sequence[Item]) -> None:
        self.seen = sorted({event.item for event in events})

    def encode(self, batch: Sequence[Any]) -> np.ndarray:
        if any("bad" in item_id for item_id in batch):
            raise ValueError("no taste for bad items")
        return np.array([[1.0, float(item_id in self.seen), float(len(item_id)), 1.0] for item_id in batch], np.float32)

    def save(self, directory: Path) -> None:
        (directory / "seen.json").write_text(json.dumps(self.seen))

    def load(self, directory: Path) -> None:
        self.seen = json.loads((directory / "seen.json").read_text())


@hookimpl
def register_encoders(register: Any) -> None:
    register(PickyTaste)


def make_engine(store: dict | None = None, **overrides: Any) -> Engine:
    import engine_fakes

    from polyrec.engine.plugins import build_plugin_manager

    extra = [("engine-fakes", engine_fakes), ("write-path-fakes", sys.modules[__name__])]
    manager = build_plugin_manager(builtins=BUILTINS_USED, extra=extra, load_entry_points=False)
    config = {"store": store or {"plugin": "memory"}, "encoders": {"title": {"plugin": "bag-of-words"}}, **overrides}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Engine.from_config(config, plugin_manager=manager)


def rows(topic: str, words: str, n: int, start: int = 0) -> list[dict[str, Any]]:
    return [{"id": f"{topic}-{i}", "title": f"{words} {topic}{i}", "topic": topic} for i in range(start, start + n)]


def test_delete_items_removes_every_vector_and_keeps_the_events() -> None:
    engine = make_engine()
    engine.ingest(rows("space", "space rocket orbit", 5))
    engine.add_events([{"user": "alice", "item": "space-0", "timestamp": 1}])
    removed = engine.delete_items(["space-0", "space-1", "never-stored"])
    assert removed == 4  # two fused records and two field records
    assert engine.count() == 3 and engine.get_items(["space-0", "space-1"]) == []
    assert engine.describe_item("space-0") is None
    assert [e.item for e in engine.events("alice")] == ["space-0"]  # the log is history
    assert "space-0" not in {r.item for r in engine.similar("space-2", k=10)}
    assert engine.delete_items([]) == 0


def test_popularity_follows_new_events_and_deletes_without_a_reset() -> None:
    engine = make_engine()
    engine.ingest(rows("space", "space rocket orbit", 3) + rows("jazz", "jazz swing sax", 3))
    engine.add_events([{"user": f"u{n}", "item": "space-0", "timestamp": n} for n in range(2)])
    assert engine.recommend("nobody", k=1)[0].item == "space-0"  # computed and cached now
    engine.add_events([{"user": f"v{n}", "item": "jazz-2", "timestamp": n} for n in range(3)])
    assert engine.recommend("nobody", k=1)[0].item == "jazz-2"  # the cache saw the events' write
    engine.delete_items(["jazz-2"])
    assert engine.recommend("nobody", k=1)[0].item == "space-0"


def test_the_catalog_centroid_follows_ingests_and_deletes() -> None:
    engine = make_engine()  # no events: cold users get the catalog's most typical items
    engine.ingest(rows("space", "space rocket orbit", 8) + rows("jazz", "jazz swing sax", 1))
    first = engine.recommend("nobody", k=1)[0]
    assert first.flags == ["fallback:content"] and first.metadata["topic"] == "space"
    engine.ingest(rows("jazz", "jazz swing sax", 30, start=1))
    assert engine.recommend("nobody", k=1)[0].metadata["topic"] == "jazz"  # a stale centroid says space
    engine.delete_items([f"jazz-{i}" for i in range(31)])
    assert engine.recommend("nobody", k=1)[0].metadata["topic"] == "space"


def test_re_fuse_after_a_fusion_change_fuses_without_encoding(tmp_path: Path) -> None:
    pytest.importorskip("lancedb")
    store = {"plugin": "lancedb", "uri": str(tmp_path / "db")}
    encoders = {"title": {"plugin": "bag-of-words"}, "topic": {"plugin": "bag-of-words", "salt": "t"}}
    catalog = rows("space", "space rocket orbit", 4) + rows("jazz", "jazz swing sax", 4)
    with make_engine(store, encoders=encoders, fusion={"plugin": "weighted-concat"}) as engine:
        engine.ingest(catalog)
        before = dict(zip(*engine.item_matrix(), strict=True))
    ENCODED.clear()
    changed = {"plugin": "weighted-concat", "weights": {"title": 1.0, "topic": 0.1}}
    with make_engine(store, encoders=encoders, fusion=changed) as engine:
        with pytest.raises(ProvenanceMismatchError, match="re_fuse"):
            engine.count()
        assert engine.re_fuse() == 8
        assert ENCODED == []  # from the stored field vectors only
        after = dict(zip(*engine.item_matrix(), strict=True))
        assert sorted(after) == sorted(before)
        assert not np.allclose(after["space-0"], before["space-0"])  # the topic block weighs less now
        with pytest.warns(DeprecationWarning, match=r"Engine\.re_fuse"):
            assert engine.refuse() == 8
        assert engine.recommend("nobody", k=3)  # the new items collection answers


def test_fit_reports_the_items_a_fitted_encoder_cannot_encode_again() -> None:
    engine = make_engine(encoders={"title": {"plugin": "bag-of-words"}, "taste": {"plugin": "picky-taste"}})
    engine.ingest(rows("good", "space rocket", 3) + rows("bad", "jazz swing", 2))
    engine.add_events([{"user": "u", "item": "good-0", "timestamp": 1}, {"user": "u", "item": "bad-0", "timestamp": 2}])
    report = engine.fit()
    assert report.fitted == ["encoders.taste"]
    assert sorted(f.item_id for f in report.failures) == ["bad-0", "bad-1"]
    assert {(f.field, f.plugin) for f in report.failures} == {("taste", "picky-taste")}
    assert all("no taste for bad items" in f.reason for f in report.failures)
    assert "2 items failed to encode again" in report.summary()
    json.dumps(report.to_dict())  # `polyrec fit --json`
    described = engine.describe_item("bad-0")
    assert described is not None and described.fused and not described.vectors["taste"].has_vector
    assert engine.describe_item("good-0").vectors["taste"].has_vector  # type: ignore[union-attr]


def test_describe_item_and_components_speak_for_the_store() -> None:
    engine = make_engine(encoders={"title": {"plugin": "bag-of-words"}, "taste": {"plugin": "picky-taste"}})
    engine.ingest([{"id": "a", "title": "space rocket", "year": 1999}])
    described = engine.describe_item("a")
    assert described is not None
    assert described.metadata == {"title": "space rocket", "year": 1999}  # no _hash, no _missing
    assert (
        described.vectors["title"].has_vector and described.vectors["taste"].note == "gives vectors after `polyrec fit`"
    )
    assert engine.item_metadata(["a", "unknown"]) == {"a": described.metadata}
    components = engine.components()
    assert components["encoders"]["taste"] == {
        "plugin": "picky-taste",
        "field": "taste",
        "modality": "behavior",
        "query_modalities": [],
        "usable": False,
        "takes_files": False,  # it reads item ids
    }
    assert components["store"] == "memory" and "picky-taste" in engine.registry.names("encoder")
    engine.warm_up()  # opens the log and the collections, searches once; nothing to assert but no error


def test_a_named_slot_must_take_the_query_modality() -> None:
    engine = make_engine()
    engine.ingest(rows("space", "space rocket orbit", 2))
    with pytest.raises(QueryError, match=r"slot 'title' .* takes text, not image queries"):
        engine.search("space", field="title", modality="image")
    assert engine.search("space", field="title", modality="text")


@pytest.mark.parametrize(
    ("module", "name", "new_module", "new_name"),
    [
        ("polyrec.engine.pipeline", "IngestPipeline", "polyrec.engine.ingest", "IngestPipeline"),
        ("polyrec.engine.ingest", "read_items", "polyrec.engine.readers", "read_items"),
        ("polyrec.engine.ingest", "EventError", "polyrec.engine.readers", "EventError"),
        ("polyrec.engine.state", "EngineState", "polyrec.engine.manifest", "Manifest"),
        ("polyrec.engine.fusing", "refuse", "polyrec.engine.fusing", "re_fuse"),
        ("polyrec.engine.server.state", "ServerState", "polyrec.engine.server.context", "ServerContext"),
    ],
)
def test_old_names_still_import_with_a_deprecation_warning(
    module: str, name: str, new_module: str, new_name: str
) -> None:
    import importlib

    old = importlib.import_module(module)
    with pytest.warns(DeprecationWarning, match=f"{new_module}.{new_name}"):
        value = getattr(old, name)
    assert value is getattr(importlib.import_module(new_module), new_name)
