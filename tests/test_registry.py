"""The registry: one name per kind, filled by the four hooks, each entry attributed to its plugin."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from types import SimpleNamespace
from typing import ClassVar

import numpy as np
import pytest
from tiny_components import LastItemScorer, SumFusion

from polyrec.contracts import (
    Collection,
    DuplicateComponentError,
    Encoder,
    EventLog,
    PluginError,
    PluginLoadError,
    UnknownComponentError,
    VectorStore,
    hookimpl,
)
from polyrec.engine.plugins import PluginLoadWarning, build_plugin_manager
from polyrec.engine.registry import KINDS, Registry, build_registry

Register = Callable[[type], None]


class LengthEncoder(Encoder):
    """Text length and word count: a real (if tiny) text encoder."""

    name: ClassVar[str] = "length"
    modality: ClassVar[str] = "text"

    @property
    def dim(self) -> int:
        return 2

    def encode(self, batch: Sequence[str]) -> np.ndarray:
        return np.array([[len(text), len(text.split())] for text in batch], dtype=np.float32).reshape(-1, 2)


class OtherLengthEncoder(LengthEncoder):
    """Same registry name as LengthEncoder, from another plugin."""


class NullStore(VectorStore):
    """Registration needs only the class; this store is never opened."""

    name: ClassVar[str] = "null"

    def open(self, collection: str, *, dim: int, provenance: Mapping[str, str]) -> Collection:
        raise NotImplementedError("the null store holds nothing")

    def events(self) -> EventLog:
        raise NotImplementedError("the null store holds nothing")


def plugin(**hooks: Callable[[Register], None]) -> object:
    """An in-test plugin object whose hooks are the given functions."""
    return SimpleNamespace(**{hook_name: hookimpl(function) for hook_name, function in hooks.items()})


def registry_of(*plugins: tuple[str, object], strict: bool = False) -> Registry:
    pm = build_plugin_manager(builtins=(), extra=plugins, load_entry_points=False, strict=strict)
    return Registry.from_plugin_manager(pm)


def registering(*components: type) -> Callable[[Register], None]:
    def hook(register: Register) -> None:
        for component in components:
            register(component)

    return hook


def test_register_encoders_adds_encoders_attributed_to_the_plugin() -> None:
    registry = registry_of(("text_plugin", plugin(register_encoders=registering(LengthEncoder))))
    entry = registry.entry("encoder", "length")
    assert entry.component is LengthEncoder
    assert (entry.plugin, entry.distribution, entry.modality) == ("text_plugin", "(in-process)", "text")
    assert registry.names("encoder") == ["length"]
    assert registry.names("fusion") == registry.names("scorer") == registry.names("store") == []


def test_register_fusions_adds_fusions() -> None:
    registry = registry_of(("fusion_plugin", plugin(register_fusions=registering(SumFusion))))
    assert registry.get("fusion", "sum") is SumFusion
    assert registry.entry("fusion", "sum").modality == ""


def test_register_scorers_adds_scorers() -> None:
    registry = registry_of(("scorer_plugin", plugin(register_scorers=registering(LastItemScorer))))
    assert registry.get("scorer", "last-item") is LastItemScorer


def test_register_stores_adds_stores() -> None:
    registry = registry_of(("store_plugin", plugin(register_stores=registering(NullStore))))
    assert registry.get("store", "null") is NullStore


def test_one_plugin_may_implement_every_hook() -> None:
    everything = plugin(
        register_encoders=registering(LengthEncoder),
        register_fusions=registering(SumFusion),
        register_scorers=registering(LastItemScorer),
        register_stores=registering(NullStore),
    )
    registry = registry_of(("everything", everything))
    assert [(entry.kind, entry.name) for entry in registry.entries()] == [
        ("store", "null"),
        ("encoder", "length"),
        ("fusion", "sum"),
        ("scorer", "last-item"),
    ]
    assert {entry.plugin for entry in registry.entries()} == {"everything"}


def test_duplicate_name_is_rejected_naming_both_plugins() -> None:
    with pytest.raises(DuplicateComponentError) as caught:
        registry_of(
            ("first_plugin", plugin(register_encoders=registering(LengthEncoder))),
            ("second_plugin", plugin(register_encoders=registering(OtherLengthEncoder))),
        )
    message = str(caught.value)
    assert "encoder name 'length' is registered by both" in message
    assert "'first_plugin'" in message and "'second_plugin'" in message
    assert "POLYREC_DISABLE_PLUGINS" in message


def test_same_name_in_different_kinds_is_allowed() -> None:
    class LengthFusion(SumFusion):
        name: ClassVar[str] = "length"

    registry = registry_of(
        ("a", plugin(register_encoders=registering(LengthEncoder))),
        ("b", plugin(register_fusions=registering(LengthFusion))),
    )
    assert registry.get("encoder", "length") is LengthEncoder
    assert registry.get("fusion", "length") is LengthFusion


def test_unknown_name_lists_the_known_names() -> None:
    class WordsEncoder(LengthEncoder):
        name: ClassVar[str] = "words"

    registry = registry_of(("p", plugin(register_encoders=registering(WordsEncoder, LengthEncoder))))
    with pytest.raises(UnknownComponentError) as caught:
        registry.get("encoder", "sentence_transformers")
    assert str(caught.value) == "unknown encoder plugin 'sentence_transformers'; known: length, words"
    assert caught.value.known == ["length", "words"]
    with pytest.raises(UnknownComponentError, match=r"unknown scorer plugin 'dot'; known: \(none registered\)"):
        registry.get("scorer", "dot")


def test_unknown_kind_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="unknown component kind 'encoders'; known: store, encoder, fusion, scorer"):
        Registry().get("encoders", "length")


def test_registering_the_wrong_base_class_skips_the_whole_plugin() -> None:
    mixed = plugin(register_stores=registering(NullStore), register_encoders=registering(SumFusion))
    with pytest.warns(PluginLoadWarning, match="registered <class .*SumFusion'> as a encoder, which is not a Encoder"):
        registry = registry_of(("mixed", mixed), ("fine", plugin(register_scorers=registering(LastItemScorer))))
    assert registry.names("store") == []  # nothing of the broken plugin is kept
    assert registry.names("scorer") == ["last-item"]
    [failure] = registry.failures
    assert failure.name == "mixed" and isinstance(failure.cause, PluginError)


def test_component_without_a_name_is_rejected() -> None:
    class Nameless(LengthEncoder):
        name: ClassVar[str] = ""

    with pytest.raises(PluginLoadError, match="plugin 'anon' registered Nameless without a 'name'"):
        registry_of(("anon", plugin(register_encoders=registering(Nameless))), strict=True)


def test_hook_that_raises_skips_the_plugin_or_fails_in_strict_mode() -> None:
    def explode(register: Register) -> None:
        register(LengthEncoder)
        raise KeyError("model_dir")

    with pytest.warns(PluginLoadWarning, match="plugin 'exploding' .*failed to load: KeyError: 'model_dir'"):
        registry = registry_of(("exploding", plugin(register_encoders=explode)))
    assert registry.names("encoder") == []
    with pytest.raises(PluginLoadError, match="plugin 'exploding'") as caught:
        registry_of(("exploding", plugin(register_encoders=explode)), strict=True)
    assert isinstance(caught.value.__cause__, KeyError)


def test_load_failures_are_kept_on_the_registry(fake_distribution: Callable[..., object]) -> None:
    fake_distribution("shaky", {}, {"reg_broken_module": "import not_a_module_anywhere\n"})
    with pytest.warns(PluginLoadWarning):
        pm = build_plugin_manager(builtins=["reg_broken_module"], load_entry_points=False, strict=False)
    registry = build_registry(pm)
    assert [failure.name for failure in registry.failures] == ["reg_broken_module"]
    assert "ModuleNotFoundError" in str(registry.failures[0])


def test_builtin_registry_has_the_documented_names() -> None:
    registry = build_registry(build_plugin_manager(load_entry_points=False, strict=True))
    assert registry.names("store") == ["lancedb", "memory"]
    assert registry.names("encoder") == ["behavior", "librosa", "open-clip", "sentence-transformers", "timm"]
    assert registry.names("fusion") == ["autoencoder", "gated", "weighted-concat", "weighted-mean"]
    assert registry.names("scorer") == ["dot", "mlp", "self-attention", "target-attention"]
    assert {entry.distribution for entry in registry.entries()} == {"polyrec"}
    modalities = {entry.name: entry.modality for entry in registry.entries() if entry.kind == "encoder"}
    assert modalities["sentence-transformers"] == "text"
    assert modalities["open-clip"] == "image"
    assert modalities["librosa"] == "audio"
    assert modalities["timm"] == "image"


def test_kinds_map_to_the_four_hooks() -> None:
    assert {hook for hook, _base in KINDS.values()} == {
        "register_encoders",
        "register_fusions",
        "register_scorers",
        "register_stores",
    }


def test_hook_implementation_may_omit_the_register_argument() -> None:
    calls: list[str] = []
    registry = registry_of(("quiet", plugin(register_fusions=lambda: calls.append("called"))))
    assert calls == ["called"]
    assert registry.names("fusion") == [] and registry.failures == []
