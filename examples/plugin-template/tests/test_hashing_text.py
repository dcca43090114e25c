"""The template's tests: polyrec's encoder contract suite plus what is specific to this encoder."""

from __future__ import annotations

import numpy as np
import pytest
from polyrec.contracts.testing.encoders import EncoderContract
from pydantic import ValidationError

import polyrec_plugin_template
from polyrec_plugin_template import HashingTextEncoder


class TestHashingTextContract(EncoderContract):
    def make_encoder(self) -> HashingTextEncoder:
        return HashingTextEncoder(dim=128)

    def sample_values(self) -> list[str]:
        return [
            "Toy Story",
            "Toy Story 2",
            "The Godfather",
            "Heat",
            "Twelve Monkeys",
            "Star Wars: Episode IV - A New Hope",
        ]

    def bad_values(self) -> list[object]:
        return [None, 42, "", "   \n", b"bytes are not text"]

    def make_other_encoder(self) -> HashingTextEncoder:
        return HashingTextEncoder(dim=128, ngram_max=5)


def cosine(encoder: HashingTextEncoder, a: str, b: str) -> float:
    vectors = encoder.encode([encoder.prepare(a), encoder.prepare(b)])
    return float(vectors[0] @ vectors[1])


def test_rows_are_unit_length() -> None:
    encoder = HashingTextEncoder(dim=64)
    vectors = encoder.encode([encoder.prepare(text) for text in ["a cat", "a dog on a log", "x" * 500]])
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-6)


def test_shared_spelling_is_closer_than_unrelated_text() -> None:
    encoder = HashingTextEncoder(dim=512)
    assert cosine(encoder, "Star Wars", "star wars!") > 0.8
    assert cosine(encoder, "Star Wars", "Star Wars") == pytest.approx(1.0, abs=1e-6)
    assert cosine(encoder, "Star Wars", "Star Wars") > cosine(encoder, "Star Wars", "Pulp Fiction") + 0.5


def test_case_folding_is_configurable() -> None:
    assert cosine(HashingTextEncoder(), "HEAT", "heat") == pytest.approx(1.0, abs=1e-6)
    assert cosine(HashingTextEncoder(lowercase=False), "HEAT", "heat") < 0.5


def test_text_shorter_than_the_ngrams_is_an_all_zero_row() -> None:
    encoder = HashingTextEncoder(ngram_min=4, ngram_max=4)
    assert not encoder.encode([encoder.prepare("a")]).any()


def test_fingerprint_names_every_parameter() -> None:
    fingerprint = HashingTextEncoder(dim=32, ngram_min=1, ngram_max=3).fingerprint
    assert fingerprint.startswith("hashing-text:v1:")
    for part in ['"dim":32', '"ngram_min":1', '"ngram_max":3', '"lowercase":true']:
        assert part in fingerprint


def test_prepare_names_the_problem() -> None:
    encoder = HashingTextEncoder()
    with pytest.raises(TypeError, match="expected text \\(str\\), got int"):
        encoder.prepare(42)
    with pytest.raises(ValueError, match="text is empty"):
        encoder.prepare("  ")


def test_config_rejects_an_inverted_ngram_range() -> None:
    with pytest.raises(ValidationError, match="ngram_min \\(5\\) must not exceed ngram_max \\(3\\)"):
        HashingTextEncoder(ngram_min=5, ngram_max=3)


def test_register_encoders_hook_registers_the_encoder() -> None:
    registered: list[type] = []
    polyrec_plugin_template.register_encoders(register=registered.append)
    assert registered == [HashingTextEncoder]
