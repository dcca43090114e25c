"""The cold-users protocol: its split on data made here, and on ml-100k attributes beating Pop."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from cold_users_data import generated_dataset
from movielens_formats import ML100K

from polyrec.engine.cli import main
from polyrec.engine.cli.evaluate_cmd import format_result
from polyrec.engine.evaluate.cold_users import cold_users, paired_bootstrap
from polyrec.engine.evaluate.dataset import Dataset, events_frame
from polyrec.engine.evaluate.runner import evaluate


def _dataset(users: int = 10, events_each: int = 8) -> Dataset:
    rows = [
        (f"u{u}", f"i{(u + e) % 12}", float(100 * e + (7 if e == 2 else 0)))
        for u in range(users)
        for e in range(events_each)
    ]
    rows += [("short", "i1", 1.0), ("short", "i2", 2.0)]  # five events or fewer: no case
    frame = events_frame([r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows])
    return Dataset("toy", [], frame.sample(frac=1.0, random_state=0).reset_index(drop=True))


def test_held_out_users_leave_training_and_every_row_ranks_the_same_targets() -> None:
    data = _dataset()
    split = cold_users(data, fraction=0.5, seed=3)
    users = data.events["user"].to_numpy()
    items = data.events["item"].to_numpy()
    assert not set(users[split.train]) & split.held_out_users
    assert set(users[split.train]) | split.held_out_users == set(users)
    assert list(split.histories) == [0, 1, 3, 5] and split.target == "later"
    assert all(np.array_equal(split.targets[count][0], split.targets[0][0]) for count in split.targets)
    for row, user in enumerate(split.users):
        chronological = data.events[data.events["user"] == user].sort_values("timestamp", kind="stable").index
        assert list(split.histories[3][row]) == list(chronological[:3])
        # every event after the fifth whose item is not among the first five, each item once
        first_five = set(items[chronological[:5]])
        later = [r for r in chronological[5:] if items[r] not in first_five]
        assert list(split.targets[5][row]) == later
    assert "short" not in split.users
    assert split.cases(0) == sum(len(rows) for rows in split.targets[0])
    again = cold_users(data, fraction=0.5, seed=3)  # seeded
    assert np.array_equal(again.train, split.train) and again.users == split.users
    # target="fixed": the one event after the fifth; target="next": the event right after each history
    fixed = cold_users(data, fraction=0.5, seed=3, target="fixed")
    nxt = cold_users(data, fraction=0.5, seed=3, target="next")
    assert fixed.users == nxt.users == split.users
    for row, user in enumerate(split.users):
        sixth = data.events[data.events["user"] == user].sort_values("timestamp", kind="stable").index[5]
        assert all(list(fixed.targets[count][row]) == [sixth] for count in fixed.targets)
        for count in (0, 1, 3):
            assert list(nxt.targets[count][row]) == [split.histories[5][row][count]]
        assert list(nxt.targets[5][row]) == [sixth]
    # among=: a validation split inside the training users leaves the test users out of training too
    training = frozenset(users[split.train].tolist())
    inner = cold_users(data, fraction=0.5, seed=4, among=training)
    assert inner.held_out_users <= training
    assert not set(users[inner.train]) & (inner.held_out_users | split.held_out_users)


def test_the_paired_bootstrap_interval_separates_a_real_margin_from_noise() -> None:
    rng = np.random.default_rng(0)
    base = rng.uniform(0, 0.2, size=400)
    shifted = paired_bootstrap(base + 0.01 + rng.normal(0, 0.01, 400), base)
    assert 0 < shifted["low"] < 0.01 < shifted["high"] < 0.02
    noise = paired_bootstrap(base + rng.normal(0, 0.05, 400), base)
    assert noise["low"] < 0 < noise["high"]
    assert paired_bootstrap(base, base) == {"difference": 0.0, "low": 0.0, "high": 0.0}


FAST_CONFIG = """
seed = 0
[derived]
text = ["title", "year", "genres"]
[encoders.text]
plugin = "hashing-text"   # the plugin template's encoder: no model to load, so the test stays quick
[encoders.behavior]
plugin = "behavior"
[fusion]
plugin = "weighted-concat"
[scorer]
plugin = "dot"
"""


@pytest.mark.slow
@pytest.mark.data
def test_ml100k_attributes_alone_beat_pop_and_the_curve_rises(tmp_path, capsys: pytest.CaptureFixture) -> None:
    if not (ML100K / "ml-100k.user").is_file():
        pytest.skip(f"MovieLens-100k (with its .user file) not found at {ML100K}")
    pytest.importorskip("polyrec_plugin_template", reason="needs the plugin template installed (make install)")
    config = tmp_path / "cold.toml"
    config.write_text(FAST_CONFIG)
    argv = ["evaluate", "--config", str(config), "--dataset", str(ML100K), "--protocol", "cold-users"]
    assert main([*argv, "--cold-seeds", "5", "--json"]) == 0  # five fits: about 2 min on a quiet machine
    result = json.loads(capsys.readouterr().out)
    ours = {count: metrics["ndcg@10"] for count, metrics in result["by_events"].items()}
    pop = {count: metrics["ndcg@10"] for count, metrics in result["baselines"]["pop"]["by_events"].items()}
    assert list(ours) == ["0", "1", "3", "5"] and list(pop) == list(ours)
    assert result["held_out_users"] == 189 and result["seeds"] == [0, 1, 2, 3, 4]
    assert result["by_events"]["0"]["users"] == sum(run["by_events"]["0"]["users"] for run in result["per_seed"])
    assert result["by_events"]["0"]["cases"] > 10 * result["by_events"]["0"]["users"]  # every later event
    significance = result["significance"]
    # attributes alone beat Pop on the 945 pooled (seed, user) pairs: the margin is small (+2%,
    # 0.0303 vs 0.0297 when written) and its interval's lower end barely above 0 (+0.0001)
    assert ours["0"] > pop["0"] and significance["vs_pop"]["0"]["low"] > 0
    assert ours["0"] < ours["1"] < ours["3"] < ours["5"]
    assert all(significance["rise"][step]["low"] > 0 for step in ("1-0", "3-1", "5-3"))  # every rise is real
    assert pd.Series(ours).gt(pd.Series(pop)).all()


def _generated_run(config, onboarding: int, target: str, seeds: int = 1) -> dict:
    data = generated_dataset(onboarding=onboarding)
    return evaluate(config, data, "cold-users", k=(10,), cold_target=target, cold_seeds=seeds, choose_prior_events=True)


def _ndcg(result: dict, name: str | None = None) -> list[float]:
    rows = result["by_events"] if name is None else result["baselines"][name]["by_events"]
    return [rows[count]["ndcg@10"] for count in ("0", "1", "3", "5")]


@pytest.mark.slow  # about 40 s of CPU: eight small fits (4 splits x validation + test)
def test_on_generated_tastes_later_targets_measure_adaptation_and_next_targets_measure_position(tmp_path) -> None:
    """Users whose attributes drive their tastes (tests/cold_users_data.py). Without a
    sign-up pattern, attributes beat Pop and knowing more events helps (intervals above 0).
    With an onboarding phase (first five events from the most popular items), the ``later``
    targets still show both, while under ``next`` the rows before the sixth event predict
    the onboarding picks, where Pop is as good as anything and the curve falls once they end."""
    pytest.importorskip("polyrec_plugin_template", reason="needs the plugin template installed (make install)")
    config = tmp_path / "cold.toml"
    config.write_text(FAST_CONFIG)
    for onboarding, seeds in ((0, 2), (5, 1)):
        later = _generated_run(config, onboarding, "later", seeds)
        significance = later["significance"]
        assert significance["vs_pop"]["0"]["low"] > 0, significance  # attributes alone beat Pop
        assert significance["rise"]["5-0"]["low"] > 0, significance  # and the curve rises
        ours = _ndcg(later)
        assert ours == sorted(ours)
        assert len(later["prior_events"]) == seeds == len(later.get("per_seed", [later]))  # picked per seed
        if seeds > 1:  # pooled rows: every (seed, user) pair once
            users = [run["by_events"]["0"]["users"] for run in later["per_seed"]]
            assert later["by_events"]["0"]["users"] == sum(users)
            json.dumps(later)  # the --json output
            table = format_result(later)  # the text output shows the intervals too
            low, high = significance["vs_pop"]["0"]["low"], significance["vs_pop"]["0"]["high"]
            assert (
                f"model - pop at 0 events: {significance['vs_pop']['0']['difference']:+.4f} [{low:+.4f}, {high:+.4f}]"
                in table
            )
    nxt = _generated_run(config, 5, "next")
    pop, ours = _ndcg(nxt, "pop"), _ndcg(nxt)
    assert min(pop[:3]) > 1.5 * pop[3]  # the onboarding picks are Pop's: position, not knowledge
    assert ours[3] < max(ours[:3])  # so the model's curve falls once they end
    assert nxt["significance"]["vs_pop"]["0"]["low"] < 0 < nxt["significance"]["vs_pop"]["0"]["high"]
