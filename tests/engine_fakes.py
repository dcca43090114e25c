"""A small, real-behaving test plugin for the engine tests.

``bag-of-words``: a text encoder whose vectors are hashed word counts, so texts sharing
words are near each other (meaningful rankings without a model). It records every value
it encodes in :data:`ENCODED`, so tests can count encoder calls. Words with special
meaning: ``explode`` makes ``encode`` raise for its whole batch, ``nanvalue`` yields a NaN
row, ``silence`` yields an all-zero row ("no signal").

Register it with :func:`plugin_manager`, or as the entry point ``engine_fakes`` of a
(test-made) distribution for CLI runs.
"""

from __future__ import annotations

import hashlib
import re
import sys
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
from pydantic import Field

from polyrec.contracts import ComponentConfig, Encoder, hookimpl

#: every value the bag-of-words encoder encoded, in order (tests clear it)
ENCODED: list[str] = []


def _bucket(token: str, dim: int) -> int:
    return int.from_bytes(hashlib.sha256(token.encode()).digest()[:4], "little") % dim


class BagOfWordsConfig(ComponentConfig):
    dim: int = Field(default=64, gt=0)
    batch_size: int = Field(default=8, gt=0)
    salt: str = ""  # stands in for "another model": changes vectors and fingerprint


class BagOfWordsEncoder(Encoder):
    name: ClassVar[str] = "bag-of-words"
    modality: ClassVar[str] = "text"
    query_modalities: ClassVar[tuple[str, ...]] = ("text",)
    Config = BagOfWordsConfig
    config: BagOfWordsConfig

    @property
    def dim(self) -> int:
        return self.config.dim

    def prepare(self, value: Any) -> str:
        if not isinstance(value, str):
            raise ValueError(f"expected text, got {type(value).__name__}")
        if not value.strip():
            raise ValueError("text is empty")
        return value

    def _vector(self, text: str) -> np.ndarray:
        vector = np.zeros(self.config.dim, dtype=np.float32)
        for token in re.findall(r"\w+", text.lower()):
            vector[_bucket(self.config.salt + token, self.config.dim)] += 1.0
        norm = float(np.linalg.norm(vector))
        return vector / norm if norm else vector

    def encode(self, batch: Sequence[Any]) -> np.ndarray:
        if any("explode" in text for text in batch):
            raise RuntimeError("boom: cannot encode 'explode'")
        ENCODED.extend(batch)
        rows = []
        for text in batch:
            if "nanvalue" in text:
                rows.append(np.full(self.config.dim, np.nan, dtype=np.float32))
            elif "silence" in text:
                rows.append(np.zeros(self.config.dim, dtype=np.float32))
            else:
                rows.append(self._vector(text))
        return np.stack(rows) if rows else np.zeros((0, self.config.dim), np.float32)

    def encode_query(self, query: Any) -> np.ndarray:
        return self._vector(self.prepare(query))


@hookimpl
def register_encoders(register: Any) -> None:
    register(BagOfWordsEncoder)


BUILTINS_USED = (
    "polyrec.plugins.encoders.behavior",
    "polyrec.plugins.encoders.text_sentence_transformers",
    "polyrec.plugins.stores.memory",
    "polyrec.plugins.stores.lancedb",
    "polyrec.plugins.fusions.concat",
    "polyrec.plugins.fusions.mean",
    "polyrec.plugins.fusions.gated",
    "polyrec.plugins.scorers.dot",
    "polyrec.plugins.scorers.target_attention",
    "polyrec.plugins.scorers.mlp",
)


def plugin_manager(builtins: Sequence[str] = BUILTINS_USED) -> Any:
    """A plugin manager with the fakes and the built-ins the engine tests use."""
    from polyrec.engine.plugins import build_plugin_manager

    this_module = sys.modules[__name__]
    return build_plugin_manager(builtins=builtins, extra=[("engine-fakes", this_module)], load_entry_points=False)
