"""The ``cold-users`` protocol: new users, recommended from who they are, then from what they do.

A seeded ``fraction`` (20%) of the users with events is held out of all training: their
events are not in the log the model is fitted on (their attributes are stored, as a new
user's profile would be). Every held-out user with more than ``max(EVENT_COUNTS)`` (5)
events, in chronological order (ties in file order), is ranked against all items once
per row:

- ``0``: from the user's attributes alone (no history);
- ``1``, ``3``, ``5``: after the user's first 1, 3 or 5 events (the history; masked).

What each row predicts (``target``):

- ``later`` (default): every later event of the user - each distinct item after the first
  five that is not among them - is a target, in every row. A user's metric is the mean
  over their targets and every user counts alike. The targets are the same in every row,
  so the rows differ only in what the model knows and the 0/1/3/5 curve shows how fast it
  adapts; and many targets per user make the comparison far less noisy than one.
- ``fixed``: the one event right after the first five, in every row (the same question
  with one target per user).
- ``next``: each row's own next event (the 1st, 2nd, 4th and 6th). This mixes what the
  model knows with how hard each position is: where a user's first events follow a
  pattern of their own (on MovieLens, onboarding asks for well-known films first), a
  count-based ranking wins early positions and every curve falls, however much the
  model learns. ``tests/test_cold_users.py`` shows it on generated data whose tastes are
  known: without such a pattern both protocols rise; with an onboarding phase only
  ``later``/``fixed`` still measure the adaptation. That is why ``later`` is the default.

Beside the means the result carries paired bootstrap 95% intervals (resampling held-out
users) of the model's margin over Pop in each row and of each rise of the curve, so a
reader sees whether a margin is more than noise.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from polyrec.engine.evaluate.dataset import Dataset
from polyrec.engine.evaluate.metrics import METRICS, expected_at_k, random_expectation
from polyrec.engine.evaluate.protocols import CaseScorer, CatalogIndex, PopularityScorer
from polyrec.engine.evaluate.splits import chronological_order, seeded_share
from polyrec.engine.user_prior import blend_weight, standardize

__all__ = [
    "EVENT_COUNTS",
    "TARGETS",
    "RESAMPLES",
    "ColdUsersSplit",
    "cold_users",
    "pick_cold_users",
    "paired_bootstrap",
    "score_cold_users",
    "compare",
]

#: how many of their own events the held-out users are ranked after
EVENT_COUNTS: tuple[int, ...] = (0, 1, 3, 5)
TARGETS: tuple[str, ...] = ("later", "fixed", "next")
#: bootstrap resamples of the held-out users for the 95% intervals
RESAMPLES = 2000
_BOOTSTRAP_METRIC = "ndcg@10"


@dataclass(frozen=True)
class ColdUsersSplit:
    """Training rows (the warm users' events) and, per event count, each held-out user's
    history rows and target rows (events rows; ``histories[c][i]`` is ``users[i]``'s)."""

    protocol: str
    train: np.ndarray
    held_out_users: frozenset[str]
    users: list[str]
    histories: dict[int, list[np.ndarray]]
    targets: dict[int, list[np.ndarray]]
    target: str = "later"

    def cases(self, count: int) -> int:
        """How many targets row ``count`` ranks (over all its users)."""
        return sum(len(rows) for rows in self.targets[count])


def pick_cold_users(dataset: Dataset, fraction: float, seed: int) -> frozenset[str]:
    """A seeded ``fraction`` of the users with events (first-appearance order before sampling)."""
    return seeded_share(dataset.events, "user", fraction, seed, "cold-users")


def _later_targets(block: np.ndarray, items: np.ndarray, last: int) -> np.ndarray:
    """Rows after the first ``last`` whose item is not among them, each item once (first time)."""
    early = set(items[block[:last]].tolist())
    seen: set[Any] = set()
    keep = []
    for row in block[last:]:
        item = items[row]
        if item not in early and item not in seen:
            seen.add(item)
            keep.append(row)
    return np.asarray(keep, dtype=np.int64)


def cold_users(
    dataset: Dataset,
    fraction: float = 0.2,
    seed: int = 0,
    *,
    counts: tuple[int, ...] = EVENT_COUNTS,
    target: str = "later",
    among: frozenset[str] | None = None,
) -> ColdUsersSplit:
    """The ``cold-users`` split (see the module docstring).

    ``among``: draw the held-out users from these users only, and leave every other user
    out of the training rows too (a validation split inside a training set).
    """
    if target not in TARGETS:
        raise ValueError(f"cold-users: target must be one of {TARGETS}, got {target!r}")
    events = dataset.events
    pool = events if among is None else events[events["user"].isin(among)]
    held_out = seeded_share(pool, "user", fraction, seed, "cold-users")
    is_held = events["user"].isin(held_out).to_numpy()
    in_pool = np.ones(len(events), bool) if among is None else events["user"].isin(among).to_numpy()
    order, starts = chronological_order(events)
    user_of_row = events["user"].to_numpy(dtype=object)
    items = events["item"].to_numpy(dtype=object)
    last = max(counts)
    users: list[str] = []
    histories: dict[int, list[np.ndarray]] = {count: [] for count in counts}
    targets: dict[int, list[np.ndarray]] = {count: [] for count in counts}
    for begin, end in itertools.pairwise(starts):
        block = order[begin:end]
        if not is_held[block[0]] or len(block) <= last:
            continue
        later = _later_targets(block, items, last) if target == "later" else None
        if later is not None and not len(later):
            continue
        users.append(str(user_of_row[block[0]]))
        for count in counts:
            histories[count].append(block[:count])
            if later is not None:
                targets[count].append(later)
            else:
                targets[count].append(block[[last if target == "fixed" else count]])
    train = np.flatnonzero(~is_held & in_pool)
    return ColdUsersSplit("cold-users", train, held_out, users, histories, targets, target)


# -- scoring -------------------------------------------------------------------------------


def _user_metrics(
    scores: np.ndarray, targets: np.ndarray, ks: tuple[int, ...]
) -> tuple[dict[str, float], dict[str, float]]:
    """One user's mean metrics over their targets (catalog positions, -1: a miss), and chance's."""
    finite = scores[np.isfinite(scores)]
    ranked = targets[targets >= 0]
    ordered = np.sort(finite)
    # a target the scorer put at -inf ranks below every candidate
    target_scores = np.where(np.isfinite(scores[ranked]), scores[ranked], -np.inf)
    above = np.searchsorted(ordered, target_scores, side="right")
    higher = len(ordered) - above
    tied = np.maximum(above - np.searchsorted(ordered, target_scores) - 1, 0)
    candidates = np.full(len(ranked), len(ordered) + (~np.isfinite(scores[ranked])).astype(int))
    ours: dict[str, float] = {}
    chance: dict[str, float] = {}
    for k in ks:
        for metric in METRICS:
            name = f"{metric}@{k}"
            # a target missing from the catalog counts as a miss (0)
            ours[name] = float(expected_at_k(higher, tied, metric, k).sum() / len(targets))
            chance[name] = float(random_expectation(candidates, metric, k).sum() / len(targets))
    return ours, chance


def _mask(scores: np.ndarray, history: np.ndarray, targets: np.ndarray) -> np.ndarray:
    seen = history[(history >= 0) & ~np.isin(history, targets)]
    scores = scores.copy()
    scores[seen] = -np.inf
    return scores


@dataclass
class _RowScores:
    """Per-user metric values of one row: ``values[name][i]`` is user ``i``'s ``name``."""

    values: dict[str, np.ndarray]
    chance: dict[str, np.ndarray]
    top: dict[int, np.ndarray]  # items in some user's top k (coverage)

    def result(self, cases: int, n_items: int) -> dict[str, Any]:
        out: dict[str, Any] = {name: float(v.mean()) if len(v) else 0.0 for name, v in self.values.items()}
        out |= {f"coverage@{k}": float(top.mean()) if n_items else 0.0 for k, top in self.top.items()}
        return out | {"users": len(next(iter(self.values.values()))), "cases": cases}


def _rank_row(
    score_users: Callable[[Sequence[int]], np.ndarray],
    index: CatalogIndex,
    histories: Sequence[np.ndarray],
    targets: Sequence[np.ndarray],
    ks: tuple[int, ...],
    batch_size: int = 256,
) -> _RowScores:
    """Rank every user's targets; ``score_users(rows)`` gives the users' ``(b, n_items)`` scores."""
    n = len(index.item_ids)
    names = [f"{metric}@{k}" for k in ks for metric in METRICS]
    values = {name: np.zeros(len(histories)) for name in names}
    chance = {name: np.zeros(len(histories)) for name in names}
    top = {k: np.zeros(n, dtype=bool) for k in ks}
    for start in range(0, len(histories), batch_size):
        rows = list(range(start, min(start + batch_size, len(histories))))
        scores = np.asarray(score_users(rows), dtype=np.float64)
        if scores.shape != (len(rows), n):
            raise ValueError(f"scorer returned scores of shape {scores.shape}, expected ({len(rows)}, {n})")
        if np.isnan(scores).any():
            raise ValueError("scorer returned NaN scores for a held-out user")
        for offset, row in enumerate(rows):
            wanted = index.positions[targets[row]]
            masked = _mask(scores[offset], index.positions[histories[row]], wanted)
            ours, random = _user_metrics(masked, wanted, ks)
            for name in names:
                values[name][row], chance[name][row] = ours[name], random[name]
            for k in ks:
                finite = np.flatnonzero(np.isfinite(masked))
                best = finite[np.argsort(-masked[finite], kind="stable")[:k]]
                top[k][best] = True
    return _RowScores(values, chance, top)


def paired_bootstrap(
    first: np.ndarray, second: np.ndarray, resamples: int = RESAMPLES, seed: int = 0
) -> dict[str, float]:
    """Mean of ``first - second`` (paired per user) and its 95% percentile bootstrap interval."""
    difference = np.asarray(first, np.float64) - np.asarray(second, np.float64)
    if not len(difference):
        return {"difference": 0.0, "low": 0.0, "high": 0.0}
    rng = np.random.default_rng(seed)
    means = np.empty(resamples)
    for start in range(0, resamples, 250):  # bounded memory: 250 resamples at a time
        stop = min(start + 250, resamples)
        picks = rng.integers(0, len(difference), size=(stop - start, len(difference)))
        means[start:stop] = difference[picks].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return {"difference": float(difference.mean()), "low": float(low), "high": float(high)}


def compare(
    ours: dict[str, np.ndarray], pop: dict[str, np.ndarray], metric: str = _BOOTSTRAP_METRIC, seed: int = 0
) -> dict[str, Any]:
    """Bootstrap intervals: the model minus Pop per row, and each rise of the model's curve
    (``"1-0"``: row 1 minus row 0, same users and targets; the last, ``"5-0"``, the whole rise)."""
    counts = list(ours)
    versus = {count: paired_bootstrap(ours[count], pop[count], seed=seed) for count in counts}
    steps = [*itertools.pairwise(counts), (counts[0], counts[-1])] if len(counts) > 2 else itertools.pairwise(counts)
    rises = {f"{b}-{a}": paired_bootstrap(ours[b], ours[a], seed=seed) for a, b in steps}
    return {"metric": metric, "resamples": RESAMPLES, "interval": 0.95, "vs_pop": versus, "rise": rises}


def score_cold_users(
    model: Any,
    dataset: Dataset,
    split: ColdUsersSplit,
    *,
    k: Iterable[int] = (10, 20),
    history_length: int | None = None,
    prior_events: float = 1.0,
    prior_events_grid: Sequence[float] = (),
    seed: int = 0,
) -> dict[str, Any]:
    """Rank every row's users with the model (prior blended with the scorer), Pop and chance.

    ``model`` is a fitted model of the runner (engine, case scorer, item ids and vectors).
    Returns ``{"by_events": {"0": metrics, ...}, "baselines": {"pop": {"by_events": ...},
    "random": {"by_events": ...}}, "significance": ...}``; with ``prior_events_grid``, also
    ``"prior_events": {value: mean NDCG@10 over the rows with events}`` (to pick it on
    users held out of training, never on the test users).
    """
    ks = tuple(sorted(set(k)))
    index = CatalogIndex(dataset, model.item_ids, model.vectors)
    pop = PopularityScorer(model.item_ids, dataset.events["item"].to_numpy()[split.train])
    history_scorer: CaseScorer = model.case_scorer()
    prior = model.engine.prior_scores(split.users, model.item_ids)
    counts = np.broadcast_to(pop.counts, (len(split.users), len(pop.counts)))
    prior = standardize_rows(prior if prior is not None else counts)
    ours: dict[str, Any] = {}
    popular: dict[str, Any] = {}
    chance: dict[str, Any] = {}
    per_user: dict[str, np.ndarray] = {}
    per_user_pop: dict[str, np.ndarray] = {}
    grid: dict[float, list[float]] = {value: [] for value in prior_events_grid}
    n_items = len(model.item_ids)
    for count in split.histories:
        histories, targets = split.histories[count], split.targets[count]
        if not histories:
            continue
        history_z = _history_scores(history_scorer, index, histories, history_length) if count else None

        def blended(rows: Sequence[int], weight_of: float, count: int = count, history_z: Any = history_z) -> Any:
            if history_z is None:
                return prior[list(rows)]
            weight = blend_weight(count, weight_of)
            return weight * prior[list(rows)] + (1 - weight) * history_z[list(rows)]

        row = _rank_row(lambda rows: blended(rows, prior_events), index, histories, targets, ks)
        cases = split.cases(count)
        ours[str(count)] = row.result(cases, n_items)
        chance[str(count)] = {name: float(v.mean()) for name, v in row.chance.items()}
        chance[str(count)] |= {"users": len(histories), "cases": cases}
        pop_row = _rank_row(lambda rows: counts[list(rows)], index, histories, targets, ks)
        popular[str(count)] = pop_row.result(cases, n_items)
        per_user[str(count)] = row.values[_BOOTSTRAP_METRIC]
        per_user_pop[str(count)] = pop_row.values[_BOOTSTRAP_METRIC]
        if count:
            for value in grid:
                tried = _rank_row(lambda rows, v=value: blended(rows, v), index, histories, targets, (10,))
                grid[value].append(float(tried.values["ndcg@10"].mean()))
    result: dict[str, Any] = {
        "by_events": ours,
        "baselines": {"pop": {"by_events": popular}, "random": {"by_events": chance}},
        "significance": compare(per_user, per_user_pop, seed=seed),
        "per_user": {"model": per_user, "pop": per_user_pop},
    }
    if grid:
        result["prior_events"] = {str(value): float(np.mean(scores)) for value, scores in grid.items()}
    return result


def standardize_rows(scores: np.ndarray) -> np.ndarray:
    """Each row standardised over its finite scores (see :func:`~..user_prior.standardize`)."""
    return np.stack([standardize(row) for row in np.asarray(scores, np.float64)]) if len(scores) else scores


def _history_scores(
    scorer: CaseScorer, index: CatalogIndex, histories: Sequence[np.ndarray], history_length: int | None
) -> np.ndarray:
    """The scorer's standardised scores for every user's history (rows of ``histories``)."""
    parts = []
    for start in range(0, len(histories), 256):
        batch = [index.history(rows, history_length) for rows in histories[start : start + 256]]
        parts.append(standardize_rows(np.asarray(scorer.score_batch(batch), dtype=np.float64)))
    return np.concatenate(parts)
