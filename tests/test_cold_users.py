"""The cold-users protocol: its split on data made here, and on ml-100k attributes beating Pop."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from movielens_formats import ML100K

from polyrec.engine.cli import main
from polyrec.engine.evaluate.cold_users import cold_users
from polyrec.engine.evaluate.dataset import Dataset, events_frame


def _dataset(users: int = 10, events_each: int = 8) -> Dataset:
    rows = [
        (f"u{u}", f"i{(u + e) % 12}", float(100 * e + (7 if e == 2 else 0)))
        for u in range(users)
        for e in range(events_each)
    ]
    rows += [("short", "i1", 1.0), ("short", "i2", 2.0)]  # five events or fewer: no case
    frame = events_frame([r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows])
    return Dataset("toy", [], frame.sample(frac=1.0, random_state=0).reset_index(drop=True))


def test_held_out_users_leave_training_and_every_row_ranks_the_same_target() -> None:
    data = _dataset()
    split = cold_users(data, fraction=0.5, seed=3)
    users = data.events["user"].to_numpy()
    assert not set(users[split.train]) & split.held_out_users
    assert set(users[split.train]) | split.held_out_users == set(users)
    cases = split.cases
    assert list(cases) == [0, 1, 3, 5]
    assert all(np.array_equal(cases[count].targets, cases[0].targets) for count in cases)
    for row, user in enumerate(split.users[5]):
        chronological = data.events[data.events["user"] == user].sort_values("timestamp", kind="stable").index
        assert cases[5].targets[row] == chronological[5]  # the event right after the first five
        assert list(cases[3].histories[row]) == list(chronological[:3])
    assert "short" not in split.users[0]
    again = cold_users(data, fraction=0.5, seed=3)  # seeded
    assert np.array_equal(again.train, split.train) and again.users == split.users
    # target="next": each row ranks the event right after its history
    nxt = cold_users(data, fraction=0.5, seed=3, target="next")
    for count in (0, 1, 3):
        assert [int(t) for t in nxt.cases[count].targets] == [int(h[count]) for h in split.cases[5].histories]


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
    assert (
        main(["evaluate", "--config", str(config), "--dataset", str(ML100K), "--protocol", "cold-users", "--json"]) == 0
    )
    result = json.loads(capsys.readouterr().out)
    ours = {count: metrics["ndcg@10"] for count, metrics in result["by_events"].items()}
    pop = {count: metrics["ndcg@10"] for count, metrics in result["baselines"]["pop"]["by_events"].items()}
    assert list(ours) == ["0", "1", "3", "5"] and list(pop) == list(ours)
    assert result["held_out_users"] == 189 and result["by_events"]["0"]["cases"] == 189
    assert ours["0"] > pop["0"]  # attributes alone
    assert ours["0"] < ours["1"] < ours["3"] < ours["5"]
    assert pd.Series(ours).gt(pd.Series(pop)).all()
