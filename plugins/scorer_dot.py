"""``dot`` scorer: dot product with the recency-weighted mean of the history.

Also home of what every built-in scorer shares: input validation (:func:`check_inputs`),
the empty-history answer (:func:`empty_scored`), the dot-contribution explanation
(:func:`contribution_weights`) and the popularity prior (:class:`PopularityPrior`).

Popularity prior (``popularity`` > 0, default 0): ``score += popularity * log(1 + n_i)``
with n_i the number of events of candidate i in the event log. The counts are statistics,
not training: the engine hands every scorer the log on each ``fit`` (:meth:`Scorer.observe`),
also when nothing is trainable. ``popularity`` is in the units of the content score (cosine
similarity for unit vectors) per e-fold of popularity: an item ten times as popular gains
``2.3 * popularity``. Only ratios of counts matter, so the same weight means the same on a
log ten times as long. Until the first observe (or with weight 0) the scores are pure
content; items without events (or ingested after the last fit) count 0. The explanation
weights explain the content part only. At serving time the prior re-ranks the candidates
the content query vector retrieved; it does not pull in popular items from elsewhere.

Empty history: every built-in scorer returns all-zero scores and ``(m, 0)`` weights. A
scorer does not guess for a user it knows nothing about; the engine decides what a cold
user gets (e.g. popular items).
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from pydantic import Field

from polyrec.contracts import ComponentConfig, Event, History, Scored, Scorer, hookimpl, recency_weights

__all__ = [
    "DotScorer",
    "DotConfig",
    "check_inputs",
    "empty_scored",
    "contribution_weights",
    "weighted_mean_vector",
    "recency_query_vector",
    "PopularityPrior",
    "popularity_field",
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


def popularity_field() -> Any:
    """The ``popularity`` config parameter of the built-in scorers (see the module docstring)."""
    return Field(
        default=0.0,
        ge=0,
        allow_inf_nan=False,
        description="weight of log(1 + the item's number of events) added to the score; 0: content only",
    )


class PopularityPrior:
    """``weight * log(1 + number of events)`` per item id, counted from the event log."""

    def __init__(self, weight: float) -> None:
        self.weight = float(weight)
        self.counts: dict[str, int] = {}
        self.digest = ""

    def observe(self, events: Iterable[Event]) -> None:
        """Count the events of each item, replacing earlier counts (nothing to count at weight 0)."""
        if self.weight == 0:
            return
        self.counts = dict(Counter(event.item for event in events))
        listing = "\n".join(f"{item}\t{count}" for item, count in sorted(self.counts.items()))
        self.digest = hashlib.sha256(listing.encode()).hexdigest()[:16] if self.counts else ""

    def bonus(self, candidate_ids: Sequence[str]) -> np.ndarray:
        """float64 ``(m,)``: what the prior adds to each candidate's score (zeros without counts)."""
        if self.weight == 0 or not self.counts:
            return np.zeros(len(candidate_ids))
        get = self.counts.get
        counts = np.fromiter((get(item, 0) for item in candidate_ids), dtype=np.float64, count=len(candidate_ids))
        return self.weight * np.log1p(counts)

    def with_bonus(self, scored: Scored, candidate_ids: Sequence[str]) -> Scored:
        """``scored`` with the prior added to its scores (weights, the explanation, unchanged)."""
        if self.weight == 0 or not self.counts:
            return scored
        scores = (scored.scores.astype(np.float64) + self.bonus(candidate_ids)).astype(np.float32)
        return Scored(scores=scores, weights=scored.weights)

    def fingerprint_part(self) -> str:
        """Counts change the scores: name them (by digest) in the scorer's fingerprint."""
        return f"|popularity-counts:{self.digest}" if self.weight and self.digest else ""


class DotConfig(ComponentConfig):
    half_life: float | None = Field(
        default=None, gt=0, description="recency half-life in seconds; default: by position (see recency_weights)"
    )
    popularity: float = popularity_field()


class DotScorer(Scorer):
    """score = candidate . (recency-weighted mean of history vectors).

    Explanation: history item j's share of candidate i's score, recency_j * (c_i . h_j),
    negatives clipped, rows normalised to 1.
    """

    name = "dot"
    Config = DotConfig
    config: DotConfig

    def __init__(self, config: DotConfig | None = None, **params: Any) -> None:
        super().__init__(config, **params)
        self.popularity_prior = PopularityPrior(self.config.popularity)

    @property
    def fingerprint(self) -> str:
        return super().fingerprint + self.popularity_prior.fingerprint_part()

    def observe(self, events: Sequence[Event]) -> None:
        self.popularity_prior.observe(events)

    def score(self, history: History, candidate_ids: Sequence[str], candidates: np.ndarray) -> Scored:
        candidates = check_inputs(self.name, history, candidate_ids, candidates)
        if len(history) == 0:
            return empty_scored(len(candidates))
        recency, _ = weighted_mean_vector(history, self.config.half_life)
        contributions = (candidates @ np.asarray(history.vectors, dtype=np.float32).T) * recency[None, :]
        scores = contributions.sum(axis=1).astype(np.float32)
        scored = Scored(scores=scores, weights=contribution_weights(contributions, recency))
        return self.popularity_prior.with_bonus(scored, candidate_ids)

    def query_vector(self, history: History) -> np.ndarray:
        return recency_query_vector(history, self.config.half_life)


@hookimpl
def register_scorers(register) -> None:  # type: ignore[no-untyped-def]
    register(DotScorer)
