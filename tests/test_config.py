"""Config validation: every problem names its exact key, the plugin and what is known."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import ClassVar

import numpy as np
import pytest
from tiny_components import LastItemScorer, SumFusion

from polyrec.contracts import (
    Collection,
    ComponentConfig,
    ConfigError,
    Encoder,
    EventLog,
    PolyrecConfig,
    VectorStore,
    hookimpl,
)
from polyrec.engine.config import load_config, read_config_file, resolve_config
from polyrec.engine.plugins import build_plugin_manager
from polyrec.engine.registry import Registry, build_registry


class CharTextConfig(ComponentConfig):
    dim: int = 26
    lowercase: bool = True


class CharTextEncoder(Encoder):
    """Letter counts a-z."""

    name: ClassVar[str] = "char-text"
    modality: ClassVar[str] = "text"
    Config = CharTextConfig

    @property
    def dim(self) -> int:
        return self.config.dim

    def encode(self, batch: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(batch), self.dim), dtype=np.float32)
        for row, text in enumerate(batch):
            for char in text.lower() if self.config.lowercase else text:
                if "a" <= char <= "z" and ord(char) - 97 < self.dim:
                    out[row, ord(char) - 97] += 1
        return out


class PixelImageConfig(ComponentConfig):
    checkpoint: Path
    size: int = 32


class PixelImageEncoder(Encoder):
    """Mean intensity of an image array, a one-number image encoder."""

    name: ClassVar[str] = "pixel-image"
    modality: ClassVar[str] = "image"
    Config = PixelImageConfig

    @property
    def dim(self) -> int:
        return 1

    def encode(self, batch: Sequence[np.ndarray]) -> np.ndarray:
        return np.array([[float(np.mean(image))] for image in batch], dtype=np.float32).reshape(-1, 1)


class FolderConfig(ComponentConfig):
    path: Path = Path("polyrec-data")


class FolderStore(VectorStore):
    """Only its config is exercised here; opening is the store contract suite's business."""

    name: ClassVar[str] = "folder"
    Config = FolderConfig

    def open(self, collection: str, *, dim: int, provenance: Mapping[str, str]) -> Collection:
        raise NotImplementedError("not exercised by the config tests")

    def events(self) -> EventLog:
        raise NotImplementedError("not exercised by the config tests")


def registering(*components: type) -> Callable[[Callable[[type], None]], None]:
    def hook(register: Callable[[type], None]) -> None:
        for component in components:
            register(component)

    return hook


@pytest.fixture
def registry() -> Registry:
    test_plugin = SimpleNamespace(
        register_encoders=hookimpl(registering(CharTextEncoder, PixelImageEncoder)),
        register_stores=hookimpl(registering(FolderStore)),
        register_fusions=hookimpl(registering(SumFusion)),
        register_scorers=hookimpl(registering(LastItemScorer)),
    )
    pm = build_plugin_manager(builtins=(), extra=[("test_plugin", test_plugin)], load_entry_points=False)
    return Registry.from_plugin_manager(pm)


def base_config(**encoders: dict[str, object]) -> dict[str, object]:
    return {
        "store": {"plugin": "folder"},
        "encoders": encoders or {"title": {"plugin": "char-text"}},
        "fusion": {"plugin": "sum"},
        "scorer": {"plugin": "last-item"},
    }


def problems_of(raw: dict[str, object], registry: Registry) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        resolve_config(raw, registry)
    return [f"{key}: {message}" for key, message in caught.value.problems]


# ---- valid configs -------------------------------------------------------------------


def test_valid_config_resolves_every_slot(registry: Registry) -> None:
    raw = base_config(
        title={"plugin": "char-text", "dim": 8},
        poster={"plugin": "pixel-image", "field": "image_path", "checkpoint": "/models/pixel.ckpt"},
    )
    resolved = resolve_config(raw, registry)
    assert [(spec.key, spec.kind, spec.plugin) for spec in resolved.specs()] == [
        ("store", "store", "folder"),
        ("encoders.title", "encoder", "char-text"),
        ("encoders.poster", "encoder", "pixel-image"),
        ("fusion", "fusion", "sum"),
        ("scorer", "scorer", "last-item"),
    ]
    assert resolved.encoders["title"].field == "title"  # the slot name by default
    assert resolved.encoders["poster"].field == "image_path"
    assert resolved.encoders["title"].config == CharTextConfig(dim=8)
    assert resolved.settings.retrieval.candidates == 200


def test_resolved_spec_builds_a_working_component(registry: Registry) -> None:
    spec = resolve_config(base_config(title={"plugin": "char-text", "dim": 3}), registry).encoders["title"]
    encoder = registry.get(spec.kind, spec.plugin)(spec.config)
    np.testing.assert_array_equal(encoder.encode(["Abba"]), [[2, 2, 0]])


def test_defaults_name_builtin_store_fusion_and_scorer() -> None:
    builtins = build_registry(build_plugin_manager(load_entry_points=False, strict=True))
    resolved = resolve_config({"encoders": {"title": {"plugin": "sentence-transformers"}}}, builtins)
    assert (resolved.store.plugin, resolved.fusion.plugin, resolved.scorer.plugin) == (
        "lancedb",
        "weighted-concat",
        "dot",
    )


# ---- bad configs: each message points at the key ----------------------------------


def test_unknown_plugin_names_the_key_and_the_known_plugins(registry: Registry) -> None:
    raw = base_config(title={"plugin": "char-text"}, poster={"plugin": "pixel_image"})
    assert problems_of(raw, registry) == [
        "encoders.poster.plugin: unknown encoder plugin 'pixel_image'; did you mean 'pixel-image'? "
        "known: char-text, pixel-image"
    ]


def test_unknown_plugin_without_a_close_match(registry: Registry) -> None:
    raw = {**base_config(), "scorer": {"plugin": "open_clip"}}
    assert problems_of(raw, registry) == ["scorer.plugin: unknown scorer plugin 'open_clip'; known: last-item"]


def test_unknown_parameter_names_the_key_the_plugin_and_its_parameters(registry: Registry) -> None:
    raw = base_config(title={"plugin": "char-text", "dims": 8})
    assert problems_of(raw, registry) == [
        "encoders.title.dims: unknown parameter 'dims' for encoder plugin 'char-text'; did you mean 'dim'? "
        "known: dim, lowercase"
    ]


def test_wrong_type_names_the_key_the_value_and_the_plugin(registry: Registry) -> None:
    raw = base_config(title={"plugin": "char-text", "dim": "big"})
    assert problems_of(raw, registry) == [
        "encoders.title.dim: invalid value 'big' for encoder plugin 'char-text': "
        "input should be a valid integer, unable to parse string as an integer"
    ]


def test_missing_parameter_names_the_key_and_the_plugin(registry: Registry) -> None:
    raw = base_config(poster={"plugin": "pixel-image", "size": 64})
    assert problems_of(raw, registry) == [
        "encoders.poster.checkpoint: missing required parameter 'checkpoint' for encoder plugin 'pixel-image'"
    ]


def test_missing_plugin_key_lists_the_plugins_to_choose_from(registry: Registry) -> None:
    raw = base_config(title={"dim": 8})
    assert problems_of(raw, registry) == [
        "encoders.title.plugin: missing required key 'plugin'; known encoder plugins: char-text, pixel-image"
    ]


def test_missing_encoders_section(registry: Registry) -> None:
    raw = {"store": {"plugin": "folder"}}
    assert problems_of(raw, registry) == [
        "encoders: missing required section 'encoders': add at least one, e.g. [encoders.title] plugin = \"...\""
    ]
    assert problems_of({"encoders": {}}, registry) == [
        'encoders: needs at least one encoder slot, e.g. [encoders.title] plugin = "..."'
    ]


def test_unknown_top_level_key(registry: Registry) -> None:
    raw = {**base_config(), "retreival": {"candidates": 10}}
    known = ", ".join(sorted(PolyrecConfig.model_fields))
    assert "retrieval" in known and "encoders" in known
    assert problems_of(raw, registry) == [
        f"retreival: unknown key 'retreival'; did you mean 'retrieval'? known: {known}"
    ]


def test_unknown_nested_key_lists_that_section_s_keys(registry: Registry) -> None:
    raw = {**base_config(), "retrieval": {"candidatez": 10}}
    assert problems_of(raw, registry) == [
        "retrieval.candidatez: unknown key 'candidatez'; did you mean 'candidates'? known: candidates, history_length"
    ]


def test_out_of_range_setting(registry: Registry) -> None:
    raw = {**base_config(), "retrieval": {"candidates": 0}}
    assert problems_of(raw, registry) == ["retrieval.candidates: invalid value 0: input should be greater than 0"]


def test_slot_that_is_not_a_table(registry: Registry) -> None:
    raw = base_config(title="char-text")  # type: ignore[arg-type]
    [problem] = problems_of(raw, registry)
    assert problem.startswith("encoders.title: invalid value 'char-text': input should be a valid dictionary")


def test_every_problem_is_reported_at_once(registry: Registry) -> None:
    raw = base_config(title={"plugin": "char-text", "dim": "big"}, poster={"plugin": "nope"})
    raw["fusion"] = {"plugin": "sum", "weights": [1, 2]}
    assert [problem.split(":")[0] for problem in problems_of(raw, registry)] == [
        "encoders.title.dim",
        "encoders.poster.plugin",
        "fusion.weights",
    ]


# ---- files ----------------------------------------------------------------------------

TOML_CONFIG = """
[store]
plugin = "folder"
path = "vectors"

[encoders.title]
plugin = "char-text"
dim = 8

[encoders.poster]
plugin = "pixel-image"
field = "image"
checkpoint = "models/pixel.ckpt"

[fusion]
plugin = "sum"

[scorer]
plugin = "last-item"

[retrieval]
candidates = 50
"""

YAML_CONFIG = """
store: {plugin: folder, path: vectors}
encoders:
  title: {plugin: char-text, dim: 8}
  poster: {plugin: pixel-image, field: image, checkpoint: models/pixel.ckpt}
fusion: {plugin: sum}
scorer: {plugin: last-item}
retrieval: {candidates: 50}
"""


@pytest.mark.parametrize(
    ("filename", "text"), [("polyrec.toml", TOML_CONFIG), ("polyrec.yaml", YAML_CONFIG), ("polyrec.yml", YAML_CONFIG)]
)
def test_toml_and_yaml_files_resolve_the_same(tmp_path: Path, registry: Registry, filename: str, text: str) -> None:
    path = tmp_path / filename
    path.write_text(text)
    resolved = load_config(path, registry)
    assert resolved.source == path
    assert resolved.encoders["title"].config == CharTextConfig(dim=8)
    assert resolved.encoders["poster"].field == "image"
    assert resolved.settings.retrieval.candidates == 50


def test_relative_paths_are_anchored_at_the_config_directory(tmp_path: Path, registry: Registry) -> None:
    (tmp_path / "conf").mkdir()
    path = tmp_path / "conf" / "polyrec.toml"
    path.write_text(TOML_CONFIG.replace('"models/pixel.ckpt"', f'"{tmp_path / "abs.ckpt"}"'))
    resolved = load_config(path, registry)
    assert resolved.store.config.path == tmp_path / "conf" / "vectors"
    assert resolved.encoders["poster"].config.checkpoint == tmp_path / "abs.ckpt"  # absolute stays


def test_a_relative_config_path_anchors_absolutely(
    tmp_path: Path, registry: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "polyrec.toml").write_text(TOML_CONFIG)
    monkeypatch.chdir(tmp_path)
    resolved = load_config(Path("conf/polyrec.toml"), registry)
    assert resolved.store.config.path == tmp_path / "conf" / "vectors"
    assert resolved.encoders["poster"].config.checkpoint == tmp_path / "conf" / "models" / "pixel.ckpt"


def test_default_relative_paths_are_anchored_too(tmp_path: Path, registry: Registry) -> None:
    resolved = resolve_config(base_config(), registry, source=tmp_path / "polyrec.toml")
    assert resolved.store.config.path == tmp_path / "polyrec-data"


def test_mapping_paths_stay_relative_unless_a_base_dir_is_given(tmp_path: Path, registry: Registry) -> None:
    raw = base_config(poster={"plugin": "pixel-image", "checkpoint": "pixel.ckpt"})
    assert resolve_config(raw, registry).encoders["poster"].config.checkpoint == Path("pixel.ckpt")
    anchored = resolve_config(raw, registry, base_dir=tmp_path)
    assert anchored.encoders["poster"].config.checkpoint == tmp_path / "pixel.ckpt"


def test_file_problems_name_the_file(tmp_path: Path, registry: Registry) -> None:
    path = tmp_path / "polyrec.toml"
    path.write_text(TOML_CONFIG.replace('plugin = "sum"', 'plugin = "summ"'))
    with pytest.raises(ConfigError) as caught:
        load_config(path, registry)
    assert str(caught.value) == (
        f"invalid config {path}: fusion.plugin: unknown fusion plugin 'summ'; did you mean 'sum'? known: sum"
    )


def test_unreadable_and_unparsable_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"cannot read .*missing\.toml: No such file or directory"):
        read_config_file(tmp_path / "missing.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text("[encoders.title\nplugin = 1\n")
    with pytest.raises(ConfigError, match=r"not valid toml: .*line 1"):
        read_config_file(broken)
    listed = tmp_path / "list.yaml"
    listed.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="the top level must be a table/mapping"):
        read_config_file(listed)
