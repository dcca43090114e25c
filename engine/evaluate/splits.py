"""Evaluation protocols: which events train the model and which held-out events test it.

``loo-full`` (chronological leave-one-out, the RecBole ``LS: valid_and_test`` split): per
user, events sorted by raw timestamp with a stable sort, so equal timestamps keep file
order; the last is the test case, the second-to-last the validation case, the rest train.
Users with two events: the first trains, the second is the test case (no validation
case); users with one event only train. That is what RecBole does (it never leaves a user
without a training event). The model is fitted once on the training events; the
validation case sees the training events as history, the test case the training events
plus the validation event.

``cold-items``: a seeded 20% of the items that have events are held out of all training
(their events are removed; the items themselves are still ingested with their content).
Each user's last event with a held-out item is a test case whose history is that user's
warm-item events before it. Training uses every warm-item event. Users with no held-out
event, or no warm event before their last held-out one, have no case.

In every case the candidates are all items, and the history's items are masked out
(except the held-out item itself, which always keeps its score).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import pandas as pd

from polyrec.engine.evaluate.dataset import Dataset

__all__ = [
    "PROTOCOLS",
    "Cases",
    "Split",
    "chronological_order",
    "leave_one_out",
    "pick_cold_items",
    "seeded_share",
    "cold_items",
    "make_split",
]

PROTOCOLS: tuple[str, ...] = ("loo-full", "cold-items")


@dataclass(frozen=True)
class Cases:
    """Held-out events: ``targets[i]`` is an events row, ``histories[i]`` the rows before it, oldest first."""

    targets: np.ndarray
    histories: list[np.ndarray]

    def __len__(self) -> int:
        return len(self.targets)


@dataclass(frozen=True)
class Split:
    """Training rows (file order) and the validation/test cases of one protocol."""

    protocol: str
    train: np.ndarray
    test: Cases
    valid: Cases | None = None
    held_out_items: frozenset[str] = frozenset()


def chronological_order(events: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Rows grouped by user (first-appearance order), each user's by raw timestamp then file order.

    Returns ``(order, starts)``: ``order`` are row numbers, ``starts`` the offsets where each
    user's block begins (with the total appended).
    """
    user_codes, _ = pd.factorize(events["user"])
    rows = np.arange(len(events))
    order = np.lexsort((rows, events["timestamp"].to_numpy(), user_codes))  # last key sorts first
    sorted_codes = user_codes[order]
    starts = np.flatnonzero(np.r_[True, sorted_codes[1:] != sorted_codes[:-1]]) if len(order) else np.zeros(0, int)
    return order, np.r_[starts, len(order)].astype(np.int64)


def leave_one_out(dataset: Dataset) -> Split:
    """The ``loo-full`` split (see the module docstring)."""
    order, starts = chronological_order(dataset.events)
    train_mask = np.ones(len(order), dtype=bool)
    valid_targets, valid_histories, test_targets, test_histories = [], [], [], []
    for begin, end in itertools.pairwise(starts):
        count = end - begin
        if count >= 2:
            test_targets.append(order[end - 1])
            test_histories.append(order[begin : end - 1])
            train_mask[order[end - 1]] = False
        if count >= 3:
            valid_targets.append(order[end - 2])
            valid_histories.append(order[begin : end - 2])
            train_mask[order[end - 2]] = False
    return Split(
        "loo-full",
        train=np.flatnonzero(train_mask),
        test=Cases(np.asarray(test_targets, dtype=np.int64), test_histories),
        valid=Cases(np.asarray(valid_targets, dtype=np.int64), valid_histories),
    )


def seeded_share(events: pd.DataFrame, column: str, fraction: float, seed: int, protocol: str) -> frozenset[str]:
    """A seeded ``fraction`` of the distinct values of ``column`` (first-appearance order before sampling)."""
    if not 0 < fraction < 1:
        raise ValueError(f"{protocol}: fraction must be in (0, 1), got {fraction}")
    values = pd.unique(events[column])
    count = max(1, round(fraction * len(values)))
    chosen = np.random.default_rng(seed).choice(len(values), size=count, replace=False)
    return frozenset(values[chosen].tolist())


def pick_cold_items(dataset: Dataset, fraction: float, seed: int) -> frozenset[str]:
    """A seeded ``fraction`` of the items that have events (in first-appearance order before sampling)."""
    return seeded_share(dataset.events, "item", fraction, seed, "cold-items")


def cold_items(dataset: Dataset, fraction: float = 0.2, seed: int = 0) -> Split:
    """The ``cold-items`` split (see the module docstring)."""
    held_out = pick_cold_items(dataset, fraction, seed)
    is_cold = dataset.events["item"].isin(held_out).to_numpy()
    order, starts = chronological_order(dataset.events)
    targets, histories = [], []
    for begin, end in itertools.pairwise(starts):
        block = order[begin:end]
        cold_positions = np.flatnonzero(is_cold[block])
        if len(cold_positions) == 0:
            continue
        last = cold_positions[-1]
        history = block[:last][~is_cold[block[:last]]]
        if len(history):
            targets.append(block[last])
            histories.append(history)
    return Split(
        "cold-items",
        train=np.flatnonzero(~is_cold),
        test=Cases(np.asarray(targets, dtype=np.int64), histories),
        held_out_items=held_out,
    )


def make_split(dataset: Dataset, protocol: str, *, seed: int = 0, cold_fraction: float = 0.2) -> Split:
    """Split ``dataset`` by ``protocol`` name."""
    if protocol == "loo-full":
        return leave_one_out(dataset)
    if protocol == "cold-items":
        return cold_items(dataset, cold_fraction, seed)
    raise ValueError(f"unknown protocol {protocol!r}; known: {', '.join(PROTOCOLS)}")
