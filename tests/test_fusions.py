"""The four built-in fusions: contract suite, promised properties, and learning on synthetic data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from polyrec.contracts import ConfigError, Fusion, TrainingData
from polyrec.contracts.testing.fusions import FusionContract, random_catalog
from polyrec.engine.plugins import build_plugin_manager
from polyrec.engine.registry import Registry
from polyrec.plugins.fusions.autoencoder import AutoencoderFusion
from polyrec.plugins.fusions.concat import WeightedConcatFusion, normalized_fields
from polyrec.plugins.fusions.gated import GatedFusion
from polyrec.plugins.fusions.mean import WeightedMeanFusion, random_projection

DIMS = {"text": 24, "image": 16, "behavior": 8}


def bound(fusion: Fusion, dims: dict[str, int] = DIMS) -> Fusion:
    fusion.bind(dims)
    return fusion


def all_present(fields: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {name: np.ones(len(value), dtype=bool) for name, value in fields.items()}


# ---- contract suite ------------------------------------------------------------------


class TestWeightedConcatContract(FusionContract):
    def make_fusion(self) -> Fusion:
        return WeightedConcatFusion(weights={"text": 2.0})

    def make_other_fusion(self) -> Fusion:
        return WeightedConcatFusion(weights={"text": 3.0})


class TestWeightedMeanContract(FusionContract):
    def make_fusion(self) -> Fusion:
        return WeightedMeanFusion(dim=20, weights={"image": 0.5})

    def make_other_fusion(self) -> Fusion:
        return WeightedMeanFusion(dim=20, seed=1)


class TestGatedContract(FusionContract):
    def make_fusion(self) -> Fusion:
        return GatedFusion(epochs=2, batch_size=32)

    def make_other_fusion(self) -> Fusion:
        return GatedFusion(epochs=3, batch_size=32)


class TestAutoencoderContract(FusionContract):
    def make_fusion(self) -> Fusion:
        return AutoencoderFusion(dim=8, hidden=32, epochs=5)

    def make_other_fusion(self) -> Fusion:
        return AutoencoderFusion(dim=8, hidden=32, epochs=5, seed=1)


def test_all_fusions_are_registered() -> None:
    registry = Registry.from_plugin_manager(build_plugin_manager(load_entry_points=False))
    assert {"weighted-concat", "weighted-mean", "gated", "autoencoder"} <= set(registry.names("fusion"))


# ---- weighted-concat --------------------------------------------------------------------


def test_concat_similarity_is_weighted_field_cosines() -> None:
    fields, _ = random_catalog(DIMS, n=6)
    fields = {name: np.nan_to_num(value) + 0.01 for name, value in fields.items()}
    weights = {"text": 2.0, "image": 1.0, "behavior": 0.5}
    fused = bound(WeightedConcatFusion(weights=weights)).fuse(fields, all_present(fields))
    _, unit, _ = normalized_fields("test", DIMS, fields, all_present(fields))
    expected = sum(w**2 * unit[name] @ unit[name].T for name, w in weights.items()) / sum(
        w**2 for w in weights.values()
    )
    np.testing.assert_allclose(fused @ fused.T, expected, atol=1e-5)
    assert fused.shape[1] == sum(DIMS.values())


def test_concat_zero_weight_drops_a_field() -> None:
    fields, present = random_catalog(DIMS)
    fused = bound(WeightedConcatFusion(weights={"image": 0.0})).fuse(fields, present)
    np.testing.assert_array_equal(fused[:, 24:40], 0.0)
    changed = {**fields, "image": fields["image"] * -3}
    np.testing.assert_allclose(bound(WeightedConcatFusion(weights={"image": 0.0})).fuse(changed, present), fused)


def test_concat_unknown_weight_field_is_a_config_error_naming_it() -> None:
    with pytest.raises(ConfigError, match="imgae") as caught:
        bound(WeightedConcatFusion(weights={"imgae": 2.0}))
    assert caught.value.problems[0][0] == "fusion.weights.imgae"
    assert "weighted-concat" in str(caught.value) and "image" in str(caught.value)


@pytest.mark.parametrize("weight", [-1.0, float("nan"), float("inf")])
def test_concat_rejects_bad_weights(weight: float) -> None:
    with pytest.raises(ValidationError, match="weights"):
        WeightedConcatFusion(weights={"text": weight})


def test_concat_treats_zero_and_non_finite_rows_as_missing() -> None:
    fields = {"text": np.array([[1.0, 0.0], [0.0, 0.0], [np.inf, 1.0]], np.float32)}
    fused = bound(WeightedConcatFusion(), {"text": 2}).fuse(fields, all_present(fields))
    np.testing.assert_allclose(fused, [[1.0, 0.0], [0.0, 0.0], [0.0, 0.0]])


def test_fuse_before_bind_is_a_clear_error() -> None:
    with pytest.raises(RuntimeError, match="bind"):
        WeightedConcatFusion().fuse({}, {})


# ---- weighted-mean ----------------------------------------------------------------------


def test_mean_projection_is_orthonormal_and_field_specific() -> None:
    narrow = random_projection(8, 20, 0, "behavior")
    np.testing.assert_allclose(narrow @ narrow.T, np.eye(8), atol=1e-5)
    wide = random_projection(40, 20, 0, "text")
    np.testing.assert_allclose(wide.T @ wide, np.eye(20), atol=1e-5)
    assert not np.allclose(random_projection(8, 20, 0, "image"), narrow)
    np.testing.assert_array_equal(random_projection(8, 20, 0, "behavior"), narrow)


def test_mean_keeps_cosines_within_a_narrow_field_exactly() -> None:
    rng = np.random.default_rng(3)
    fields = {"behavior": rng.normal(size=(10, 8)).astype(np.float32), "text": np.zeros((10, 24), np.float32)}
    present = {"behavior": np.ones(10, bool), "text": np.zeros(10, bool)}
    fused = bound(WeightedMeanFusion(dim=20), {"behavior": 8, "text": 24}).fuse(fields, present)
    unit = fields["behavior"] / np.linalg.norm(fields["behavior"], axis=1, keepdims=True)
    np.testing.assert_allclose(fused @ fused.T, unit @ unit.T, atol=1e-5)


def test_mean_adding_a_field_leaves_single_field_items_alone() -> None:
    fields, present = random_catalog({"text": 24, "image": 16})
    only_text = {"text": present["text"], "image": np.zeros_like(present["image"])}
    before = bound(WeightedMeanFusion(dim=20), {"text": 24, "image": 16}).fuse(fields, only_text)
    extra = {**fields, "behavior": np.ones((len(present["text"]), 8), np.float32)}
    after = bound(WeightedMeanFusion(dim=20)).fuse(extra, {**only_text, "behavior": np.zeros_like(present["text"])})
    np.testing.assert_allclose(after, before, atol=1e-6)


def test_mean_unknown_weight_field_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="audio"):
        bound(WeightedMeanFusion(weights={"audio": 1.0}))


# ---- gated ------------------------------------------------------------------------------


def signal_in_one_field(seed: int = 0) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], TrainingData]:
    """Users' consecutive items share a cluster that only the ``signal`` field shows."""
    rng = np.random.default_rng(seed)
    n_items, n_clusters, n_users, length = 240, 12, 120, 10
    cluster = rng.integers(0, n_clusters, n_items)
    centres = rng.normal(size=(n_clusters, 16))
    fields = {
        "noise_wide": rng.normal(size=(n_items, 32)).astype(np.float32),
        "signal": (centres[cluster] + 0.5 * rng.normal(size=(n_items, 16))).astype(np.float32),
        "noise_narrow": rng.normal(size=(n_items, 8)).astype(np.float32),
    }
    present = all_present(fields)
    present["signal"][::5] = False  # a missing signal must not break anything
    sequences = [rng.choice(np.flatnonzero(cluster == rng.integers(n_clusters)), length) for _ in range(n_users)]
    data = TrainingData(
        [f"i{i}" for i in range(n_items)],
        np.zeros((n_items, 4), np.float32),
        [f"u{u}" for u in range(n_users)],
        sequences,
        [np.arange(length, dtype=np.float64)] * n_users,
        seed,
    )
    return fields, present, data


def test_gated_before_fit_equals_concat_with_equal_weights() -> None:
    fields, present = random_catalog(DIMS)
    gated = bound(GatedFusion())
    assert gated.field_weights() == pytest.approx({"text": 1 / 3, "image": 1 / 3, "behavior": 1 / 3})
    expected = bound(WeightedConcatFusion()).fuse(fields, present)
    np.testing.assert_allclose(gated.fuse(fields, present), expected, atol=1e-6)


def test_gated_learns_that_only_the_signal_field_predicts_the_next_item() -> None:
    fields, present, data = signal_in_one_field()
    gated = bound(GatedFusion(seed=0), {name: value.shape[1] for name, value in fields.items()})
    gated.fit(fields, present, data)
    weights = gated.field_weights()
    assert max(weights, key=weights.get) == "signal", weights
    assert weights["signal"] > 0.8 and sum(weights.values()) == pytest.approx(1.0)
    assert gated.loss_history[-1] < gated.loss_history[0]


def test_gated_keeps_every_field_above_the_floor() -> None:
    fields, present, data = signal_in_one_field()
    dims = {name: value.shape[1] for name, value in fields.items()}
    gated = bound(GatedFusion(min_gate=0.1), dims)
    gated.fit(fields, present, data)
    weights = gated.field_weights()
    assert min(weights.values()) >= 0.1 - 1e-9 and weights["signal"] > 0.7, weights
    with pytest.raises(ConfigError, match="min_gate"):
        bound(GatedFusion(min_gate=0.4), dims)


def test_gated_without_events_keeps_equal_gates() -> None:
    fields, present = random_catalog(DIMS)
    gated = bound(GatedFusion())
    gated.fit(fields, present, None)
    assert not gated.fitted and gated.fingerprint == bound(GatedFusion()).fingerprint


def test_gated_rows_must_align_with_the_training_items() -> None:
    fields, present, data = signal_in_one_field()
    gated = bound(GatedFusion(), {name: value.shape[1] for name, value in fields.items()})
    half = {name: value[:100] for name, value in fields.items()}
    with pytest.raises(ValueError, match="rows must be the training data's items"):
        gated.fit(half, {name: value[:100] for name, value in present.items()}, data)


def test_gated_refuses_gates_learned_for_other_fields(tmp_path: Path) -> None:
    fields, present, data = signal_in_one_field()
    dims = {name: value.shape[1] for name, value in fields.items()}
    gated = bound(GatedFusion(epochs=1), dims)
    gated.fit(fields, present, data)
    gated.save(tmp_path)
    other = bound(GatedFusion(epochs=1), {"text": 4})
    other.load(tmp_path)
    with pytest.raises(ValueError, match="fit again"):
        other.field_weights()


# ---- autoencoder ------------------------------------------------------------------------


def low_rank_catalog(n: int = 300, rank: int = 6, seed: int = 0) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Three fields driven by the same few latent factors; about a fifth of each field missing."""
    rng = np.random.default_rng(seed)
    loadings = {"text": rng.normal(size=(rank, 48)), "image": rng.normal(size=(rank, 32))}
    loadings["behavior"] = rng.normal(size=(rank, 16))
    latent = rng.normal(size=(n, rank))  # drawn after the loadings: a larger n adds items, same factors
    fields = {name: latent @ loading for name, loading in loadings.items()}
    fields["image"] = np.tanh(fields["image"])
    present = {name: rng.random(n) > 0.2 for name in fields}
    return {name: value.astype(np.float32) for name, value in fields.items()}, present


def mean_baseline_error(fields: dict[str, np.ndarray], present: dict[str, np.ndarray]) -> float:
    """Reconstruction error of always predicting each field's mean (unit-length) vector."""
    dims = {name: value.shape[1] for name, value in fields.items()}
    _, unit, masks = normalized_fields("baseline", dims, fields, present)
    per_item = np.zeros(len(masks["text"]))
    for name in dims:
        mean = unit[name][masks[name]].mean(axis=0)
        per_item += masks[name] * ((unit[name] - mean) ** 2).sum(axis=1)
    counts = np.stack(list(masks.values()), axis=1).sum(axis=1)
    return float((per_item / np.maximum(counts, 1)).mean())


@pytest.fixture(scope="module")
def fitted_autoencoder() -> tuple[AutoencoderFusion, dict[str, np.ndarray], dict[str, np.ndarray]]:
    fields, present = low_rank_catalog()
    fusion = AutoencoderFusion(dim=8, hidden=64, epochs=60)
    fusion.bind({name: value.shape[1] for name, value in fields.items()})
    fusion.fit(fields, present)
    return fusion, fields, present


def test_autoencoder_reconstructs_far_better_than_the_mean(fitted_autoencoder) -> None:  # type: ignore[no-untyped-def]
    fusion, fields, present = fitted_autoencoder
    error, baseline = fusion.reconstruction_error(fields, present), mean_baseline_error(fields, present)
    assert error < 0.4 * baseline, (error, baseline)
    held_out, held_present = low_rank_catalog(n=400)  # same factor loadings, 100 more items
    unseen = {k: v[300:] for k, v in held_out.items()}
    unseen_present = {k: v[300:] for k, v in held_present.items()}
    assert fusion.reconstruction_error(unseen, unseen_present) < 0.5 * mean_baseline_error(unseen, unseen_present)


def test_autoencoder_embeds_an_item_missing_a_field_near_its_full_self(fitted_autoencoder) -> None:  # type: ignore[no-untyped-def]
    fusion, fields, _ = fitted_autoencoder
    full = fusion.fuse(fields, all_present(fields))
    no_image = fusion.fuse(fields, {**all_present(fields), "image": np.zeros(len(full), bool)})
    own = np.sum(full * no_image, axis=1)
    others = full @ no_image.T
    rank_of_own = (others > own[None, :]).sum(axis=0)  # how many full vectors beat the item's own
    assert np.median(rank_of_own) == 0 and own.mean() > 0.8


def test_autoencoder_before_fit_is_a_seeded_sketch() -> None:
    fields, present = random_catalog(DIMS)
    first, second = bound(AutoencoderFusion(dim=8)), bound(AutoencoderFusion(dim=8))
    assert not first.fitted
    np.testing.assert_array_equal(first.fuse(fields, present), second.fuse(fields, present))
    with pytest.raises(ValueError, match="before fit"):
        first.reconstruction_error(fields, present)


def test_autoencoder_needs_items_to_fit() -> None:
    fields, present = random_catalog(DIMS, n=5)
    nothing = {name: np.zeros(5, bool) for name in present}
    with pytest.raises(ValueError, match="at least 2 items"):
        bound(AutoencoderFusion()).fit(fields, nothing)


def test_autoencoder_save_before_fit_round_trips_to_unfitted(tmp_path: Path) -> None:
    fusion = bound(AutoencoderFusion(dim=8))
    fusion.save(tmp_path)
    restored = bound(AutoencoderFusion(dim=8))
    restored.load(tmp_path)
    assert not restored.fitted


def test_trainable_state_load_from_empty_directory_names_the_plugin(tmp_path: Path) -> None:
    for fusion in (bound(GatedFusion()), bound(AutoencoderFusion())):
        with pytest.raises(FileNotFoundError, match=fusion.name):
            fusion.load(tmp_path)
