"""A popularity prior for the ``dot`` and ``target-attention`` scorers: counted, never trained.

With ``popularity`` > 0 (default 0: content only), each candidate's score gains

    popularity * log(1 + n_i)

where n_i is the candidate's number of events in the event log, or, with
``popularity_window = W`` (seconds), its events in the W seconds up to the user's present
(their latest history event; a later event had not happened yet). Trends move: what was
played this month often predicts the next play better than all-time counts.

Units. ``popularity`` is in the units of the content score (cosine similarity for unit
vectors) per e-fold of count: an item ten times as popular gains ``2.3 * popularity``.
Only ratios of counts matter, so a weight means the same on a log ten times as long. Scale
it to the spread of the similarities between items: MovieLens' validation cases chose 0.1
for MiniLM vectors whose similarities have a standard deviation of 0.074, i.e. a tenfold
count is worth about three such deviations (``examples/movielens/content-popularity.toml``).

The counts are statistics, not training: the engine hands every scorer the whole log on
each ``fit`` (:meth:`Scorer.observe`), also when nothing is trainable, and again before
scoring whenever events were added since (``observes_events``), so they are not saved and
serving needs no refit. At serving time, without a window, the prior takes the store's events
per item (``observe_item_counts``) instead of the log, so it costs the same at any log size.
Until the first observe the scores are pure content; an item
without events counts 0. So a brand-new item ranks below equally similar items with events: where new items
must surface (cold start), keep the weight at 0.

The prior only adds to scores: explanations still weigh the history items behind the
content part, and at serving time it re-ranks the candidates the content query retrieved
rather than pulling in popular items from elsewhere.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from pydantic import Field

from polyrec.contracts import ComponentConfig, Event, History, Scored, Scorer

__all__ = ["PopularityPriorConfig", "PopularityPrior", "PopularityPriorScorer"]


class PopularityPriorConfig(ComponentConfig):
    """The prior's parameters, shared by the scorers that offer it."""

    popularity: float = Field(
        default=0.0,
        ge=0,
        allow_inf_nan=False,
        description="weight of log(1 + the item's number of events) added to the score; 0: content only",
    )
    popularity_window: float | None = Field(
        default=None,
        gt=0,
        allow_inf_nan=False,
        description="count only events of the last this many seconds up to the user's latest event; default: all",
    )


class PopularityPrior:
    """``weight * log(1 + events of the item)`` by item id, from the last log it observed."""

    def __init__(self, weight: float, window: float | None = None) -> None:
        self.weight = float(weight)
        self.window = window
        self.digest = ""
        self.index: dict[str, int] = {}
        self.totals = np.zeros(0)
        # for a window: the distinct timestamps (sorted) and each event as item code * stride + time rank, sorted
        self.times = np.zeros(0)
        self.keys = np.zeros(0, dtype=np.int64)

    @property
    def active(self) -> bool:
        return self.weight > 0 and bool(self.index)

    def observe(self, events: Sequence[Event]) -> None:
        """Count the events of each item, replacing earlier counts (nothing to count at weight 0)."""
        if self.weight == 0:
            return
        items = np.array([event.item for event in events], dtype=object)
        times = np.array([event.timestamp for event in events], dtype=np.float64)
        uniques, codes = np.unique(items, return_inverse=True) if len(items) else (items, np.zeros(0, np.int64))
        digest = self._set_totals(uniques.tolist(), np.bincount(codes, minlength=len(uniques)))
        if self.window is not None:
            self.times = np.unique(times)
            stride = len(self.times) + 1
            self.keys = np.sort(codes.astype(np.int64) * stride + np.searchsorted(self.times, times))
            digest.update(self.times.tobytes() + self.keys.tobytes())
        self.digest = digest.hexdigest()[:16] if self.index else ""

    def observe_item_counts(self, counts: Mapping[str, int]) -> bool:
        """The same as :meth:`observe` from the events per item alone; False with a window
        (which needs each event's time)."""
        if self.window is not None:
            return False
        if self.weight > 0:
            items = sorted(counts)
            digest = self._set_totals(items, np.array([counts[item] for item in items], dtype=np.int64))
            self.digest = digest.hexdigest()[:16] if self.index else ""
        return True

    def _set_totals(self, items: list[str], totals: np.ndarray) -> Any:
        """Keep ``totals[i]`` events of ``items[i]`` (sorted); the digest of both, to extend."""
        self.index = {item: code for code, item in enumerate(items)}
        self.totals = totals.astype(np.float64)
        return hashlib.sha256("\n".join(self.index).encode() + self.totals.tobytes())

    def counts(self, candidate_ids: Sequence[str], now: float) -> np.ndarray:
        """float64 ``(m,)``: each candidate's events (in the window up to ``now``, if there is one)."""
        codes = np.fromiter((self.index.get(item, -1) for item in candidate_ids), np.int64, count=len(candidate_ids))
        known = codes >= 0
        counts = np.zeros(len(codes))
        if self.window is None:
            counts[known] = self.totals[codes[known]]
            return counts
        # events of item c with a time rank in [lower, upper) have keys in [c*stride + lower, c*stride + upper)
        upper = np.searchsorted(self.times, now, side="right")
        lower = np.searchsorted(self.times, now - self.window, side="right")
        base = codes[known] * (len(self.times) + 1)
        counts[known] = np.searchsorted(self.keys, base + upper) - np.searchsorted(self.keys, base + lower)
        return counts

    def with_bonus(self, scored: Scored, history: History, candidate_ids: Sequence[str]) -> Scored:
        """``scored`` (of a non-empty history) plus the prior; the weights, the explanation, unchanged."""
        if not self.active:
            return scored
        now = float(np.max(history.timestamps))
        bonus = self.weight * np.log1p(self.counts(candidate_ids, now))
        return Scored(scores=(scored.scores.astype(np.float64) + bonus).astype(np.float32), weights=scored.weights)

    def fingerprint_part(self) -> str:
        """The counts change the scores: name them (by digest) in the scorer's fingerprint."""
        return f"|popularity-counts:{self.digest}" if self.active else ""


class PopularityPriorScorer(Scorer):
    """Base of the scorers that offer the prior: builds it from the config, names its counts
    in the fingerprint and hands it the log. Subclasses add ``with_bonus`` to their scores."""

    config: PopularityPriorConfig

    def __init__(self, config: ComponentConfig | None = None, **params: Any) -> None:
        super().__init__(config, **params)
        self.popularity_prior = PopularityPrior(self.config.popularity, self.config.popularity_window)

    @property
    def fingerprint(self) -> str:
        return super().fingerprint + self.popularity_prior.fingerprint_part()

    @property
    def observes_events(self) -> bool:
        return self.config.popularity > 0

    def observe(self, events: Sequence[Event]) -> None:
        self.popularity_prior.observe(events)

    def observe_item_counts(self, counts: Mapping[str, int]) -> bool:
        return self.popularity_prior.observe_item_counts(counts)
