"""A starting point for users with little history: item scores predicted from their attributes.

The model (fitted by ``Engine.fit`` from the event log and the stored user attributes):

1. Every user with attributes and events is one training row: the features of
   :class:`~.user_features.AttributeFeaturizer` in, and out the items of that user's
   events, each worth ``1 / n ** weighting`` for a user with ``n`` distinct items.
   ``weighting`` 0 counts every event alike (the intercept below is then the items'
   popularity, the ``pop`` ranking), 1 counts every user alike (a row sums to 1: heavy
   users do not define what "people like me" do); 0.5 is between.
2. Ridge regression from features to those rows, with an unpenalised intercept: the
   intercept alone is a popularity, each feature moves the items that users with it
   prefer, and the penalty shrinks the whole prior toward that popularity: an
   attribute-conditioned popularity. ``weighting`` and the penalty are chosen together
   by 5-fold cross-validation over the training users (the pair whose fits rank the
   held-out fold's events best, NDCG@10 summed over the folds), so they adapt to the
   data set instead of being set on one. The events judged are each held-out user's
   after their first :data:`JUDGED_AFTER` (5), as the ``cold-users`` protocol judges
   them: a user's first events often follow a sign-up flow rather than their taste
   (MovieLens asks new users to rate well-known films), a recommender need not predict
   those, and judging on them favours whatever those flows show. With too few users
   past five events, whole histories are judged.
3. A user's prior is ``intercept + (features - mean features) @ W``: one score per item
   of the training events (the ``max_items`` most interacted with, which bounds memory
   to ``features x max_items`` floats).

Blending out: with ``n`` events of their own, a user's final score is
``a * z(prior) + (1 - a) * z(history score)`` with ``a = prior_events / (prior_events + n)``
and ``z`` standardising each score over the items scored (their scales differ). The prior
thus counts like ``prior_events`` pseudo-events: it decides alone for a new user, as much
as the history after ``prior_events`` events, and fades as the history grows.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from polyrec.contracts import PolyrecError
from polyrec.engine.user_features import AttributeFeaturizer

__all__ = [
    "PRIOR_FILE",
    "NotEnoughUsers",
    "AttributePrior",
    "blend_weight",
    "blend_scores",
    "standardize",
]

PRIOR_FILE = "user_prior"
#: candidate ridge penalties, as multiples of the number of training users
_PENALTIES = (0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0)
#: candidate row weightings: a user with n items weighs each 1 / n ** weighting
_WEIGHTINGS = (0.0, 0.5, 1.0)
_FALLBACK_WEIGHTING = 1.0
_FALLBACK_PENALTY = 0.1
_FOLDS = 5
#: the prior is judged on the events after a user's first JUDGED_AFTER (see the docstring)
JUDGED_AFTER = 5
_MIN_VALIDATION_USERS = 10
_MAX_VALIDATION_USERS = 500
_NDCG_K = 10


class NotEnoughUsers(PolyrecError, ValueError):
    """Too few users have both attributes and events to learn anything from attributes."""


def _ndcg_of_histories(scores: np.ndarray, histories: Sequence[np.ndarray]) -> float:
    """Mean over users of the mean NDCG@10 of each of their items, ranked by ``scores`` rows."""
    values = []
    for row, items in zip(scores, histories):
        ranks = (row[None, :] > row[items][:, None]).sum(axis=1) + 1
        gains = np.where(ranks <= _NDCG_K, 1.0 / np.log2(ranks + 1), 0.0)
        values.append(float(gains.mean()))
    return float(np.mean(values)) if values else 0.0


def _shares(histories: Sequence[np.ndarray], n_items: int, weighting: float = 1.0) -> Any:
    """Sparse ``(users, items)``: 1 for each of a user's distinct items, over ``n ** weighting``."""
    from scipy import sparse

    rows = np.concatenate([np.full(len(items), r) for r, items in enumerate(histories)])
    cols = np.concatenate(histories)
    matrix = sparse.csr_matrix((np.ones(len(cols), np.float64), (rows, cols)), shape=(len(histories), n_items))
    matrix.sum_duplicates()
    matrix.data[:] = 1.0
    totals = np.asarray(matrix.sum(axis=1)).ravel()
    return sparse.diags(1.0 / np.maximum(totals, 1.0) ** weighting) @ matrix


class _Ridge:
    """Centred ridge regression ``Y ~ b + (X - x_mean) W`` solved in closed form."""

    def __init__(self, features: np.ndarray, targets: Any, penalty: float) -> None:
        n = len(features)
        self.x_mean = features.mean(axis=0)
        self.bias = np.asarray(targets.sum(axis=0)).ravel() / max(n, 1)
        centred = features - self.x_mean
        gram = centred.T @ centred + penalty * np.eye(features.shape[1])
        cross = np.asarray((targets.T @ centred).T)  # X_c^T Y, without densifying Y
        self.weights = np.linalg.solve(gram, cross).astype(np.float32)

    def predict(self, features: np.ndarray) -> np.ndarray:
        return (self.bias[None, :] + (features - self.x_mean) @ self.weights).astype(np.float32)


def _positions(items: Sequence[str], position: Mapping[str, int]) -> np.ndarray:
    return np.array(sorted({position[i] for i in items if i in position}), np.int64)


def _later(items: Sequence[str]) -> list[str]:
    """The items after a user's first :data:`JUDGED_AFTER` events, leaving out those among them."""
    first = set(items[:JUDGED_AFTER])
    return [item for item in items[JUDGED_AFTER:] if item not in first]


def _pick_fit(
    features: np.ndarray, histories: list[np.ndarray], judged: list[np.ndarray], n_items: int, seed: int
) -> tuple[float, float]:
    """``(weighting, penalty)``: the pair whose fits on most training users best rank the
    ``judged`` items of the rest, over :data:`_FOLDS` seeded folds (one slice is noisy on a
    few hundred users; several average that out). Users without judged items are not
    judged; when too few have any, every user's whole history is judged instead."""
    if sum(1 for items in judged if len(items)) < _FOLDS * _MIN_VALIDATION_USERS:
        judged = histories
    n = len(features)
    fold_size = min(_MAX_VALIDATION_USERS, n // _FOLDS)
    if fold_size < _MIN_VALIDATION_USERS:
        return _FALLBACK_WEIGHTING, _FALLBACK_PENALTY * n
    order = np.random.default_rng(seed).permutation(n)
    folds = [order[f * fold_size : (f + 1) * fold_size] for f in range(_FOLDS)]
    quality: dict[tuple[float, float], float] = {}
    for fold in folds:
        valid = np.zeros(n, dtype=bool)
        valid[fold] = True
        train_rows = np.flatnonzero(~valid)
        fold = fold[[len(judged[r]) > 0 for r in fold]]
        held = [judged[r] for r in fold]
        for weighting in _WEIGHTINGS:
            targets = _shares([histories[r] for r in train_rows], n_items, weighting)
            for multiple in _PENALTIES:
                model = _Ridge(features[train_rows], targets, multiple * len(train_rows))
                score = _ndcg_of_histories(model.predict(features[fold]), held)
                quality[weighting, multiple] = quality.get((weighting, multiple), 0.0) + score
    weighting, multiple = max(quality, key=lambda pair: quality[pair])
    return weighting, multiple * n


class AttributePrior:
    """Per-item scores for a user from their attributes alone (see the module docstring)."""

    def __init__(
        self,
        featurizer: AttributeFeaturizer,
        item_ids: Sequence[str],
        model: _Ridge,
        penalty: float,
        weighting: float = _FALLBACK_WEIGHTING,
    ):
        self.featurizer = featurizer
        self.item_ids = list(item_ids)
        self.model = model
        self.penalty = penalty
        self.weighting = weighting

    @classmethod
    def fit(
        cls,
        attributes: Mapping[str, Mapping[str, Any]],
        histories: Mapping[str, Sequence[str]],
        *,
        columns: Sequence[str] | None = None,
        min_count: int = 5,
        max_items: int = 50_000,
        seed: int = 0,
    ) -> AttributePrior:
        """Fit on the users that have both attributes and events (``histories``: items, oldest first)."""
        users = sorted(user for user, items in histories.items() if items and user in attributes)
        if len(users) < 2 * min_count:
            raise NotEnoughUsers(
                f"user prior: {len(users)} users have both attributes and events; at least {2 * min_count} are needed"
            )
        counts: dict[str, int] = {}
        for user in users:
            for item in histories[user]:
                counts[item] = counts.get(item, 0) + 1
        item_ids = sorted(counts, key=lambda item: (-counts[item], item))[:max_items]
        position = {item: i for i, item in enumerate(item_ids)}
        rows = [attributes[user] for user in users]
        featurizer = AttributeFeaturizer.fit(rows, columns=columns, min_count=min_count)
        features = featurizer.transform(rows).astype(np.float64)
        encoded = [_positions(histories[u], position) for u in users]
        judged = [_positions(_later(histories[u]), position) for u in users]
        keep = [r for r, items in enumerate(encoded) if len(items)]
        features, encoded, judged = features[keep], [encoded[r] for r in keep], [judged[r] for r in keep]
        weighting, penalty = _pick_fit(features, encoded, judged, len(item_ids), seed)
        model = _Ridge(features, _shares(encoded, len(item_ids), weighting), penalty)
        return cls(featurizer, item_ids, model, penalty, weighting)

    def scores(self, attributes: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """``(len(attributes), len(item_ids))`` prior scores (the predicted rows of step 1)."""
        return self.model.predict(self.featurizer.transform(list(attributes)).astype(np.float64))

    def describe(self) -> str:
        kinds = ", ".join(f"{c.name} ({c.kind}, {c.size})" for c in self.featurizer.columns) or "none"
        return (
            f"{self.featurizer.size} features from {kinds}; {len(self.item_ids)} items; "
            f"ridge {self.penalty:.3g}, row weighting 1/n^{self.weighting:g}"
        )

    # -- persistence ---------------------------------------------------------------------

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        np.savez(
            directory / f"{PRIOR_FILE}.npz",
            weights=self.model.weights,
            bias=self.model.bias,
            x_mean=self.model.x_mean,
        )
        meta = {
            "items": self.item_ids,
            "penalty": self.penalty,
            "weighting": self.weighting,
            "features": self.featurizer.to_json(),
        }
        (directory / f"{PRIOR_FILE}.json").write_text(json.dumps(meta), encoding="utf-8")

    @classmethod
    def load(cls, directory: Path) -> AttributePrior | None:
        """The prior saved in ``directory``, or None when there is none."""
        meta_path, arrays_path = directory / f"{PRIOR_FILE}.json", directory / f"{PRIOR_FILE}.npz"
        if not (meta_path.is_file() and arrays_path.is_file()):
            return None
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        with np.load(arrays_path) as arrays:
            model = _Ridge.__new__(_Ridge)
            model.weights, model.bias, model.x_mean = arrays["weights"], arrays["bias"], arrays["x_mean"]
        features = AttributeFeaturizer.from_json(meta["features"])
        weighting = float(meta.get("weighting", _FALLBACK_WEIGHTING))  # priors saved before weighting was chosen
        return cls(features, meta["items"], model, float(meta["penalty"]), weighting)


def blend_weight(events: int, prior_events: float) -> float:
    """The prior's share of the score after ``events`` of the user's own events."""
    if prior_events <= 0:
        return 0.0 if events else 1.0
    return prior_events / (prior_events + events)


def standardize(scores: np.ndarray) -> np.ndarray:
    """Zero mean, unit spread over the finite scores (a constant row becomes zeros)."""
    scores = np.asarray(scores, dtype=np.float64)
    finite = np.isfinite(scores)
    if not finite.any():
        return np.zeros_like(scores)
    mean, spread = scores[finite].mean(), scores[finite].std()
    out = (scores - mean) / spread if spread > 0 else scores - mean
    return np.where(finite, out, scores)


def blend_scores(prior: np.ndarray, history: np.ndarray | None, events: int, prior_events: float) -> np.ndarray:
    """The final scores of one user over the same items: the prior alone when there is no history."""
    if history is None or events == 0:
        return standardize(prior)
    weight = blend_weight(events, prior_events)
    return weight * standardize(prior) + (1 - weight) * standardize(history)
