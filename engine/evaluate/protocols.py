"""Full-ranking evaluation of held-out cases: build histories, score every item, mask, rank.

A :class:`CaseScorer` turns a batch of histories into a ``(b, n_items)`` score matrix over
the whole catalog. :class:`ComponentScorer` wraps any :class:`Scorer` with the engine's
item matrix; :class:`PopularityScorer` is the ``pop`` baseline (training-event counts).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol

import numpy as np
import pandas as pd

from polyrec.contracts import History, Scorer
from polyrec.engine.evaluate.dataset import Dataset
from polyrec.engine.evaluate.metrics import RankingAccumulator
from polyrec.engine.evaluate.splits import Cases

__all__ = ["CaseScorer", "ComponentScorer", "PopularityScorer", "CatalogIndex", "rank_cases"]


class CaseScorer(Protocol):
    """Scores every catalog item for each history."""

    item_ids: list[str]

    def score_batch(self, histories: Sequence[History]) -> np.ndarray:
        """``(len(histories), len(item_ids))`` float scores."""
        ...


class ComponentScorer:
    """A :class:`Scorer` over the full catalog ``(item_ids, vectors)``.

    If the scorer has ``score_batch(histories, item_ids, vectors) -> (b, n)`` (a batched
    fast path, optional), it is used; otherwise :meth:`Scorer.score` is called per history.
    """

    def __init__(self, scorer: Scorer, item_ids: list[str], vectors: np.ndarray) -> None:
        self.scorer = scorer
        self.item_ids = list(item_ids)
        self.vectors = np.ascontiguousarray(vectors, dtype=np.float32)

    def score_batch(self, histories: Sequence[History]) -> np.ndarray:
        batched = getattr(self.scorer, "score_batch", None)
        if callable(batched):
            return np.asarray(batched(list(histories), self.item_ids, self.vectors), dtype=np.float32)
        rows = [self.scorer.score(history, self.item_ids, self.vectors).scores for history in histories]
        return np.asarray(rows, dtype=np.float32).reshape(len(histories), len(self.item_ids))


class PopularityScorer:
    """The ``pop`` baseline: every user gets the items' training-event counts as scores."""

    def __init__(self, item_ids: list[str], training_items: Iterable[str]) -> None:
        self.item_ids = list(item_ids)
        counts = pd.Series(np.asarray(list(training_items), dtype=object)).value_counts()
        self.counts = counts.reindex(self.item_ids, fill_value=0).to_numpy(dtype=np.float32)

    def score_batch(self, histories: Sequence[History]) -> np.ndarray:
        return np.broadcast_to(self.counts, (len(histories), len(self.counts))).copy()


class CatalogIndex:
    """Maps event rows to catalog positions and builds the histories scorers see."""

    def __init__(self, dataset: Dataset, item_ids: Sequence[str], vectors: np.ndarray | None = None) -> None:
        events = dataset.events
        #: catalog position of each event's item, -1 when the item is not in the catalog
        self.positions = pd.Index(list(item_ids)).get_indexer(events["item"]).astype(np.int64)
        self.items = events["item"].to_numpy(dtype=object)
        self.users = events["user"].to_numpy(dtype=object)
        self.timestamps = events["timestamp"].to_numpy()
        self.item_ids = list(item_ids)
        self.vectors = vectors

    def history(self, rows: np.ndarray, max_length: int | None) -> History:
        """The history of ``rows`` (oldest first), as the engine builds it: items missing from the
        catalog dropped, each item once at its latest event, the most recent ``max_length`` kept."""
        rows = rows[self.positions[rows] >= 0]
        _, last_from_end = np.unique(self.positions[rows][::-1], return_index=True)
        rows = rows[np.sort(len(rows) - 1 - last_from_end)]
        if max_length is not None:
            rows = rows[-max_length:]
        dim = self.vectors.shape[1] if self.vectors is not None else 0
        vectors = self.vectors[self.positions[rows]] if self.vectors is not None else np.zeros((len(rows), dim))
        return History(
            item_ids=self.items[rows].tolist(),
            vectors=vectors.astype(np.float32, copy=False),
            timestamps=self.timestamps[rows].astype(np.float64),
        )


def _mask_seen(scores: np.ndarray, index: CatalogIndex, histories: Sequence[np.ndarray], targets: np.ndarray) -> None:
    """Set every history item of each case to -inf in place, except that case's target."""
    for row, (history, target) in enumerate(zip(histories, targets)):
        seen = index.positions[history]
        seen = seen[(seen >= 0) & (seen != target)]
        scores[row, seen] = -np.inf


def rank_cases(
    scorer: CaseScorer,
    index: CatalogIndex,
    cases: Cases,
    *,
    ks: Iterable[int] = (10, 20),
    history_length: int | None = None,
    batch_size: int = 256,
) -> RankingAccumulator:
    """Score every case against the whole catalog, mask its history, accumulate metrics.

    The full history is masked even when only the last ``history_length`` events are scored.
    """
    accumulator = RankingAccumulator(len(index.item_ids), ks)
    for start in range(0, len(cases), batch_size):
        stop = min(start + batch_size, len(cases))
        batch_histories = cases.histories[start:stop]
        histories = [index.history(rows, history_length) for rows in batch_histories]
        scores = np.array(scorer.score_batch(histories), dtype=np.float64)
        if scores.shape != (stop - start, len(index.item_ids)):
            raise ValueError(
                f"scorer returned scores of shape {scores.shape}, expected ({stop - start}, {len(index.item_ids)})"
            )
        bad = np.flatnonzero(np.isnan(scores).any(axis=1))
        if len(bad):
            user = index.users[cases.targets[start + bad[0]]]
            raise ValueError(f"scorer returned NaN scores for user {user!r} ({len(bad)} users in this batch)")
        targets = index.positions[cases.targets[start:stop]]
        _mask_seen(scores, index, batch_histories, targets)
        accumulator.add(scores, targets)
    return accumulator
