"""The ``cold-users`` protocol: new users, recommended from who they are, then from what they do.

A seeded ``fraction`` (20%) of the users with events is held out of all training: their
events are not in the log the model is fitted on (their attributes are stored, as a new
user's profile would be). For each held-out user with more than ``max(EVENT_COUNTS)``
events, events in chronological order (ties in file order), the **target** is the event
right after the first five. It is ranked against all items four times, once per row:

- ``0``: from the user's attributes alone (no history);
- ``1``, ``3``, ``5``: after the user's first 1, 3 or 5 events (the history; masked).

The target is the same in every row, so the rows differ only in what the model knows,
and the curve over 0/1/3/5 events shows how fast it adapts. (Predicting each row's own
next event instead - the 1st, 2nd, 4th and 6th - mixes that with how hard each position
is: the first events of a user are often the most popular items, where a count-based
ranking shines. ``target="next"`` gives that variant.)
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from polyrec.contracts import History
from polyrec.engine.evaluate.dataset import Dataset
from polyrec.engine.evaluate.protocols import CaseScorer, CatalogIndex, PopularityScorer, rank_cases
from polyrec.engine.evaluate.splits import Cases, chronological_order, seeded_share
from polyrec.engine.user_prior import blend_scores

__all__ = [
    "EVENT_COUNTS",
    "TARGETS",
    "ColdUsersSplit",
    "PriorBlendScorer",
    "cold_users",
    "pick_cold_users",
    "score_cold_users",
]

#: how many of their own events the held-out users are ranked after
EVENT_COUNTS: tuple[int, ...] = (0, 1, 3, 5)
TARGETS: tuple[str, ...] = ("fixed", "next")


@dataclass(frozen=True)
class ColdUsersSplit:
    """Training rows (the warm users' events) and, per event count, the held-out cases."""

    protocol: str
    train: np.ndarray
    held_out_users: frozenset[str]
    cases: dict[int, Cases]
    users: dict[int, list[str]]  # users[count][i] is the user of cases[count] case i
    target: str = "fixed"


def pick_cold_users(dataset: Dataset, fraction: float, seed: int) -> frozenset[str]:
    """A seeded ``fraction`` of the users with events (first-appearance order before sampling)."""
    return seeded_share(dataset.events, "user", fraction, seed, "cold-users")


def cold_users(
    dataset: Dataset,
    fraction: float = 0.2,
    seed: int = 0,
    *,
    counts: tuple[int, ...] = EVENT_COUNTS,
    target: str = "fixed",
) -> ColdUsersSplit:
    """The ``cold-users`` split (see the module docstring)."""
    if target not in TARGETS:
        raise ValueError(f"cold-users: target must be one of {TARGETS}, got {target!r}")
    held_out = pick_cold_users(dataset, fraction, seed)
    is_held = dataset.events["user"].isin(held_out).to_numpy()
    order, starts = chronological_order(dataset.events)
    targets: dict[int, list[int]] = {count: [] for count in counts}
    histories: dict[int, list[np.ndarray]] = {count: [] for count in counts}
    users: dict[int, list[str]] = {count: [] for count in counts}
    user_of_row = dataset.events["user"].to_numpy(dtype=object)
    last = max(counts)
    for begin, end in itertools.pairwise(starts):
        block = order[begin:end]
        if not is_held[block[0]] or len(block) <= last:
            continue
        for count in counts:
            targets[count].append(int(block[last] if target == "fixed" else block[count]))
            histories[count].append(block[:count])
            users[count].append(str(user_of_row[block[0]]))
    cases = {count: Cases(np.asarray(targets[count], dtype=np.int64), histories[count]) for count in counts}
    return ColdUsersSplit("cold-users", np.flatnonzero(~is_held), held_out, cases, users, target)


class PriorBlendScorer:
    """Scores cold-user cases: the attribute prior, blended with the model's history scores.

    ``prior(users)`` gives ``(len(users), n_items)`` prior scores over ``item_ids`` (None:
    no prior, the model's own cold-user ranking - popularity - is used instead);
    ``history`` scores the cases that have events.
    """

    def __init__(
        self,
        history: CaseScorer,
        prior: Callable[[Sequence[str]], np.ndarray | None],
        fallback: CaseScorer,
        prior_events: float,
    ) -> None:
        self.item_ids = list(history.item_ids)
        self.history, self.prior, self.fallback, self.prior_events = history, prior, fallback, prior_events

    def score_user_batch(self, users: Sequence[str], histories: Sequence[History]) -> np.ndarray:
        prior = self.prior(users)
        if prior is None:
            prior = self.fallback.score_batch(histories)
        scores = np.empty((len(users), len(self.item_ids)), dtype=np.float64)
        with_history = [row for row, history in enumerate(histories) if len(history)]
        history_scores = self.history.score_batch([histories[row] for row in with_history]) if with_history else None
        given = dict(zip(with_history, history_scores if history_scores is not None else []))
        for row, history in enumerate(histories):
            scores[row] = blend_scores(prior[row], given.get(row), len(history), self.prior_events)
        return scores


def score_cold_users(
    model: Any,
    dataset: Dataset,
    split: ColdUsersSplit,
    *,
    k: Iterable[int] = (10, 20),
    history_length: int | None = None,
    prior_events: float = 1.0,
) -> dict[str, Any]:
    """Rank every row's cases with the model (prior blended with the scorer), Pop and chance.

    ``model`` is a fitted model of the runner (engine, case scorer, item ids and vectors).
    Returns ``{"by_events": {"0": metrics, ...}, "baselines": {"pop": {"by_events": ...},
    "random": {"by_events": ...}}}``.
    """
    ks = tuple(k)
    index = CatalogIndex(dataset, model.item_ids, model.vectors)
    pop = PopularityScorer(model.item_ids, dataset.events["item"].to_numpy()[split.train])

    def prior(users: Sequence[str]) -> np.ndarray | None:
        return model.engine.prior_scores(users, model.item_ids)

    blend = PriorBlendScorer(model.case_scorer(), prior, pop, prior_events)
    ours: dict[str, Any] = {}
    popular: dict[str, Any] = {}
    chance: dict[str, Any] = {}
    for count, cases in split.cases.items():
        if not len(cases):
            continue
        accumulator = rank_cases(blend, index, cases, ks=ks, history_length=history_length, users=split.users[count])
        ours[str(count)] = accumulator.result()
        chance[str(count)] = accumulator.random_result()
        popular[str(count)] = rank_cases(pop, index, cases, ks=ks).result()
    return {"by_events": ours, "baselines": {"pop": {"by_events": popular}, "random": {"by_events": chance}}}
