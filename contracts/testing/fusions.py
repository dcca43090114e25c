"""Contract suite every :class:`~polyrec.contracts.Fusion` must pass.

Usage: subclass :class:`FusionContract` in a ``Test*`` class; pytest collects the checks::

    from polyrec.contracts.testing.fusions import FusionContract

    class TestMyFusion(FusionContract):
        def make_fusion(self):
            return MyFusion(dim=16)

        def make_other_fusion(self):         # other config -> other fingerprint
            return MyFusion(dim=32)           # or None to skip that check

Author hooks (plain methods, called on a fresh instance):

* ``make_fusion()`` -> an unbound Fusion (the suite binds it to ``field_dims()``).
* ``make_other_fusion()`` -> Fusion or None (default None: check skipped).
* ``field_dims()`` -> the fields to bind (default: ``text`` 24, ``image`` 16, ``behavior`` 8).

Class attribute ``normalized`` (default True): the fusion promises unit-length vectors
for every item with at least one present field.

The suite makes a small random catalog (``catalog()``: 40 items, some fields missing,
one item with no field at all, one row with NaN marked absent) and, for trainable
fusions (``trainable = True``), fits on it with a random event log (``training_data``),
then checks shape, finiteness, normalisation, that absent rows are ignored, that an item
missing a field still gets a vector and one with no field a zero vector, batch
independence, determinism across instances, fingerprints, bad input, and (trainable
fusions) that fit changes the fingerprint and save/load restores identical vectors.
Only numpy, pytest and polyrec.contracts are imported here.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest

from polyrec.contracts import Fusion, TrainingData

__all__ = ["FusionContract", "random_catalog", "random_training_data"]

Fields = dict[str, np.ndarray]


def random_catalog(field_dims: dict[str, int], n: int = 40, seed: int = 0) -> tuple[Fields, Fields]:
    """``(fields, present)`` for n items; item 0 has no field, item 1 only the first field,
    and the last field's row 2 is NaN but marked absent."""
    rng = np.random.default_rng(seed)
    fields = {name: rng.normal(size=(n, dim)).astype(np.float32) for name, dim in field_dims.items()}
    present = {name: rng.random(n) > 0.25 for name in field_dims}
    names = list(field_dims)
    for position, name in enumerate(names):
        present[name][0] = False
        present[name][1] = position == 0
        present[name][3] = True  # item 3 has every field
    fields[names[-1]][2] = np.nan
    present[names[-1]][2] = False
    return fields, present


def random_training_data(n: int, seed: int = 0, users: int = 20, length: int = 8) -> TrainingData:
    """A random event log over items ``item-0..item-{n-1}`` (vectors are placeholders)."""
    rng = np.random.default_rng(seed)
    sequences = [rng.integers(0, n, size=length) for _ in range(users)]
    stamps = [np.arange(length, dtype=np.float64) * 60.0 for _ in range(users)]
    ids = [f"item-{i}" for i in range(n)]
    vectors = rng.normal(size=(n, 4)).astype(np.float32)
    return TrainingData(ids, vectors, [f"user-{u}" for u in range(users)], sequences, stamps, seed)


class FusionContract:
    """Mixin of fusion checks; see the module docstring for what a subclass provides."""

    normalized: ClassVar[bool] = True
    atol: ClassVar[float] = 1e-5

    # ---- author hooks -------------------------------------------------------------
    def make_fusion(self) -> Fusion:
        raise NotImplementedError("FusionContract subclasses must implement make_fusion()")

    def make_other_fusion(self) -> Fusion | None:
        return None

    def field_dims(self) -> dict[str, int]:
        return {"text": 24, "image": 16, "behavior": 8}

    # ---- helpers --------------------------------------------------------------------
    def catalog(self) -> tuple[Fields, Fields]:
        return random_catalog(self.field_dims())

    def ready_fusion(self, fusion: Fusion | None = None) -> Fusion:
        """Bind (and, if trainable, fit on the suite's catalog and log) a fresh fusion."""
        fusion = fusion if fusion is not None else self.make_fusion()
        fusion.bind(self.field_dims())
        if fusion.trainable:
            fields, present = self.catalog()
            fusion.fit(fields, present, random_training_data(len(present[next(iter(present))])))
        return fusion

    # ---- shared fixtures ------------------------------------------------------------
    @pytest.fixture(scope="class")
    @classmethod
    def contract_fusion(cls) -> Fusion:
        return cls().ready_fusion()

    @pytest.fixture(scope="class")
    @classmethod
    def contract_fused(cls, contract_fusion: Fusion) -> np.ndarray:
        return contract_fusion.fuse(*cls().catalog())

    # ---- output ---------------------------------------------------------------------
    def test_dim_is_positive_int(self, contract_fusion: Fusion) -> None:
        assert isinstance(contract_fusion.dim, int) and contract_fusion.dim > 0

    def test_shape_dtype_finite(self, contract_fusion: Fusion, contract_fused: np.ndarray) -> None:
        n = len(next(iter(self.catalog()[1].values())))
        assert isinstance(contract_fused, np.ndarray)
        assert contract_fused.shape == (n, contract_fusion.dim)
        assert contract_fused.dtype == np.float32
        assert np.isfinite(contract_fused).all()

    def test_normalised(self, contract_fused: np.ndarray) -> None:
        if not self.normalized:
            pytest.skip("the fusion does not promise unit-length vectors")
        _, present = self.catalog()
        has_field = np.any(np.stack(list(present.values())), axis=0)
        norms = np.linalg.norm(contract_fused[has_field], axis=1)
        np.testing.assert_allclose(norms, 1.0, atol=1e-4)

    def test_item_with_one_field_gets_a_vector(self, contract_fused: np.ndarray) -> None:
        assert np.abs(contract_fused[1]).sum() > 0, "item 1 has only its first field and got a zero vector"

    def test_item_with_no_field_gets_zero_vector(self, contract_fused: np.ndarray) -> None:
        np.testing.assert_array_equal(contract_fused[0], 0.0)

    def test_absent_rows_are_ignored(self, contract_fusion: Fusion, contract_fused: np.ndarray) -> None:
        fields, present = self.catalog()
        rng = np.random.default_rng(99)
        for name in fields:  # scribble over every absent row
            absent = ~present[name]
            fields[name][absent] = rng.normal(size=(int(absent.sum()), fields[name].shape[1])) * 100
        np.testing.assert_allclose(contract_fusion.fuse(fields, present), contract_fused, atol=self.atol)

    def test_field_left_out_counts_as_absent(self, contract_fusion: Fusion) -> None:
        fields, present = self.catalog()
        last = list(fields)[-1]
        without = {name: value for name, value in fields.items() if name != last}
        absent = {**present, last: np.zeros_like(present[last])}
        expected = contract_fusion.fuse(fields, absent)
        np.testing.assert_allclose(contract_fusion.fuse(without, present), expected, atol=self.atol)

    def test_batch_independence(self, contract_fusion: Fusion, contract_fused: np.ndarray) -> None:
        fields, present = self.catalog()
        for rows in (slice(0, 1), slice(3, 4), slice(5, 17)):
            sliced = {k: v[rows] for k, v in fields.items()}
            part = contract_fusion.fuse(sliced, {k: v[rows] for k, v in present.items()})
            np.testing.assert_allclose(part, contract_fused[rows], atol=self.atol)

    def test_empty_batch(self, contract_fusion: Fusion) -> None:
        dims = self.field_dims()
        empty = contract_fusion.fuse(
            {k: np.zeros((0, d), np.float32) for k, d in dims.items()}, {k: np.zeros(0, bool) for k in dims}
        )
        assert empty.shape == (0, contract_fusion.dim)

    def test_deterministic_across_instances(self, contract_fused: np.ndarray) -> None:
        again = self.ready_fusion().fuse(*self.catalog())
        np.testing.assert_allclose(again, contract_fused, atol=self.atol)

    # ---- bad input ------------------------------------------------------------------
    def test_unknown_field_rejected(self, contract_fusion: Fusion) -> None:
        fields, present = self.catalog()
        fields["not-bound"] = np.ones((len(present[next(iter(present))]), 3), np.float32)
        with pytest.raises(ValueError, match="not-bound"):
            contract_fusion.fuse(fields, present)

    def test_wrong_width_rejected(self, contract_fusion: Fusion) -> None:
        fields, present = self.catalog()
        first = next(iter(fields))
        fields[first] = fields[first][:, :-1]
        with pytest.raises(ValueError, match=first):
            contract_fusion.fuse(fields, present)

    # ---- identity -------------------------------------------------------------------
    def test_fingerprint_is_stable(self, contract_fusion: Fusion) -> None:
        fingerprint = contract_fusion.fingerprint
        assert isinstance(fingerprint, str) and contract_fusion.name in fingerprint
        assert self.ready_fusion().fingerprint == fingerprint

    def test_fingerprint_changes_with_config(self, contract_fusion: Fusion) -> None:
        other = self.make_other_fusion()
        if other is None:
            pytest.skip("make_other_fusion() returned None")
        assert self.ready_fusion(other).fingerprint != contract_fusion.fingerprint

    # ---- trained state --------------------------------------------------------------
    def test_fit_changes_fingerprint(self, contract_fusion: Fusion) -> None:
        if not contract_fusion.trainable:
            pytest.skip("not trainable")
        unfitted = self.make_fusion()
        unfitted.bind(self.field_dims())
        assert unfitted.fingerprint != contract_fusion.fingerprint

    def test_save_load_round_trip(self, contract_fusion: Fusion, contract_fused: np.ndarray, tmp_path: Path) -> None:
        if not contract_fusion.trainable:
            pytest.skip("not trainable")
        contract_fusion.save(tmp_path)
        restored = self.make_fusion()
        restored.bind(self.field_dims())
        restored.load(tmp_path)
        assert restored.fingerprint == contract_fusion.fingerprint
        np.testing.assert_array_equal(restored.fuse(*self.catalog()), contract_fused)
