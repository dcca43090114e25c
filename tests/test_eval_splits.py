"""Evaluation splits: leave-one-out by hand, against RecBole's reference split, and cold items."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from polyrec.engine.evaluate.dataset import Dataset, events_frame
from polyrec.engine.evaluate.loaders import load_recbole
from polyrec.engine.evaluate.splits import cold_items, leave_one_out, make_split

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "ml-100k"


def _dataset(rows: list[tuple[str, str, float]]) -> Dataset:
    users, items, stamps = zip(*rows)
    return Dataset("toy", [], events_frame(users, items, stamps))


def _items(dataset: Dataset, rows: np.ndarray) -> list[str]:
    return dataset.events["item"].to_numpy()[rows].tolist()


def _by_user(dataset: Dataset, cases) -> dict[str, tuple[str, list[str]]]:  # type: ignore[no-untyped-def]
    users = dataset.events["user"].to_numpy()
    return {
        users[target]: (_items(dataset, np.array([target]))[0], _items(dataset, history))
        for target, history in zip(cases.targets, cases.histories)
    }


def test_leave_one_out_sorts_by_raw_timestamp_and_keeps_file_order_on_ties() -> None:
    dataset = _dataset(
        [
            ("a", "i1", 5),
            ("b", "j1", 10),
            ("a", "i2", 3),
            ("a", "i3", 5),  # ties with i1 at t=5 and comes later in the file: the test item
            ("b", "j2", 892738453),
            ("a", "i4", 1),
            ("b", "j3", 892738452),  # one second earlier: float32 could not tell them apart
            ("c", "k1", 1),
            ("c", "k2", 2),  # two events: one trains, one tests, no validation
            ("d", "m1", 1),  # one event: training only
        ]
    )
    split = leave_one_out(dataset)
    test, valid = _by_user(dataset, split.test), _by_user(dataset, split.valid)
    assert test["a"] == ("i3", ["i4", "i2", "i1"])
    assert valid["a"] == ("i1", ["i4", "i2"])
    assert test["b"] == ("j2", ["j1", "j3"])
    assert valid["b"] == ("j3", ["j1"])
    assert test["c"] == ("k2", ["k1"]) and "c" not in valid
    assert "d" not in test and "d" not in valid
    assert sorted(_items(dataset, split.train)) == ["i2", "i4", "j1", "k1", "m1"]
    assert np.all(np.diff(split.train) > 0)  # training rows stay in file order


def test_make_split_rejects_unknown_protocols() -> None:
    with pytest.raises(ValueError, match="loo-full"):
        make_split(_dataset([("a", "i", 1)]), "random-split")


@pytest.mark.data
def test_leave_one_out_matches_the_recbole_reference_split() -> None:
    reference_path = DATA / "loo-split-reference.tsv"
    if not reference_path.is_file():
        pytest.skip(f"MovieLens-100k reference split not found at {reference_path}")
    dataset = load_recbole(DATA)
    split = leave_one_out(dataset)
    users = dataset.events["user"].to_numpy()
    items = dataset.events["item"].to_numpy()
    ours = {
        users[test]: (items[valid], items[test], len(valid_history))
        for test, valid, valid_history in zip(split.test.targets, split.valid.targets, split.valid.histories)
    }
    reference = pd.read_csv(reference_path, sep="\t", dtype=str)
    assert len(ours) == len(reference) == 943
    same = reference["differs_from_raw_ts_stable_sort"] == "0"
    mismatches = [
        row.user_token
        for row in reference[same].itertuples()
        if ours[row.user_token] != (row.valid_item, row.test_item, int(row.n_train))
    ]
    assert mismatches == []
    # the flagged users are exactly those where RecBole's reduced-precision timestamps reorder events
    differing = {
        row.user_token
        for row in reference[~same].itertuples()
        if ours[row.user_token] != (row.valid_item, row.test_item, int(row.n_train))
    }
    assert differing == set(reference.loc[~same, "user_token"])


def _cold_toy() -> Dataset:
    rng = np.random.default_rng(7)
    rows = []
    for user in range(30):
        for step, item in enumerate(rng.choice(40, size=12, replace=False)):
            rows.append((f"u{user}", f"i{item}", float(rng.integers(0, 5) * 10 + step)))
    return _dataset(rows)


def test_cold_items_holds_items_out_of_all_training() -> None:
    dataset = _cold_toy()
    split = cold_items(dataset, fraction=0.2, seed=3)
    assert len(split.held_out_items) == 8  # 20% of 40
    assert not set(_items(dataset, split.train)) & split.held_out_items
    events = dataset.events
    for target, history in zip(split.test.targets, split.test.histories):
        assert events["item"][target] in split.held_out_items
        assert not set(_items(dataset, history)) & split.held_out_items
        assert len(history) > 0
        user_rows = events.index[events["user"] == events["user"][target]]
        assert set(history) <= set(user_rows)
        # history is what happened before the target, oldest first (time, then file order)
        keys = [(events["timestamp"][row], row) for row in history]
        assert keys == sorted(keys) and keys[-1] < (events["timestamp"][target], target)
        # the target is the user's last event with a cold item
        later_cold = [
            row
            for row in user_rows
            if events["item"][row] in split.held_out_items
            and (events["timestamp"][row], row) > (events["timestamp"][target], target)
        ]
        assert later_cold == []
    assert split.valid is None


def test_cold_items_is_seeded() -> None:
    dataset = _cold_toy()
    assert cold_items(dataset, seed=1).held_out_items == cold_items(dataset, seed=1).held_out_items
    assert cold_items(dataset, seed=1).held_out_items != cold_items(dataset, seed=2).held_out_items
    with pytest.raises(ValueError, match="fraction"):
        cold_items(dataset, fraction=1.5)
