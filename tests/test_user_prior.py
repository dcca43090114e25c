"""The attribute featurizer and the attributes -> item-scores prior, on small data made here."""

from __future__ import annotations

import numpy as np
import pytest

from polyrec.engine.user_features import AttributeFeaturizer
from polyrec.engine.user_prior import AttributePrior, NotEnoughUsers, blend_scores, blend_weight, standardize


def _users(count: int, seed: int = 0) -> dict[str, dict]:
    rng = np.random.default_rng(seed)
    users = {}
    for number in range(count):
        users[f"u{number}"] = {
            "age": int(rng.integers(15, 70)),
            "side": "left" if number % 2 == 0 else "right",
            "postcode": f"{rng.integers(10, 99)}{rng.integers(100, 999)}",
            "bio": " ".join(rng.choice(["likes", "hiking", "jazz", "films", "cooking", "chess"], size=4)),
            "tags": list(rng.choice(["a", "b", "c"], size=2, replace=False)),
        }
    return users


def test_columns_are_classified_from_their_values() -> None:
    users = list(_users(200).values())
    featurizer = AttributeFeaturizer.fit(users)
    kinds = {column.name: column.kind for column in featurizer.columns}
    assert kinds == {"age": "number", "side": "category", "postcode": "code", "bio": "text", "tags": "tokens"}
    postcode = next(column for column in featurizer.columns if column.name == "postcode")
    assert any(token.endswith("^") for token in postcode.vocabulary)  # frequent prefixes, not the rare codes


def test_transform_sets_one_bin_per_number_and_nothing_for_missing_values() -> None:
    users = list(_users(100).values())
    featurizer = AttributeFeaturizer.fit(users, columns=["age", "side"])
    rows = featurizer.transform([{"age": 30, "side": "left"}, {"age": None}, {"side": "never seen"}])
    assert rows.shape == (3, featurizer.size)
    age_bins = next(column for column in featurizer.columns if column.name == "age").size
    assert rows[0, :age_bins].sum() == 1 and rows[0, age_bins:].sum() == 1
    assert rows[1].sum() == 0 and rows[2].sum() == 0
    restored = AttributeFeaturizer.from_json(featurizer.to_json())
    np.testing.assert_array_equal(restored.transform(users), featurizer.transform(users))


def _histories(users: dict[str, dict], seed: int = 0) -> dict[str, list[str]]:
    """Left users mostly pick items l0..l9, right users r0..r9; everyone sometimes picks a shared hit."""
    rng = np.random.default_rng(seed)
    histories = {}
    for user, attributes in users.items():
        own = "l" if attributes["side"] == "left" else "r"
        picks = [f"{own}{i}" for i in rng.choice(10, size=6, replace=False)]
        histories[user] = [*picks, "hit"] if rng.random() < 0.8 else picks
    return histories


def test_the_prior_ranks_what_users_with_the_same_attributes_pick(tmp_path) -> None:
    users = _users(120)
    prior = AttributePrior.fit(users, _histories(users), seed=0)
    scores = prior.scores([{"side": "left", "age": 40}, {"side": "right", "age": 40}])
    top_left = [prior.item_ids[i] for i in np.argsort(-scores[0])[:11]]
    top_right = [prior.item_ids[i] for i in np.argsort(-scores[1])[:11]]
    assert sum(item.startswith("l") for item in top_left) == 10
    assert sum(item.startswith("r") for item in top_right) == 10
    prior.save(tmp_path)
    loaded = AttributePrior.load(tmp_path)
    assert loaded is not None and loaded.item_ids == prior.item_ids
    np.testing.assert_allclose(loaded.scores([users["u3"]]), prior.scores([users["u3"]]), rtol=1e-6)
    assert AttributePrior.load(tmp_path / "nothing-here") is None


def test_too_few_users_with_attributes_and_events_is_said() -> None:
    users = _users(4)
    with pytest.raises(NotEnoughUsers, match="4 users have both attributes and events"):
        AttributePrior.fit(users, _histories(users))


def test_the_prior_fades_as_the_history_grows() -> None:
    assert blend_weight(0, 1.0) == 1.0
    assert blend_weight(1, 1.0) == 0.5
    assert blend_weight(3, 1.0) == 0.25
    prior, history = np.array([3.0, 2.0, 1.0, 0.0]), np.array([0.0, 1.0, 2.0, 30.0])
    assert np.argmax(blend_scores(prior, None, 0, 1.0)) == 0
    assert np.argmax(blend_scores(prior, history, 9, 1.0)) == 3
    np.testing.assert_allclose(standardize(np.array([2.0, 2.0])), [0.0, 0.0])
    assert standardize(np.array([1.0, -np.inf, 3.0]))[1] == -np.inf


def test_the_prior_is_judged_on_events_after_the_fifth_and_keeps_its_chosen_weighting(tmp_path) -> None:
    from polyrec.engine.user_prior import _later

    assert _later(["a", "b", "c", "d", "e", "a", "f", "g"]) == ["f", "g"]  # after five, not among them
    assert _later(["a", "b"]) == []
    users = _users(120)
    prior = AttributePrior.fit(users, _histories(users), seed=0)
    assert prior.weighting in (0.0, 0.5, 1.0) and "row weighting 1/n^" in prior.describe()
    prior.save(tmp_path)
    loaded = AttributePrior.load(tmp_path)
    assert loaded is not None and (loaded.weighting, loaded.penalty) == (prior.weighting, prior.penalty)
