"""Encoder.batch_lengths: encode_isolated batches values of like length by the encoder's own
measure, falls back to character counts, and no ordering changes which vector an item gets."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest
from engine_fakes import BagOfWordsEncoder

from polyrec.contracts.isolation import encode_isolated


class _Recording(BagOfWordsEncoder):
    """Bag of words that records its batches; its length is the number of words."""

    lengths_error: Exception | None = None
    wrong_count = False

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self.batches: list[list[str]] = []

    def encode(self, batch: Sequence[Any]) -> np.ndarray:
        self.batches.append(list(batch))
        return super().encode(batch)

    def batch_lengths(self, batch: Sequence[Any]) -> list[int] | None:
        if self.lengths_error is not None:
            raise self.lengths_error
        lengths = [len(text.split()) for text in batch]
        return lengths[:-1] if self.wrong_count else lengths


# character order and word order disagree: the longest text by characters has the fewest words
TEXTS = ["a b c d e f", "extraordinarily", "x y", "p q r s", "unbelievable things", "m"]
IDS = [f"i{n}" for n in range(len(TEXTS))]


def _encode(encoder: BagOfWordsEncoder) -> dict[str, np.ndarray]:
    vectors, failures = encode_isolated(encoder, IDS, TEXTS, dim=encoder.dim, batch_size=2)
    assert not failures
    return vectors


def test_batches_follow_the_encoders_lengths() -> None:
    encoder = _Recording()
    vectors = _encode(encoder)
    assert encoder.batches == [
        ["extraordinarily", "m"],
        ["x y", "unbelievable things"],
        ["p q r s", "a b c d e f"],
    ]
    plain = BagOfWordsEncoder()
    for item_id, text in zip(IDS, TEXTS, strict=True):
        np.testing.assert_array_equal(vectors[item_id], plain.encode([text])[0])


def test_without_lengths_strings_go_by_characters() -> None:
    class NoLengths(_Recording):
        def batch_lengths(self, batch: Sequence[Any]) -> None:
            return None

    encoder = NoLengths()
    _encode(encoder)
    assert [text for batch in encoder.batches for text in batch] == sorted(TEXTS, key=len)


@pytest.mark.parametrize("broken", ["raises", "wrong count"])
def test_broken_lengths_warn_and_fall_back(broken: str, caplog: pytest.LogCaptureFixture) -> None:
    encoder = _Recording()
    if broken == "raises":
        encoder.lengths_error = RuntimeError("tokenizer gone")
    else:
        encoder.wrong_count = True
    with caplog.at_level(logging.WARNING, logger="polyrec.contracts.isolation"):
        vectors = _encode(encoder)
    assert set(vectors) == set(IDS)
    assert [text for batch in encoder.batches for text in batch] == sorted(TEXTS, key=len)
    (record,) = caplog.records
    assert "'bag-of-words'" in record.getMessage() and "batch_lengths" in record.getMessage()
    assert ("tokenizer gone" if broken == "raises" else "5 lengths for 6 values") in record.getMessage()
