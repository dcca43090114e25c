"""``dot`` scorer: dot product with the recency-weighted mean of the history.

Also home of what every built-in scorer shares: input validation (:func:`check_inputs`),
the empty-history answer (:func:`empty_scored`) and the dot-contribution explanation
(:func:`contribution_weights`).

``popularity`` > 0 adds a prior counted from the event log (see :mod:`.popularity_prior`).

Empty history: every built-in scorer returns all-zero scores and ``(m, 0)`` weights. A
scorer does not guess for a user it knows nothing about; the engine decides what a cold
user gets (e.g. popular items).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from pydantic import Field

from polyrec.contracts import History, Scored, hookimpl, recency_weights
from polyrec.plugins.popularity_prior import PopularityPriorConfig, PopularityPriorScorer

__all__ = [
    "DotScorer",
    "DotConfig",
    "check_inputs",
    "empty_scored",
    "contribution_weights",
    "weighted_mean_vector",
    "recency_query_vector",
    "register_scorers",
]


def check_inputs(plugin: str, history: History, candidate_ids: Sequence[str], candidates: np.ndarray) -> np.ndarray:
    """Validate shapes; return the candidates as float32 ``(m, D)``."""
    candidates = np.asarray(candidates, dtype=np.float32)
    if candidates.ndim != 2:
        raise ValueError(f"scorer {plugin!r}: candidates must be 2-d (m, dim), got shape {candidates.shape}")
    if len(candidate_ids) != len(candidates):
        raise ValueError(f"scorer {plugin!r}: {len(candidate_ids)} candidate ids for {len(candidates)} vectors")
    vectors = np.asarray(history.vectors)
    if len(history) and (vectors.ndim != 2 or vectors.shape != (len(history), candidates.shape[1])):
        raise ValueError(
            f"scorer {plugin!r}: history vectors have shape {vectors.shape}, "
            f"expected ({len(history)}, {candidates.shape[1]}) to match the candidates"
        )
    if len(history.timestamps) != len(history):
        raise ValueError(f"scorer {plugin!r}: {len(history.timestamps)} timestamps for {len(history)} history items")
    return candidates


def empty_scored(m: int) -> Scored:
    """The answer for an empty history: zero scores, no weights."""
    return Scored(scores=np.zeros(m, dtype=np.float32), weights=np.zeros((m, 0), dtype=np.float32))


def weighted_mean_vector(history: History, half_life: float | None) -> tuple[np.ndarray, np.ndarray]:
    """``(recency weights (h,), weighted mean of the history vectors (D,))``."""
    recency = recency_weights(np.asarray(history.timestamps), half_life)
    return recency, (recency @ np.asarray(history.vectors, dtype=np.float32)).astype(np.float32)


def recency_query_vector(history: History, half_life: float | None) -> np.ndarray:
    """Unit-length recency-weighted mean of the history (zeros for an empty history)."""
    vectors = np.asarray(history.vectors, dtype=np.float32)
    if len(history) == 0:
        return np.zeros(vectors.shape[1] if vectors.ndim == 2 else 0, dtype=np.float32)
    _, vector = weighted_mean_vector(history, half_life)
    norm = float(np.linalg.norm(vector))
    return (vector / norm if norm > 0 else vector).astype(np.float32)


def contribution_weights(contributions: np.ndarray, recency: np.ndarray) -> np.ndarray:
    """Per-candidate share of each history item in the score, rows summing to 1.

    Negative contributions count as zero (they argued against the candidate, not for it).
    A candidate nothing in the history argues for falls back to the recency weights.
    """
    positive = np.maximum(contributions, 0.0)
    totals = positive.sum(axis=1, keepdims=True)
    fallback = np.broadcast_to(recency[None, :], positive.shape)
    weights = np.where(totals > 0, positive / np.where(totals > 0, totals, 1.0), fallback)
    return weights.astype(np.float32)


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
