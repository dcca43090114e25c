"""How file-valued fields reach encoders, and when a catalog is re-encoded.

* A path string reaches every encoder that takes files as a ``Path`` (relative ones found
  beside the catalog), whatever its modality is called; text encoders get strings.
* A file is hashed by its content however its path is spelt: an edited picture behind an
  absolute path gets a new vector on the next ingest (it kept its stale one before).
* ``batch_size`` and ``device`` are not in the default fingerprint: changing them re-encodes
  nothing.
"""

from __future__ import annotations

import importlib.util
import json
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
from engine_fakes import BUILTINS_USED, ENCODED, plugin_manager

from polyrec.contracts import ComponentConfig, Encoder, hookimpl
from polyrec.contracts.media import load_image
from polyrec.engine.engine import Engine

Image = pytest.importorskip("PIL.Image", reason="the 'image' extra is not installed")

#: what the picture encoder was handed ("Path", "str", ...), in order (tests clear it)
RECEIVED: list[str] = []


class MeanColourConfig(ComponentConfig):
    batch_size: int = 4
    device: str = "cpu"


class MeanColourEncoder(Encoder):
    """What a plugin author writes from the README: default ``content_bytes``, an unusual modality."""

    name: ClassVar[str] = "mean-colour"
    modality: ClassVar[str] = "picture"  # not "image": the engine must not care
    Config = MeanColourConfig

    @property
    def dim(self) -> int:
        return 3

    def prepare(self, value: Any) -> np.ndarray:
        RECEIVED.append("Path" if isinstance(value, Path) else type(value).__name__)
        return np.asarray(load_image(value), dtype=np.float32).mean(axis=(0, 1)) / 255.0

    def encode(self, batch: Sequence[np.ndarray]) -> np.ndarray:
        return np.stack(batch).astype(np.float32) if batch else np.zeros((0, 3), np.float32)


@hookimpl
def register_encoders(register: Any) -> None:
    register(MeanColourEncoder)


@pytest.fixture(autouse=True)
def _clear() -> None:
    RECEIVED.clear()
    ENCODED.clear()


def _engine(tmp_path: Path, encoders: dict[str, Any]) -> Engine:
    pm = plugin_manager((*BUILTINS_USED, "polyrec.plugins.encoders.image_timm"))
    pm.register_plugin(sys.modules[__name__], "file-values-test", "(in-process)", "")
    config = {"store": {"plugin": "lancedb", "uri": str(tmp_path / "store")}, "encoders": encoders}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Engine.from_config(config, plugin_manager=pm, base_dir=tmp_path)


def _picture(path: Path, colour: tuple[int, int, int]) -> Path:
    Image.new("RGB", (32, 24), colour).save(path)
    return path


def _catalog(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def _vector(engine: Engine, slot: str, item: str) -> np.ndarray:
    collection = engine.assembly.store.open(
        f"field__{slot}", dim=engine.assembly.encoders[slot].encoder.dim,
        provenance=engine.assembly.encoders[slot].provenance,
    )  # fmt: skip
    (record,) = collection.get([item])
    return np.asarray(record.vector)


def test_an_edited_picture_behind_an_absolute_path_is_re_encoded(tmp_path: Path) -> None:
    pictures = tmp_path / "pictures"
    pictures.mkdir()
    red = _picture(pictures / "a.png", (255, 0, 0))
    _picture(pictures / "b.png", (0, 0, 255))
    catalog = _catalog(tmp_path / "items.jsonl", [{"id": "a", "pic": str(red)}, {"id": "b", "pic": "pictures/b.png"}])
    with _engine(tmp_path, {"pic": {"plugin": "mean-colour"}}) as engine:
        first = engine.ingest(catalog)
        assert first.encoded == 2 and not first.failures
        np.testing.assert_allclose(_vector(engine, "pic", "a"), [1.0, 0.0, 0.0], atol=1e-6)
        _picture(red, (0, 255, 0))  # edited in place: same absolute path, new content
        second = engine.ingest(catalog)
        assert second.encoded == 1 and second.unchanged == 1
        np.testing.assert_allclose(_vector(engine, "pic", "a"), [0.0, 1.0, 0.0], atol=1e-6)
    assert set(RECEIVED) == {"Path"}  # absolute and relative strings alike


def test_paths_reach_file_encoders_as_paths_and_text_encoders_as_text(tmp_path: Path) -> None:
    _picture(tmp_path / "cover.png", (10, 20, 30))
    (tmp_path / "notes.txt").write_text("a file whose name is also the title")
    rows = [
        {"id": "a", "pic": "cover.png", "title": "notes.txt"},
        {"id": "b", "pic": "missing.png", "title": "plain words"},
        {"id": "c", "pic": "https://example.invalid/cover.png", "title": "more words"},
    ]
    catalog = _catalog(tmp_path / "items.jsonl", rows)
    encoders = {"pic": {"plugin": "mean-colour"}, "title": {"plugin": "bag-of-words"}}
    with _engine(tmp_path, encoders) as engine:
        report = engine.ingest(catalog)
    assert list(RECEIVED) == ["Path", "str", "str"]  # a file; a missing one and a URL stay strings
    reasons = {failure.item_id: failure.reason for failure in report.failures}
    assert reasons["b"] == "file not found: missing.png"
    assert "notes.txt" in ENCODED  # the text encoder got the title, not the file


def test_encoders_say_whether_they_take_files() -> None:
    from polyrec.plugins.encoders.audio_librosa import LibrosaAudioEncoder
    from polyrec.plugins.encoders.behavior import BehaviorEncoder
    from polyrec.plugins.encoders.text_sentence_transformers import SentenceTransformerEncoder

    assert MeanColourEncoder.takes_files() and LibrosaAudioEncoder.takes_files()
    assert not SentenceTransformerEncoder.takes_files() and not BehaviorEncoder.takes_files()

    class TextFromFiles(MeanColourEncoder):
        modality: ClassVar[str] = "text"
        reads_files: ClassVar[bool | None] = True

    assert TextFromFiles.takes_files()


def test_a_new_batch_size_or_device_re_encodes_nothing(tmp_path: Path) -> None:
    _picture(tmp_path / "a.png", (1, 2, 3))
    catalog = _catalog(tmp_path / "items.jsonl", [{"id": "a", "pic": "a.png", "title": "some words"}])
    encoders = {"pic": {"plugin": "mean-colour"}, "title": {"plugin": "bag-of-words"}}
    with _engine(tmp_path, encoders) as engine:
        assert engine.ingest(catalog).encoded == 2  # one item, two fields
    ENCODED.clear()
    changed = {"pic": {"plugin": "mean-colour", "batch_size": 1, "device": "other"}, "title": {**encoders["title"]}}
    changed["title"]["batch_size"] = 3
    with _engine(tmp_path, changed) as engine:
        report = engine.ingest(catalog)
    assert report.encoded == 0 and report.unchanged == 1 and not ENCODED


@pytest.mark.skipif(importlib.util.find_spec("timm") is None, reason="the 'image' extra is not installed")
def test_the_timm_encoder_re_encodes_an_edited_picture(tmp_path: Path) -> None:
    from skimage import data

    picture = tmp_path / "photo.png"
    Image.fromarray(data.chelsea()).save(picture)
    catalog = _catalog(tmp_path / "items.jsonl", [{"id": "cat", "photo": str(picture)}])
    with _engine(tmp_path, {"photo": {"plugin": "timm", "device": "cpu"}}) as engine:
        assert engine.ingest(catalog).encoded == 1
        before = _vector(engine, "photo", "cat")
        Image.fromarray(data.coffee()).save(picture)
        assert engine.ingest(catalog).encoded == 1
        after = _vector(engine, "photo", "cat")
    assert float(before @ after) < 0.9
