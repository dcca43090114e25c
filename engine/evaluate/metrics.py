"""Ranking metrics for one held-out item per case, from full score vectors.

Each case has a score for every catalog item, with masked items (the user's history) at
``-inf``. The held-out item's position among the others decides Hit@K (1 if it is in the
top K), NDCG@K (``1 / log2(rank + 1)`` in the top K, else 0: with a single relevant item
the ideal DCG is 1) and MRR@K (``1 / rank`` in the top K, else 0).

Ties: a candidate that scores exactly as high as the held-out item is as likely to be
placed above it as below it. Each metric is its expectation over a uniformly random
order of the tied items: with ``h`` items strictly higher and ``t`` tied, the rank is
uniform on ``h + 1 .. h + t + 1``. So a scorer that gives everything the same score gets
exactly the random-ranking value, neither the best rank (which would reward constant
scores) nor the worst. RecBole breaks ties by whatever ``torch.topk`` returns.

Coverage@K is the fraction of catalog items that appear in at least one case's top K;
for the top-K list, ties are broken by catalog order and masked items never appear.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

__all__ = [
    "METRICS",
    "rank_counts",
    "metric_gains",
    "expected_at_k",
    "top_k_mask",
    "random_expectation",
    "RankingAccumulator",
]

METRICS: tuple[str, ...] = ("hit", "ndcg", "mrr")


def rank_counts(scores: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row: how many candidates score strictly higher than the target, and how many tie with it.

    ``scores`` is ``(b, n)`` with masked items at ``-inf``; ``targets`` are column indices.
    """
    scores = np.asarray(scores)
    if np.isnan(scores).any():
        raise ValueError("scores contain NaN; a scorer must return finite scores (or -inf for masked items)")
    target_scores = scores[np.arange(len(targets)), targets][:, None]
    higher = (scores > target_scores).sum(axis=1)
    tied = (scores == target_scores).sum(axis=1) - 1
    return higher.astype(np.int64), tied.astype(np.int64)


def metric_gains(metric: str, k: int) -> np.ndarray:
    """``gains[r - 1]`` is the metric's value at rank ``r`` for ranks 1..k."""
    ranks = np.arange(1, k + 1, dtype=np.float64)
    if metric == "hit":
        return np.ones(k)
    if metric == "ndcg":
        return 1.0 / np.log2(ranks + 1)
    if metric == "mrr":
        return 1.0 / ranks
    raise ValueError(f"unknown metric {metric!r}; known: {', '.join(METRICS)}")


def expected_at_k(higher: np.ndarray, tied: np.ndarray, metric: str, k: int) -> np.ndarray:
    """The metric@k per row, in expectation over random orders of the tied items."""
    cumulative = np.r_[0.0, np.cumsum(metric_gains(metric, k))]
    higher, tied = np.asarray(higher), np.asarray(tied)
    low = np.minimum(higher, k)
    high = np.minimum(higher + tied + 1, k)
    return (cumulative[high] - cumulative[low]) / (tied + 1)


def random_expectation(candidates: np.ndarray, metric: str, k: int) -> np.ndarray:
    """The metric@k of a uniformly random ranking over ``candidates`` items (held-out item included)."""
    candidates = np.asarray(candidates)
    return expected_at_k(np.zeros_like(candidates), candidates - 1, metric, k)


def top_k_mask(scores: np.ndarray, k: int) -> np.ndarray:
    """Boolean ``(b, n)``: each row's top ``k`` finite scores, ties broken by column order."""
    scores = np.asarray(scores)
    k = min(k, scores.shape[1])
    kth = -np.partition(-scores, k - 1, axis=1)[:, k - 1 : k]
    above = scores > kth
    tie = scores == kth
    room = k - above.sum(axis=1, keepdims=True)
    return (above | (tie & (np.cumsum(tie, axis=1) <= room))) & np.isfinite(scores)


class RankingAccumulator:
    """Collects batches of masked score rows and reports mean metrics over all cases."""

    def __init__(self, n_items: int, ks: Iterable[int] = (10, 20)) -> None:
        self.n_items = n_items
        self.ks = tuple(sorted(set(ks)))
        if not self.ks or min(self.ks) < 1:
            raise ValueError(f"k must be positive integers, got {ks}")
        self._values: dict[str, list[np.ndarray]] = {f"{m}@{k}": [] for k in self.ks for m in METRICS}
        self._random: dict[str, list[np.ndarray]] = {f"{m}@{k}": [] for k in self.ks for m in METRICS}
        self._covered = {k: np.zeros(n_items, dtype=bool) for k in self.ks}
        self.cases = 0
        self.unranked = 0

    def add(self, scores: np.ndarray, targets: np.ndarray) -> None:
        """``scores`` ``(b, n_items)`` masked with -inf; ``targets`` column indices, -1 for a
        held-out item that is not in the catalog (counted as a miss)."""
        scores, targets = np.asarray(scores), np.asarray(targets)
        if scores.shape != (len(targets), self.n_items):
            raise ValueError(f"scores have shape {scores.shape}, expected ({len(targets)}, {self.n_items})")
        ranked = targets >= 0
        higher, tied = rank_counts(scores[ranked], targets[ranked])
        candidates = np.isfinite(scores[ranked]).sum(axis=1)
        for k in self.ks:
            for metric in METRICS:
                values = np.zeros(len(targets))
                values[ranked] = expected_at_k(higher, tied, metric, k)
                self._values[f"{metric}@{k}"].append(values)
                chance = np.zeros(len(targets))
                chance[ranked] = random_expectation(candidates, metric, k)
                self._random[f"{metric}@{k}"].append(chance)
            self._covered[k] |= top_k_mask(scores, k).any(axis=0)
        self.cases += len(targets)
        self.unranked += int((~ranked).sum())

    def _means(self, table: dict[str, list[np.ndarray]]) -> dict[str, float]:
        return {name: float(np.concatenate(parts).mean()) if self.cases else 0.0 for name, parts in table.items()}

    def result(self) -> dict[str, float | int]:
        """Mean metrics (``hit@10``, ``ndcg@10``, ``mrr@10``, ..., ``coverage@10``), ``cases``, ``unranked``."""
        out: dict[str, float | int] = dict(self._means(self._values))
        out |= {f"coverage@{k}": float(self._covered[k].mean()) if self.n_items else 0.0 for k in self.ks}
        out |= {"cases": self.cases, "unranked": self.unranked}
        return out

    def random_result(self) -> dict[str, float]:
        """What a uniformly random ranking of the same candidates would score, in expectation."""
        return self._means(self._random)
