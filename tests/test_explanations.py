"""The explanations of recommend, built for the k returned rows at once, are those of the
per-row definition: the ``EXPLANATION_SIZE`` heaviest history items, ties to the older, none of
weight 0."""

from __future__ import annotations

import numpy as np

from polyrec.contracts import History, HistoryWeight
from polyrec.engine.retrieval import EXPLANATION_SIZE, _explanations


def per_row(history: History, weights: np.ndarray) -> list[HistoryWeight]:
    order = np.argsort(-weights, kind="stable")[:EXPLANATION_SIZE]
    return [HistoryWeight(item=history.item_ids[j], weight=float(weights[j])) for j in order if weights[j] > 0]


def test_the_explanations_are_the_per_row_ones_with_ties_and_zero_weights() -> None:
    rng = np.random.default_rng(0)
    for h in (1, 2, 3, 5, 50):
        history = History([f"h{j}" for j in range(h)], np.zeros((h, 2), np.float32), np.arange(h, dtype=np.float64))
        weights = rng.dirichlet(np.ones(h), size=12).astype(np.float32)
        weights[0] = 1.0 / h  # all tied
        weights[1, : h // 2] = 0  # zero weights are left out
        weights[2] = np.round(weights[2], 1)  # some ties
        got = _explanations(history, weights)
        assert got == [per_row(history, row) for row in weights]
        assert all(type(w.weight) is float for row in got for w in row)
