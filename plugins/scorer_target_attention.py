"""``target-attention`` scorer: each candidate attends over the history (DIN-style, no training).

For candidate i and history item j with similarity s_ij = c_i . h_j and recency weight r_j:

    a_ij  = r_j * exp(s_ij / temperature) / sum_k r_k * exp(s_ik / temperature)
    score = sum_j a_ij * s_ij

so the history items most like the candidate dominate its score (and its explanation,
which is ``a``). A large temperature tends to the ``dot`` scorer (recency-weighted mean
similarity), a small one to the best-matching history item. The recency prior can be
switched off (``recency_prior = false``). Empty history: zero scores (see ``scorer_dot``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from pydantic import Field

from polyrec.contracts import ComponentConfig, History, Scored, Scorer, hookimpl, recency_weights
from polyrec.plugins.scorer_dot import check_inputs, empty_scored, recency_query_vector

__all__ = ["TargetAttentionScorer", "TargetAttentionConfig", "attention_weights", "register_scorers"]


def attention_weights(similarities: np.ndarray, prior: np.ndarray, temperature: float) -> np.ndarray:
    """Row-wise softmax of ``similarities / temperature`` with a multiplicative ``prior`` (h,)."""
    with np.errstate(divide="ignore"):
        logits = similarities / temperature + np.log(prior)[None, :]
    logits = logits - logits.max(axis=1, keepdims=True)
    weights = np.exp(logits)
    return (weights / weights.sum(axis=1, keepdims=True)).astype(np.float32)


class TargetAttentionConfig(ComponentConfig):
    temperature: float = Field(default=0.1, gt=0, description="softmax temperature over similarities")
    half_life: float | None = Field(default=None, gt=0, description="recency half-life in seconds; default by position")
    recency_prior: bool = Field(default=True, description="multiply attention by recency weights")


class TargetAttentionScorer(Scorer):
    """Softmax attention of each candidate over the history by similarity; vectorised (m x h)."""

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
        attention = attention_weights(similarities, self.prior(history), self.config.temperature)
        scores = (attention * similarities).sum(axis=1).astype(np.float32)
        return Scored(scores=scores, weights=attention)

    def query_vector(self, history: History) -> np.ndarray:
        return recency_query_vector(history, self.config.half_life)


@hookimpl
def register_scorers(register) -> None:  # type: ignore[no-untyped-def]
    register(TargetAttentionScorer)
