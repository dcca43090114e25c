"""The ``behavior`` encoder: what its vectors capture, its state, and the encoder contract."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from polyrec.contracts import Event, NotFittedError, ProvenanceMismatchError
from polyrec.contracts.testing.encoders import EncoderContract
from polyrec.plugins.encoders.behavior import BehaviorEncoder

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
ML100K = DATA / "ml-100k" / "ml-100k.inter"


def two_group_log(seed: int = 0, users_per_group: int = 30, items_per_group: int = 12) -> list[Event]:
    """Users of group A interact only with items a*, group B only with b*; random order.

    Also: item ``rare`` (one event, below min_count 2) and a few cross-group slips.
    """
    rng = np.random.default_rng(seed)
    events: list[Event] = []
    clock = 0.0
    for group in ("a", "b"):
        for u in range(users_per_group):
            picked = rng.choice(items_per_group, size=rng.integers(4, 9), replace=False)
            for item in picked:
                clock += 1.0
                events.append(Event(user=f"{group}-user{u}", item=f"{group}{item}", timestamp=clock))
    events.append(Event(user="a-user0", item="rare", timestamp=clock + 1))
    for u in range(3):  # slips: a B item in an A history
        events.append(Event(user=f"a-user{u}", item="b0", timestamp=clock + 2 + u))
    return events


def _cosine_matrix(vectors: np.ndarray) -> np.ndarray:
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    return unit @ unit.T


@pytest.fixture(scope="module")
def fitted() -> BehaviorEncoder:
    encoder = BehaviorEncoder(dim=8, seed=3)
    encoder.fit(two_group_log(), [])
    return encoder


# ---- what the vectors capture ----------------------------------------------------------


@pytest.mark.parametrize("window", [0, 3], ids=["whole-history", "window3"])
def test_items_of_one_user_group_are_nearest(window: int) -> None:
    encoder = BehaviorEncoder(dim=8, window=window)
    encoder.fit(two_group_log(), [])
    ids = [f"{g}{i}" for g in "ab" for i in range(12)]
    similarity = _cosine_matrix(encoder.encode(ids))
    group = np.array([item[0] for item in ids])
    same = group[:, None] == group[None, :]
    np.fill_diagonal(similarity, -np.inf)
    nearest = similarity.argmax(axis=1)
    assert (group[nearest] == group).all()
    np.fill_diagonal(similarity, np.nan)
    within, across = np.nanmean(similarity[same]), np.nanmean(similarity[~same])
    assert within - across > 0.5, (within, across)


@pytest.mark.data
def test_ml100k_neighbours_predict_the_next_item() -> None:
    """Leave-last-out on MovieLens-100k: fit without each user's last event, then rank
    the unseen items by cosine to the user's previous item. The held-out item must be in
    that top 10 at least 5x as often as in 10 random unseen items, and more often than in
    the 10 most popular unseen items (a strong baseline on this data)."""
    if not ML100K.is_file():
        pytest.skip(f"MovieLens-100k not found at {ML100K} (shared data is not checked out)")
    import pandas as pd

    frame = pd.read_csv(ML100K, sep="\t")
    frame.columns = ["user", "item", "rating", "timestamp"]
    frame = frame.astype({"user": str, "item": str}).reset_index()
    frame = frame.sort_values(["user", "timestamp", "index"], kind="stable")  # ties keep file order
    held_out = frame.groupby("user").tail(1).set_index("user")["item"]
    train = frame.drop(frame.groupby("user").tail(1).index)
    events = [
        Event(user=u, item=i, value=r, timestamp=t)
        for u, i, r, t in zip(train.user, train.item, train.rating, train.timestamp)
    ]
    encoder = BehaviorEncoder(dim=64, seed=0)
    encoder.fit(events, [])

    # every train item is a candidate (items without a vector simply score 0)
    items = train["item"].value_counts().index.to_numpy()  # most popular first
    column = {item: k for k, item in enumerate(items)}
    users = held_out.index.to_numpy()
    row = {user: k for k, user in enumerate(users)}
    seen = np.zeros((len(users), len(items)), dtype=bool)
    seen[train["user"].map(row).to_numpy(), train["item"].map(column).to_numpy()] = True
    target = held_out.map(column).fillna(-1).astype(int).to_numpy()  # -1: item new at test time
    hittable = target >= 0
    targets_unseen = hittable & ~seen[np.arange(len(users)), np.maximum(target, 0)]

    previous = train.groupby("user").tail(1).set_index("user")["item"].reindex(users)
    vectors = encoder.encode(items)
    scores = encoder.encode(previous.tolist()) @ vectors.T
    scores[seen] = -np.inf
    top10 = np.argpartition(-scores, 10, axis=1)[:, :10]
    # a user whose previous item has no vector counts as a miss (its scores are all 0)
    hit_rate = ((top10 == target[:, None]).any(axis=1) & encoder.known(previous.tolist())).mean()
    random_rate = np.where(targets_unseen, 10 / (~seen).sum(axis=1), 0.0).mean()
    popular_top10 = np.cumsum(~seen, axis=1) <= 10  # first 10 unseen, most popular first
    popular_rate = (targets_unseen & popular_top10[np.arange(len(users)), np.maximum(target, 0)]).mean()
    print(f"HR@10 {hit_rate:.3f}; random {random_rate:.4f} ({hit_rate / random_rate:.1f}x); popular {popular_rate:.3f}")
    assert hit_rate >= 5 * random_rate
    assert hit_rate > popular_rate


# ---- unknown items and state -------------------------------------------------------------


def test_unknown_and_rare_items_get_zero_rows_and_are_flagged(fitted: BehaviorEncoder) -> None:
    ids = ["a1", "never-seen", "rare", "b2"]
    vectors = fitted.encode(ids)
    assert vectors.shape == (4, 8) and vectors.dtype == np.float32
    assert fitted.known(ids).tolist() == [True, False, False, True]
    assert not vectors[1].any() and not vectors[2].any()
    np.testing.assert_allclose(np.linalg.norm(vectors[[0, 3]], axis=1), 1.0, atol=1e-5)
    assert "rare" not in fitted.item_ids


def test_not_fitted_is_a_clear_error() -> None:
    encoder = BehaviorEncoder()
    with pytest.raises(NotFittedError, match=r"engine\.fit\(\)"):
        encoder.encode(["a1"])
    with pytest.raises(NotFittedError):
        encoder.known(["a1"])
    assert encoder.fingerprint.endswith(":unfitted")


def test_deterministic_for_a_seed_and_independent_of_log_order() -> None:
    events = two_group_log(seed=1)
    shuffled = [events[k] for k in np.random.default_rng(0).permutation(len(events))]
    first, second, reordered = BehaviorEncoder(seed=7), BehaviorEncoder(seed=7), BehaviorEncoder(seed=7)
    first.fit(events, [])
    second.fit(events, [])
    reordered.fit(shuffled, [])  # distinct timestamps: order comes from time, not from the log
    ids = first.item_ids
    assert first.fingerprint == second.fingerprint == reordered.fingerprint
    np.testing.assert_array_equal(first.encode(ids), second.encode(ids))
    np.testing.assert_allclose(first.encode(ids), reordered.encode(ids), atol=1e-6)


def test_refitting_on_other_events_changes_the_fingerprint() -> None:
    encoder = BehaviorEncoder(dim=8)
    encoder.fit(two_group_log(seed=0), [])
    before = encoder.fingerprint
    encoder.fit(two_group_log(seed=5), [])
    assert encoder.fingerprint != before
    assert BehaviorEncoder(dim=16).fingerprint != BehaviorEncoder(dim=8).fingerprint


def test_save_and_load_round_trip(fitted: BehaviorEncoder, tmp_path: Path) -> None:
    fitted.save(tmp_path / "state")
    restored = BehaviorEncoder(dim=8, seed=3)
    restored.load(tmp_path / "state")
    ids = ["a1", "b5", "never-seen"]
    np.testing.assert_array_equal(restored.encode(ids), fitted.encode(ids))
    assert restored.known(ids).tolist() == [True, True, False]
    assert restored.fingerprint == fitted.fingerprint


def test_load_refuses_other_config_or_missing_state(fitted: BehaviorEncoder, tmp_path: Path) -> None:
    fitted.save(tmp_path)
    with pytest.raises(ProvenanceMismatchError, match="re-fit"):
        BehaviorEncoder(dim=16).load(tmp_path)
    with pytest.raises(NotFittedError, match="no saved vectors"):
        BehaviorEncoder().load(tmp_path / "empty")


def test_kinds_filter_and_mapping_events() -> None:
    plays = [e.model_dump() | {"kind": "play"} for e in two_group_log()]  # plain dicts are accepted too
    rng = np.random.default_rng(2)
    skips = [
        play
        | {"item": f"{rng.choice(['a', 'b'])}{rng.integers(12)}", "kind": "skip", "timestamp": play["timestamp"] + 0.5}
        for play in plays
    ]
    only_plays, reference, everything = (
        BehaviorEncoder(dim=8, kinds=("play",)),
        BehaviorEncoder(dim=8),
        BehaviorEncoder(dim=8),
    )
    only_plays.fit(plays + skips, [])
    reference.fit(plays, [])
    everything.fit(plays + skips, [])
    ids = [f"{g}{i}" for g in "ab" for i in range(12)]
    np.testing.assert_allclose(only_plays.encode(ids), reference.encode(ids), atol=1e-6)
    assert not np.allclose(everything.encode(ids), reference.encode(ids), atol=1e-2)


def test_value_weighting_changes_the_vectors() -> None:
    events = [
        e.model_copy(update={"value": float(np.random.default_rng(k).integers(1, 6))})
        for k, e in enumerate(two_group_log())
    ]
    plain, weighted = BehaviorEncoder(dim=8), BehaviorEncoder(dim=8, weight_by_value=True)
    plain.fit(events, [])
    weighted.fit(events, [])
    assert not np.allclose(plain.encode(["a1", "a2"]), weighted.encode(["a1", "a2"]), atol=1e-3)


def test_tiny_and_empty_logs() -> None:
    tiny = BehaviorEncoder(dim=64, min_count=1)
    tiny.fit([Event(user="u", item=i, timestamp=t) for t, i in enumerate("xyz")], [])
    vectors = tiny.encode(["x", "y", "z"])
    assert vectors.shape == (3, 64) and np.isfinite(vectors).all()
    assert tiny.known(["x", "y", "z"]).all()
    empty = BehaviorEncoder(dim=4)
    empty.fit([], [])
    assert not empty.encode(["x"]).any() and not empty.known(["x"]).any()


@pytest.mark.parametrize("value", [None, "", 3.5, ["a1"], True])
def test_prepare_rejects_non_ids(fitted: BehaviorEncoder, value: object) -> None:
    with pytest.raises(ValueError, match="item id"):
        fitted.prepare(value)


def test_importing_the_plugin_does_not_import_scipy() -> None:
    code = "import sys, polyrec.plugins.encoders.behavior; print('scipy' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


def test_registered_under_its_name() -> None:
    from polyrec.engine.plugins import build_plugin_manager
    from polyrec.engine.registry import Registry

    pm = build_plugin_manager(builtins=["polyrec.plugins.encoders.behavior"], load_entry_points=False, strict=True)
    entry = Registry.from_plugin_manager(pm).entry("encoder", "behavior")
    assert entry.component is BehaviorEncoder
    assert BehaviorEncoder.reads_item_id and BehaviorEncoder.trainable


# ---- shared encoder contract --------------------------------------------------------------


class TestBehaviorContract(EncoderContract):
    def make_encoder(self) -> BehaviorEncoder:
        encoder = BehaviorEncoder(dim=8, seed=1)
        encoder.fit(two_group_log(seed=4), [])
        return encoder

    def sample_values(self) -> list[str]:
        return ["a0", "a3", "a7", "b1", "b4", "b9", "never-seen"]

    def bad_values(self) -> list[object]:
        return [None, "", 2.5, {"id": "a1"}]

    def make_other_encoder(self) -> BehaviorEncoder:
        encoder = BehaviorEncoder(dim=8, seed=1, window=2)
        encoder.fit(two_group_log(seed=4), [])
        return encoder
