"""Contract suite every :class:`~polyrec.contracts.Encoder` must pass.

Usage: subclass :class:`EncoderContract` in a ``Test*`` class and provide the raw
material; pytest collects the checks (one test method each) from the mixin::

    from polyrec.contracts.testing.encoders import EncoderContract

    class TestMyEncoder(EncoderContract):
        def make_encoder(self):
            return MyEncoder(model="small")

        def sample_values(self):            # >= 6 valid, pairwise different raw values
            return ["a", "b", "c", "d", "e", "f"]

        def bad_values(self):               # each must fail in prepare() or encode()
            return [None, 42]

        def make_other_encoder(self):       # other model/config -> other fingerprint
            return MyEncoder(model="large")  # or None to skip that check

Author hooks (plain methods, called on a fresh instance):

* ``make_encoder()`` -> Encoder. Called once per class for the shared encoder and once
  more to check that the fingerprint is stable across instances with the same config.
* ``sample_values()`` -> list of at least 6 valid, pairwise different raw values.
* ``bad_values()`` -> list of raw values that must raise in ``prepare`` or ``encode``
  (default: empty; ``None`` is always checked separately unless ``reads_item_id``).
* ``make_other_encoder()`` -> Encoder or None (default None: check skipped).
* ``sample_queries(encoder)`` -> queries for ``encode_query`` (default: a few English
  phrases when ``"text"`` is a query modality, else the first sample values).

Class attribute ``batch_atol``: tolerance of the determinism and batch-size invariance
checks (default 1e-5; batches of 1, 2 and 4 are compared with one batch of everything).

Resources the hooks need (a checkpoint file, a fitted model) can be made in a
class-scoped autouse fixture of the subclass that sets class attributes; it runs before
the suite's fixtures::

    @pytest.fixture(scope="class", autouse=True)
    @classmethod
    def _material(cls, tmp_path_factory):
        cls.checkpoint = make_checkpoint(tmp_path_factory.mktemp("ckpt"))

Only numpy, pytest and polyrec.contracts are imported here.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import pytest

from polyrec.contracts import Encoder, ItemFailure
from polyrec.contracts.isolation import describe_error, encode_isolated

__all__ = ["EncoderContract", "encode_with_failures", "failure_reason"]

MIN_SAMPLES = 6


#: readable reason for a per-item failure (the engine's own wording)
failure_reason = describe_error


def encode_with_failures(
    encoder: Encoder, item_ids: Sequence[str], values: Sequence[Any]
) -> tuple[dict[str, np.ndarray], list[ItemFailure]]:
    """Per-item isolation exactly as the engine runs it (:func:`polyrec.contracts.isolation.encode_isolated`).

    A value whose ``prepare`` raises becomes an :class:`ItemFailure`; the others are
    encoded in batches, a failing batch is bisected so only the culprits fail, and every
    row must be finite and ``encoder.dim`` long. Returns ``({item_id: vector}, failures)``.
    """
    return encode_isolated(encoder, item_ids, values, dim=encoder.dim)


def _encode_in_chunks(encoder: Encoder, prepared: list[Any], size: int) -> np.ndarray:
    parts = [encoder.encode(prepared[start : start + size]) for start in range(0, len(prepared), size)]
    return np.concatenate(parts, axis=0)


class EncoderContract:
    """Mixin of encoder checks; see the module docstring for what a subclass provides."""

    batch_atol: ClassVar[float] = 1e-5

    # ---- author hooks -------------------------------------------------------------
    def make_encoder(self) -> Encoder:
        raise NotImplementedError("EncoderContract subclasses must implement make_encoder()")

    def sample_values(self) -> list[Any]:
        raise NotImplementedError("EncoderContract subclasses must implement sample_values()")

    def bad_values(self) -> list[Any]:
        return []

    def make_other_encoder(self) -> Encoder | None:
        return None

    def sample_queries(self, encoder: Encoder) -> list[Any]:
        if "text" in encoder.query_modalities:
            return ["a photo of a dog", "quiet piano music", "space adventure"]
        return self.sample_values()[:2]

    # ---- shared fixtures (one encoder and one full encoding per class) -------------
    @pytest.fixture(scope="class")
    @classmethod
    def contract_encoder(cls) -> Encoder:
        return cls().make_encoder()

    @pytest.fixture(scope="class")
    @classmethod
    def contract_prepared(cls, contract_encoder: Encoder) -> list[Any]:
        return [contract_encoder.prepare(value) for value in cls().sample_values()]

    @pytest.fixture(scope="class")
    @classmethod
    def contract_vectors(cls, contract_encoder: Encoder, contract_prepared: list[Any]) -> np.ndarray:
        return contract_encoder.encode(contract_prepared)

    # ---- identity -------------------------------------------------------------------
    def test_name_and_modality(self, contract_encoder: Encoder) -> None:
        assert isinstance(contract_encoder, Encoder)
        assert isinstance(contract_encoder.name, str) and contract_encoder.name
        assert isinstance(contract_encoder.modality, str) and contract_encoder.modality
        assert isinstance(contract_encoder.query_modalities, tuple)

    def test_dim_is_positive_int(self, contract_encoder: Encoder) -> None:
        assert isinstance(contract_encoder.dim, int) and not isinstance(contract_encoder.dim, bool)
        assert contract_encoder.dim > 0

    def test_enough_distinct_samples(self, contract_encoder: Encoder) -> None:
        values = self.sample_values()
        assert len(values) >= MIN_SAMPLES, f"sample_values() must give at least {MIN_SAMPLES} values"
        keys = {contract_encoder.content_bytes(value) for value in values}
        assert len(keys) == len(values), "sample_values() must be pairwise different"

    # ---- output ---------------------------------------------------------------------
    def test_output_shape_and_dtype(self, contract_encoder: Encoder, contract_vectors: np.ndarray) -> None:
        assert isinstance(contract_vectors, np.ndarray)
        assert contract_vectors.shape == (len(self.sample_values()), contract_encoder.dim)
        assert contract_vectors.dtype == np.float32

    def test_output_is_finite(self, contract_vectors: np.ndarray) -> None:
        assert np.isfinite(contract_vectors).all()

    def test_distinct_values_give_distinct_vectors(self, contract_vectors: np.ndarray) -> None:
        distinct_rows = np.unique(np.round(contract_vectors, 6), axis=0)
        assert len(distinct_rows) > 1, "every sample value got the same vector"

    def test_deterministic(
        self, contract_encoder: Encoder, contract_prepared: list[Any], contract_vectors: np.ndarray
    ) -> None:
        again = contract_encoder.encode(contract_prepared)
        np.testing.assert_allclose(again, contract_vectors, rtol=0, atol=self.batch_atol)

    @pytest.mark.parametrize("chunk", [1, 2, 4], ids=lambda size: f"chunk{size}")
    def test_batch_size_invariance(
        self, chunk: int, contract_encoder: Encoder, contract_prepared: list[Any], contract_vectors: np.ndarray
    ) -> None:
        chunked = _encode_in_chunks(contract_encoder, contract_prepared, chunk)
        np.testing.assert_allclose(chunked, contract_vectors, rtol=0, atol=self.batch_atol)

    def test_empty_batch(self, contract_encoder: Encoder) -> None:
        empty = contract_encoder.encode([])
        assert isinstance(empty, np.ndarray)
        assert empty.shape == (0, contract_encoder.dim)
        assert empty.dtype == np.float32

    # ---- bad input ------------------------------------------------------------------
    def test_prepare_rejects_missing_value(self, contract_encoder: Encoder) -> None:
        if contract_encoder.reads_item_id:
            pytest.skip("the encoder reads item ids, not field values")
        with pytest.raises(Exception):  # noqa: B017 - any error type is allowed by the contract
            contract_encoder.prepare(None)

    def test_bad_values_fail(self, contract_encoder: Encoder) -> None:
        bad = self.bad_values()
        if not bad:
            pytest.skip("bad_values() is empty: the encoder accepts anything")
        for value in bad:
            with pytest.raises(Exception) as caught:
                contract_encoder.encode([contract_encoder.prepare(value)])
            assert failure_reason(caught.value), f"error for {value!r} has no message"

    def test_bad_values_do_not_sink_the_batch(self, contract_encoder: Encoder, contract_vectors: np.ndarray) -> None:
        good, bad = self.sample_values(), self.bad_values()
        if not bad:
            pytest.skip("bad_values() is empty: the encoder accepts anything")
        # interleave bad values between the good ones
        ids, values, good_ids = [], [], []
        for index, value in enumerate(good):
            ids.append(f"good-{index}")
            good_ids.append(f"good-{index}")
            values.append(value)
            if index < len(bad):
                ids.append(f"bad-{index}")
                values.append(bad[index])
        for index in range(len(good), len(bad)):
            ids.append(f"bad-{index}")
            values.append(bad[index])
        vectors, failures = encode_with_failures(contract_encoder, ids, values)
        assert sorted(f.item_id for f in failures) == sorted(i for i in ids if i.startswith("bad-"))
        assert all(f.reason and f.plugin == contract_encoder.name for f in failures)
        assert sorted(vectors) == sorted(good_ids)
        stacked = np.stack([vectors[item_id] for item_id in good_ids])
        np.testing.assert_allclose(stacked, contract_vectors, rtol=0, atol=self.batch_atol)

    # ---- identity of content and configuration -------------------------------------
    def test_fingerprint_is_stable(self, contract_encoder: Encoder) -> None:
        fingerprint = contract_encoder.fingerprint
        assert isinstance(fingerprint, str) and fingerprint
        assert contract_encoder.fingerprint == fingerprint
        assert self.make_encoder().fingerprint == fingerprint

    def test_fingerprint_changes_with_config(self, contract_encoder: Encoder) -> None:
        other = self.make_other_encoder()
        if other is None:
            pytest.skip("make_other_encoder() returned None")
        assert other.fingerprint != contract_encoder.fingerprint

    def test_content_bytes(self, contract_encoder: Encoder) -> None:
        first, second = self.sample_values(), self.sample_values()
        for a, b in zip(first, second, strict=True):
            key = contract_encoder.content_bytes(a)
            assert isinstance(key, bytes) and key
            assert contract_encoder.content_bytes(b) == key, f"content_bytes not stable for {a!r}"
        assert contract_encoder.content_bytes(first[0]) != contract_encoder.content_bytes(first[1])

    def test_batch_lengths(self, contract_encoder: Encoder, contract_prepared: list[Any]) -> None:
        lengths = contract_encoder.batch_lengths(contract_prepared)
        if lengths is None:
            pytest.skip("the encoder gives no batch lengths")
        assert len(lengths) == len(contract_prepared)
        assert all(isinstance(length, numbers.Integral) and length >= 0 for length in lengths), lengths
        assert list(contract_encoder.batch_lengths(contract_prepared)) == list(lengths), "batch_lengths not stable"

    # ---- queries --------------------------------------------------------------------
    def test_encode_query(self, contract_encoder: Encoder) -> None:
        if not contract_encoder.query_modalities:
            pytest.skip("the encoder declares no query modalities")
        for query in self.sample_queries(contract_encoder):
            vector = contract_encoder.encode_query(query)
            assert isinstance(vector, np.ndarray)
            assert vector.shape == (contract_encoder.dim,)
            assert vector.dtype == np.float32
            assert np.isfinite(vector).all()
