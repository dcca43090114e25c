"""Import aliases for the module paths built-in plugins had before plugins/ was grouped by kind.

``import polyrec.plugins.store_lancedb`` keeps working for one release (0.2) with a
DeprecationWarning naming the new path; the alias is the new module itself, so classes are
identical whichever path imported them.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import warnings
from importlib.machinery import ModuleSpec
from types import ModuleType

__all__ = ["MOVED_MODULES", "install"]

#: old module name (under ``polyrec.plugins``) -> new module path under ``polyrec.plugins``.
MOVED_MODULES: dict[str, str] = {
    "text_sentence_transformers": "encoders.text_sentence_transformers",
    "image_open_clip": "encoders.image_open_clip",
    "image_loading": "encoders.image_loading",
    "audio_librosa": "encoders.audio_librosa",
    "audio_features": "encoders.audio_features",
    "behavior": "encoders.behavior",
    "fusion_concat": "fusions.concat",
    "fusion_mean": "fusions.mean",
    "fusion_gated": "fusions.gated",
    "fusion_autoencoder": "fusions.autoencoder",
    "scorer_dot": "scorers.dot",
    "scorer_target_attention": "scorers.target_attention",
    "scorer_mlp": "scorers.mlp",
    "popularity_prior": "scorers.popularity_prior",
    "scorer_self_attention": "scorers.self_attention",
    "sequence_model": "scorers.self_attention.model",
    "store_memory": "stores.memory",
    "store_lancedb": "stores.lancedb",
    "lancedb_collection": "stores.lancedb.collection",
    "lancedb_events": "stores.lancedb.events",
    "lancedb_filters": "stores.lancedb.filters",
    "lancedb_runtime": "stores.lancedb.runtime",
    "memory_ann": "stores.lancedb.memory_index",
    "torch_runtime": "support.torch_env",
    "torch_training": "support.torch_training",
    "trained_state": "support.trained_state",
}


class _Alias(importlib.abc.Loader):
    def __init__(self, target: str) -> None:
        self.target = target

    def create_module(self, spec: ModuleSpec) -> ModuleType:
        module = importlib.import_module(self.target)
        self._own_spec = module.__spec__  # the import system overwrites it with the alias's spec
        return module

    def exec_module(self, module: ModuleType) -> None:
        """Nothing to run (the target is already executed); give the module its own spec back."""
        module.__spec__ = self._own_spec


class _MovedModuleFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname: str, path: object = None, target: object = None) -> ModuleSpec | None:
        package, _, old = fullname.rpartition(".")
        if package != __package__ or old not in MOVED_MODULES:
            return None
        new = f"{__package__}.{MOVED_MODULES[old]}"
        warnings.warn(f"{fullname} moved to {new}; the old path goes in polyrec 0.3", DeprecationWarning, stacklevel=2)
        return importlib.util.spec_from_loader(fullname, _Alias(new))


def install() -> None:
    """Add the alias finder once (idempotent)."""
    if not any(isinstance(finder, _MovedModuleFinder) for finder in sys.meta_path):
        sys.meta_path.append(_MovedModuleFinder())
