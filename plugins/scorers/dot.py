"""``dot`` scorer: dot product with the recency-weighted mean of the history.

``popularity`` > 0 adds a prior counted from the event log (see :mod:`.popularity_prior`).

Empty history: every built-in scorer returns all-zero scores and ``(m, 0)`` weights. A
scorer does not guess for a user it knows nothing about; the engine decides what a cold
user gets (e.g. popular items).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from pydantic import Field

from polyrec.contracts import History, Scored, hookimpl
from polyrec.plugins.scorers.base import (
    check_inputs,
    contribution_weights,
    empty_scored,
    recency_query_vector,
    weighted_mean_vector,
)
from polyrec.plugins.scorers.popularity_prior import PopularityPriorConfig, PopularityPriorScorer

__all__ = ["DotConfig", "DotScorer", "register_scorers"]


class DotConfig(PopularityPriorConfig):
    half_life: float | None = Field(
        default=None, gt=0, description="recency half-life in seconds; default: by position (see recency_weights)"
    )


class DotScorer(PopularityPriorScorer):
    """score = candidate . (recency-weighted mean of history vectors).

    Explanation: history item j's share of candidate i's score, recency_j * (c_i . h_j),
    negatives clipped, rows normalised to 1.
    """

    name = "dot"
    Config = DotConfig
    config: DotConfig

    def score(self, history: History, candidate_ids: Sequence[str], candidates: np.ndarray) -> Scored:
        candidates = check_inputs(self.name, history, candidate_ids, candidates)
        if len(history) == 0:
            return empty_scored(len(candidates))
        recency, _ = weighted_mean_vector(history, self.config.half_life)
        contributions = (candidates @ np.asarray(history.vectors, dtype=np.float32).T) * recency[None, :]
        scores = contributions.sum(axis=1).astype(np.float32)
        scored = Scored(scores=scores, weights=contribution_weights(contributions, recency))
        return self.popularity_prior.with_bonus(scored, history, candidate_ids)

    def query_vector(self, history: History) -> np.ndarray:
        return recency_query_vector(history, self.config.half_life)


@hookimpl
def register_scorers(register) -> None:  # type: ignore[no-untyped-def]
    register(DotScorer)
