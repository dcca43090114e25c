"""``target-attention`` scorer: each candidate attends over the history (DIN-style, no training).

For candidate i and history item j with similarity s_ij = c_i . h_j and recency weight r_j:

    a_ij  = r_j * exp(s_ij / T) / sum_k r_k * exp(s_ik / T)        (attention, the explanation)
    score = T * log sum_j r_j * exp(s_ij / T)                       (a soft maximum of s_i.)

The score is the log-sum-exp whose gradient in s_ij is exactly a_ij, so the weights are
an exact attribution of the score. A candidate very like a few history items outranks
one mildly like all of them (a user with two tastes keeps both, where the mean vector
would blur them into neither), yet the history mass behind a match still counts: one
stray event does not outweigh many consistent ones the way a normalised
attention-weighted similarity would let it. A large temperature T tends to the ``dot``
scorer (recency-weighted mean similarity), a small one to the best-matching history item.
The recency prior can be switched off (``recency_prior = false``). Empty history: zero
scores (see :mod:`.base`). Vectorised over m candidates x h history items.

Default temperature 0.02: the cosine similarities of unit vectors from embedding models
bunch together (MiniLM on short texts: standard deviation about 0.07 between items), and
T must be a fraction of that spread for the soft maximum to favour the best-matching
history item; at T = 0.1 the scorer is little more than ``dot``. Erring low costs less:
a too-small T scores by the best single match (item-kNN like), a too-large one blurs a
user's tastes into their mean, which is what this scorer exists to avoid.

``popularity`` > 0 adds ``popularity * log(1 + number of events)`` of each candidate (in a
recent window with ``popularity_window``), a prior counted from the event log without
training (see :mod:`.popularity_prior`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from pydantic import Field

from polyrec.contracts import History, Scored, hookimpl, recency_weights
from polyrec.plugins.scorers.base import (
    attention_weights,
    check_inputs,
    empty_scored,
    recency_query_vector,
    soft_maximum,
)
from polyrec.plugins.scorers.popularity_prior import PopularityPriorConfig, PopularityPriorScorer

__all__ = ["TargetAttentionConfig", "TargetAttentionScorer", "register_scorers"]


class TargetAttentionConfig(PopularityPriorConfig):
    temperature: float = Field(default=0.02, gt=0, description="softmax temperature over similarities")
    half_life: float | None = Field(default=None, gt=0, description="recency half-life in seconds; default by position")
    recency_prior: bool = Field(default=True, description="multiply attention by recency weights")


class TargetAttentionScorer(PopularityPriorScorer):
    """Soft maximum of each candidate's similarity to the history; attention as explanation."""

    name = "target-attention"
    Config = TargetAttentionConfig
    config: TargetAttentionConfig

    def prior(self, history: History) -> np.ndarray:
        if self.config.recency_prior:
            return recency_weights(np.asarray(history.timestamps), self.config.half_life)
        return np.full(len(history), 1.0 / len(history), dtype=np.float32)

    def score(self, history: History, candidate_ids: Sequence[str], candidates: np.ndarray) -> Scored:
        candidates = check_inputs(self.name, history, candidate_ids, candidates)
        if len(history) == 0:
            return empty_scored(len(candidates))
        similarities = candidates @ np.asarray(history.vectors, dtype=np.float32).T
        prior, temperature = self.prior(history), self.config.temperature
        scores = soft_maximum(similarities, prior, temperature)
        scored = Scored(scores=scores, weights=attention_weights(similarities, prior, temperature))
        return self.popularity_prior.with_bonus(scored, history, candidate_ids)

    def query_vector(self, history: History) -> np.ndarray:
        return recency_query_vector(history, self.config.half_life)


@hookimpl
def register_scorers(register) -> None:  # type: ignore[no-untyped-def]
    register(TargetAttentionScorer)
