"""Feature-hashed character n-grams: a text encoder with no model and no dependencies.

Each text is padded with spaces (so word starts and ends form their own n-grams), cut
into character n-grams, and every n-gram adds +1 or -1 (signed hashing keeps collisions
unbiased) at position ``crc32(ngram) % dim``. Rows are L2-normalised so the inner product
is the cosine similarity. Texts sharing spelling share n-grams, so typos and word-form
variants stay close; meaning is not captured (use a neural encoder for that).
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
from polyrec.contracts import ComponentConfig, Encoder
from pydantic import Field, model_validator

__all__ = ["HashingTextConfig", "HashingTextEncoder"]

#: Bump when the hashing scheme changes: stored vectors then stop matching the fingerprint.
ALGORITHM_VERSION = 1


class HashingTextConfig(ComponentConfig):
    dim: int = Field(default=256, ge=8, le=1 << 20, description="vector length (number of hash buckets)")
    ngram_min: int = Field(default=2, ge=1, le=16, description="shortest character n-gram")
    ngram_max: int = Field(default=4, ge=1, le=16, description="longest character n-gram")
    lowercase: bool = Field(default=True, description="fold case before hashing")

    @model_validator(mode="after")
    def _ngram_range(self) -> HashingTextConfig:
        if self.ngram_min > self.ngram_max:
            raise ValueError(f"ngram_min ({self.ngram_min}) must not exceed ngram_max ({self.ngram_max})")
        return self


class HashingTextEncoder(Encoder):
    """Text -> L2-normalised signed counts of hashed character n-grams."""

    name: ClassVar[str] = "hashing-text"
    modality: ClassVar[str] = "text"
    query_modalities: ClassVar[tuple[str, ...]] = ("text",)
    Config: ClassVar[type[ComponentConfig]] = HashingTextConfig
    config: HashingTextConfig

    @property
    def dim(self) -> int:
        return self.config.dim

    @property
    def fingerprint(self) -> str:
        return f"{self.name}:v{ALGORITHM_VERSION}:{self.config.model_dump_json()}"

    def prepare(self, value: Any) -> str:
        if value is None:
            raise ValueError("text is missing")
        if not isinstance(value, str):
            raise TypeError(f"expected text (str), got {type(value).__name__}")
        text = " ".join(value.split())  # collapse runs of whitespace
        if not text:
            raise ValueError("text is empty")
        return text.lower() if self.config.lowercase else text

    def encode(self, batch: Sequence[str]) -> np.ndarray:
        vectors = np.zeros((len(batch), self.dim), dtype=np.float32)
        for row, text in enumerate(batch):
            buckets, signs = self._hash_ngrams(text)
            np.add.at(vectors[row], buckets, signs)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        # A text shorter than ngram_min has no n-grams: it stays an all-zero row ("no signal").
        return np.divide(vectors, norms, out=vectors, where=norms > 0)

    def encode_query(self, query: Any) -> np.ndarray:
        return self.encode([self.prepare(query)])[0]

    def _hash_ngrams(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        padded = f" {text} "
        hashes = [
            zlib.crc32(padded[start : start + n].encode("utf-8"))
            for n in range(self.config.ngram_min, self.config.ngram_max + 1)
            for start in range(len(padded) - n + 1)
        ]
        values = np.asarray(hashes, dtype=np.uint64)
        buckets = (values % np.uint64(self.dim)).astype(np.intp)
        # bit 31 is independent of the low bits used for the bucket (dim < 2**31)
        signs = np.where((values >> np.uint64(31)) & np.uint64(1), 1.0, -1.0).astype(np.float32)
        return buckets, signs
