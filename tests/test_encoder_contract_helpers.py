"""The encoder contract suite itself: it passes a sound encoder and catches broken ones."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import pytest

from polyrec.contracts import ComponentConfig, Encoder
from polyrec.contracts.testing.encoders import EncoderContract, encode_with_failures


class CharGramConfig(ComponentConfig):
    dim: int = 16
    salt: str = ""


class CharGramEncoder(Encoder):
    """Hashes character bigrams into a normalised count vector (a real, tiny encoder)."""

    name: ClassVar[str] = "char-grams"
    modality: ClassVar[str] = "text"
    query_modalities: ClassVar[tuple[str, ...]] = ("text",)
    Config = CharGramConfig

    @property
    def dim(self) -> int:
        return self.config.dim

    def prepare(self, value: Any) -> str:
        if not isinstance(value, str):
            raise ValueError(f"expected text, got {type(value).__name__}")
        if not value.strip():
            raise ValueError("text is empty")
        return value

    def _row(self, text: str) -> np.ndarray:
        row = np.zeros(self.dim, dtype=np.float32)
        for start in range(len(text) - 1):
            digest = hashlib.md5((self.config.salt + text[start : start + 2]).encode()).digest()
            row[digest[0] % self.dim] += 1.0
        norm = np.linalg.norm(row)
        return row / norm if norm > 0 else row

    def encode(self, batch: Sequence[Any]) -> np.ndarray:
        if any("\x00" in text for text in batch):  # fails in encode, not prepare
            raise ValueError("NUL character in text")
        return np.stack([self._row(text) for text in batch]) if batch else np.zeros((0, self.dim), np.float32)

    def encode_query(self, query: Any) -> np.ndarray:
        return self.encode([self.prepare(query)])[0]


SAMPLES = ["red apple", "green pear", "blue sky at night", "a cat", "the dog barks", "space opera"]


class TestCharGramContract(EncoderContract):
    def make_encoder(self) -> Encoder:
        return CharGramEncoder()

    def sample_values(self) -> list[Any]:
        return list(SAMPLES)

    def bad_values(self) -> list[Any]:
        return [None, 3.5, "   ", "nul\x00byte"]

    def make_other_encoder(self) -> Encoder:
        return CharGramEncoder(salt="other")


class BatchDependentEncoder(CharGramEncoder):
    """Broken: normalises over the whole batch, so results depend on batch composition."""

    name: ClassVar[str] = "batch-dependent"

    def encode(self, batch: Sequence[Any]) -> np.ndarray:
        rows = super().encode(batch)
        return rows - rows.mean(axis=0, keepdims=True) if len(rows) else rows


class Float64Encoder(CharGramEncoder):
    name: ClassVar[str] = "float64"

    def encode(self, batch: Sequence[Any]) -> np.ndarray:
        return super().encode(batch).astype(np.float64)


class AcceptsEverythingEncoder(CharGramEncoder):
    name: ClassVar[str] = "accepts-everything"

    def prepare(self, value: Any) -> str:
        return str(value) or "?"


def _suite_for(encoder: Encoder) -> tuple[EncoderContract, Encoder, list[Any], np.ndarray]:
    suite = TestCharGramContract()
    prepared = [encoder.prepare(value) for value in suite.sample_values()]
    return suite, encoder, prepared, encoder.encode(prepared)


def test_catches_batch_dependence() -> None:
    suite, encoder, prepared, vectors = _suite_for(BatchDependentEncoder())
    with pytest.raises(AssertionError):
        suite.test_batch_size_invariance(1, encoder, prepared, vectors)


def test_catches_wrong_dtype() -> None:
    suite, encoder, _prepared, vectors = _suite_for(Float64Encoder())
    with pytest.raises(AssertionError):
        suite.test_output_shape_and_dtype(encoder, vectors)


def test_catches_accepted_bad_values() -> None:
    suite, encoder, _prepared, _vectors = _suite_for(AcceptsEverythingEncoder())
    with pytest.raises(pytest.fail.Exception):
        suite.test_bad_values_fail(encoder)


def test_catches_unchanged_fingerprint() -> None:
    class SameFingerprint(TestCharGramContract):
        def make_other_encoder(self) -> Encoder:
            return CharGramEncoder()

    with pytest.raises(AssertionError):
        SameFingerprint().test_fingerprint_changes_with_config(CharGramEncoder())


def test_encode_with_failures_isolates_encode_errors() -> None:
    encoder = CharGramEncoder()
    ids = ["a", "b", "c", "d"]
    vectors, failures = encode_with_failures(encoder, ids, ["red apple", "bad\x00", 7, "green pear"])
    assert sorted(vectors) == ["a", "d"]
    np.testing.assert_allclose(vectors["a"], encoder.encode(["red apple"])[0])
    reasons = {failure.item_id: failure.reason for failure in failures}
    assert reasons == {"b": "NUL character in text", "c": "expected text, got int"}
    assert all(failure.plugin == "char-grams" for failure in failures)
