"""What every built-in scorer shares.

Input validation (:func:`check_inputs`), the empty-history answer (:func:`empty_scored`),
recency-weighted history vectors, the dot-contribution explanation
(:func:`contribution_weights`) and prior-weighted attention (:func:`attention_weights`,
:func:`soft_maximum`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from polyrec.contracts import History, Scored, recency_weights

__all__ = [
    "attention_weights",
    "check_inputs",
    "contribution_weights",
    "empty_scored",
    "recency_query_vector",
    "soft_maximum",
    "weighted_mean_vector",
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


def _prior_logits(similarities: np.ndarray, prior: np.ndarray, temperature: float) -> np.ndarray:
    with np.errstate(divide="ignore"):  # a zero prior is a weight of exactly zero
        return similarities / temperature + np.log(prior)[None, :]


def attention_weights(similarities: np.ndarray, prior: np.ndarray, temperature: float) -> np.ndarray:
    """Row-wise softmax of ``similarities / temperature`` with a multiplicative ``prior`` (h,)."""
    # in place on the new array of logits: the request path re-ranks hundreds of candidates a call
    weights = _prior_logits(similarities, prior, temperature)
    weights -= weights.max(axis=1, keepdims=True)
    np.exp(weights, out=weights)
    weights /= weights.sum(axis=1, keepdims=True)
    return weights.astype(np.float32, copy=False)


def soft_maximum(similarities: np.ndarray, prior: np.ndarray, temperature: float) -> np.ndarray:
    """Row-wise ``temperature * log sum_j prior_j * exp(similarity_j / temperature)``."""
    # float64 and an exactly normalised prior: at a high temperature the result is a small
    # difference of large numbers, and T * log(sum of a float32 prior) would shift it
    prior = prior.astype(np.float64) / float(np.sum(prior, dtype=np.float64))
    logits = _prior_logits(similarities.astype(np.float64), prior, temperature)
    top = logits.max(axis=1, keepdims=True)
    return (temperature * (top[:, 0] + np.log(np.exp(logits - top).sum(axis=1)))).astype(np.float32)
