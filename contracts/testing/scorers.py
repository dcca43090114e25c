"""Contract suite every :class:`~polyrec.contracts.Scorer` must pass.

Usage: subclass :class:`ScorerContract` in a ``Test*`` class; pytest collects the checks::

    from polyrec.contracts.testing.scorers import ScorerContract

    class TestMyScorer(ScorerContract):
        def make_scorer(self):
            return MyScorer(epochs=2)

        def make_other_scorer(self):          # other config -> other fingerprint
            return MyScorer(epochs=3)          # or None to skip that check

Author hooks (plain methods, called on a fresh instance):

* ``make_scorer()`` -> Scorer (trainable ones unfitted: the suite fits them).
* ``make_other_scorer()`` -> Scorer or None (default None: check skipped).
* ``training_data()`` -> :class:`TrainingData` trainable scorers are fitted on (default:
  :func:`clustered_training_data`, 120 unit vectors in 6 clusters of ``dim`` = 16,
  users who stay within one cluster).

What is checked: scores are float32 ``(m,)`` and finite; weights ``(m, h)``, finite and
non-negative; on a history of orthogonal unit vectors the explanation of a candidate
equal to one of them gives that item the largest weight; scores depend on each candidate
alone (permuting candidates permutes scores); an empty history gives finite ``(m,)``
scores and ``(m, 0)`` weights without error (the built-ins return zeros; cold users are
the engine's business); mismatched dimensions raise ``ValueError``; two instances with
the same config (fitted on the same data) agree; ``query_vector`` is ``(D,)`` and finite;
fingerprints; and for trainable scorers ``NotFittedError`` before fit, a fingerprint
that changes with fit, and save/load giving identical scores.
Only numpy, pytest and polyrec.contracts are imported here.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest

from polyrec.contracts import History, NotFittedError, Scorer, TrainingData

__all__ = ["ScorerContract", "clustered_training_data", "unit_rows"]


def unit_rows(matrix: np.ndarray) -> np.ndarray:
    return (matrix / np.linalg.norm(matrix, axis=1, keepdims=True)).astype(np.float32)


def clustered_training_data(
    dim: int = 16, clusters: int = 6, per_cluster: int = 20, users: int = 60, length: int = 10, seed: int = 0
) -> TrainingData:
    """Unit item vectors around ``clusters`` centres; each user's sequence stays in one cluster."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(clusters, dim))
    cluster_of = np.repeat(np.arange(clusters), per_cluster)
    vectors = unit_rows(centres[cluster_of] + 0.3 * rng.normal(size=(len(cluster_of), dim)))
    sequences = [rng.choice(np.flatnonzero(cluster_of == rng.integers(clusters)), size=length) for _ in range(users)]
    stamps = [1_000.0 + 3_600.0 * np.arange(length) for _ in range(users)]
    ids = [f"item-{i}" for i in range(len(vectors))]
    return TrainingData(ids, vectors, [f"user-{u}" for u in range(users)], sequences, stamps, seed)


class ScorerContract:
    """Mixin of scorer checks; see the module docstring for what a subclass provides."""

    atol: ClassVar[float] = 1e-5

    # ---- author hooks -------------------------------------------------------------
    def make_scorer(self) -> Scorer:
        raise NotImplementedError("ScorerContract subclasses must implement make_scorer()")

    def make_other_scorer(self) -> Scorer | None:
        return None

    def training_data(self) -> TrainingData:
        return clustered_training_data()

    # ---- helpers --------------------------------------------------------------------
    def ready_scorer(self, scorer: Scorer | None = None) -> Scorer:
        scorer = scorer if scorer is not None else self.make_scorer()
        if scorer.trainable:
            scorer.fit(self.training_data())
        return scorer

    def sample(self, h: int = 7, m: int = 25) -> tuple[History, list[str], np.ndarray]:
        """A history of h items and m candidates drawn from the training catalog."""
        data = self.training_data()
        rng = np.random.default_rng(1)
        picked = rng.choice(len(data.item_ids), size=h + m, replace=False)
        vectors = np.asarray(data.item_vectors, dtype=np.float32)
        history = History(
            [data.item_ids[i] for i in picked[:h]], vectors[picked[:h]], 1_000.0 + 60.0 * np.arange(h, dtype=np.float64)
        )
        return history, [data.item_ids[i] for i in picked[h:]], vectors[picked[h:]]

    # ---- shared fixtures ------------------------------------------------------------
    @pytest.fixture(scope="class")
    @classmethod
    def contract_scorer(cls) -> Scorer:
        return cls().ready_scorer()

    # ---- output ---------------------------------------------------------------------
    def test_scores_and_weights(self, contract_scorer: Scorer) -> None:
        history, ids, candidates = self.sample()
        scored = contract_scorer.score(history, ids, candidates)
        assert scored.scores.shape == (len(ids),) and scored.scores.dtype == np.float32
        assert np.isfinite(scored.scores).all()
        assert scored.weights.shape == (len(ids), len(history))
        assert np.isfinite(scored.weights).all() and (scored.weights >= 0).all()
        assert (scored.weights.sum(axis=1) > 0).all(), "some candidate has no explanation at all"

    def test_explanation_favours_most_similar_history_item(self, contract_scorer: Scorer) -> None:
        dim = np.asarray(self.training_data().item_vectors).shape[1]
        basis = np.eye(dim, dtype=np.float32)[:5]
        history = History([f"h{i}" for i in range(5)], basis, 1_000.0 + 60.0 * np.arange(5, dtype=np.float64))
        for target in (1, 2, 3):
            scored = contract_scorer.score(history, ["c"], basis[target : target + 1])
            weights = scored.weights[0]
            assert int(np.argmax(weights)) == target, f"candidate = history item {target}, weights {weights}"

    def test_scores_depend_on_each_candidate_alone(self, contract_scorer: Scorer) -> None:
        history, ids, candidates = self.sample()
        scored = contract_scorer.score(history, ids, candidates)
        order = np.random.default_rng(2).permutation(len(ids))
        permuted = contract_scorer.score(history, [ids[i] for i in order], candidates[order])
        np.testing.assert_allclose(permuted.scores, scored.scores[order], atol=self.atol)
        np.testing.assert_allclose(permuted.weights, scored.weights[order], atol=self.atol)
        single = contract_scorer.score(history, ids[:1], candidates[:1])
        np.testing.assert_allclose(single.scores, scored.scores[:1], atol=self.atol)

    def test_empty_history(self, contract_scorer: Scorer) -> None:
        _, ids, candidates = self.sample()
        empty = History([], np.zeros((0, candidates.shape[1]), np.float32), np.zeros(0))
        scored = contract_scorer.score(empty, ids, candidates)
        assert scored.scores.shape == (len(ids),) and np.isfinite(scored.scores).all()
        assert scored.weights.shape == (len(ids), 0)

    def test_mismatched_dimensions_rejected(self, contract_scorer: Scorer) -> None:
        history, ids, candidates = self.sample()
        with pytest.raises(ValueError):
            contract_scorer.score(history, ids, candidates[:, :-1])

    def test_query_vector(self, contract_scorer: Scorer) -> None:
        history, _, candidates = self.sample()
        vector = contract_scorer.query_vector(history)
        assert vector.shape == (candidates.shape[1],) and np.isfinite(vector).all()
        assert np.linalg.norm(vector) > 0

    def test_deterministic_across_instances(self, contract_scorer: Scorer) -> None:
        history, ids, candidates = self.sample()
        expected = contract_scorer.score(history, ids, candidates)
        again = self.ready_scorer().score(history, ids, candidates)
        np.testing.assert_allclose(again.scores, expected.scores, atol=self.atol)
        np.testing.assert_allclose(again.weights, expected.weights, atol=self.atol)

    # ---- identity -------------------------------------------------------------------
    def test_fingerprint_is_stable(self, contract_scorer: Scorer) -> None:
        fingerprint = contract_scorer.fingerprint
        assert isinstance(fingerprint, str) and contract_scorer.name in fingerprint
        assert self.ready_scorer().fingerprint == fingerprint

    def test_fingerprint_changes_with_config(self, contract_scorer: Scorer) -> None:
        other = self.make_other_scorer()
        if other is None:
            pytest.skip("make_other_scorer() returned None")
        assert other.fingerprint != contract_scorer.fingerprint

    # ---- trained state --------------------------------------------------------------
    def test_not_fitted_error_before_fit(self, contract_scorer: Scorer) -> None:
        if not contract_scorer.trainable:
            pytest.skip("not trainable")
        history, ids, candidates = self.sample()
        with pytest.raises(NotFittedError, match="fit"):
            self.make_scorer().score(history, ids, candidates)

    def test_fit_changes_fingerprint(self, contract_scorer: Scorer) -> None:
        if not contract_scorer.trainable:
            pytest.skip("not trainable")
        assert self.make_scorer().fingerprint != contract_scorer.fingerprint

    def test_save_load_round_trip(self, contract_scorer: Scorer, tmp_path: Path) -> None:
        if not contract_scorer.trainable:
            pytest.skip("not trainable")
        history, ids, candidates = self.sample()
        contract_scorer.save(tmp_path)
        restored = self.make_scorer()
        restored.load(tmp_path)
        assert restored.fingerprint == contract_scorer.fingerprint
        expected = contract_scorer.score(history, ids, candidates)
        np.testing.assert_array_equal(restored.score(history, ids, candidates).scores, expected.scores)
