"""The built-in dot, target-attention and mlp scorers: contract suite, formulas, and learning."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from polyrec.contracts import Event, History, NotFittedError, Scorer, TrainingData, recency_weights
from polyrec.contracts.testing.scorers import ScorerContract, clustered_training_data, unit_rows
from polyrec.engine.plugins import build_plugin_manager
from polyrec.engine.registry import Registry
from polyrec.plugins.scorers.dot import DotScorer
from polyrec.plugins.scorers.mlp import MlpConfig, MlpScorer, training_examples
from polyrec.plugins.scorers.target_attention import TargetAttentionScorer

SMALL_MLP = {"epochs": 3, "projection": 8, "hidden": 16, "batch_size": 64}

# ---- contract suite ------------------------------------------------------------------


class TestDotContract(ScorerContract):
    def make_scorer(self) -> Scorer:
        return DotScorer()

    def make_other_scorer(self) -> Scorer:
        return DotScorer(half_life=3600.0)


class TestDotHalfLifeContract(ScorerContract):
    def make_scorer(self) -> Scorer:
        return DotScorer(half_life=60.0)


class TestTargetAttentionContract(ScorerContract):
    def make_scorer(self) -> Scorer:
        return TargetAttentionScorer(temperature=0.2)

    def make_other_scorer(self) -> Scorer:
        return TargetAttentionScorer(temperature=0.5)


class TestTargetAttentionWithoutRecencyContract(ScorerContract):
    def make_scorer(self) -> Scorer:
        return TargetAttentionScorer(recency_prior=False)


class TestMlpContract(ScorerContract):
    def make_scorer(self) -> Scorer:
        return MlpScorer(**SMALL_MLP)

    def make_other_scorer(self) -> Scorer:
        return MlpScorer(**{**SMALL_MLP, "seed": 1})


def test_all_scorers_are_registered() -> None:
    registry = Registry.from_plugin_manager(build_plugin_manager(load_entry_points=False))
    assert {"dot", "target-attention", "mlp"} <= set(registry.names("scorer"))


# ---- helpers ----------------------------------------------------------------------------


def history_of(vectors: np.ndarray, spacing: float = 60.0) -> History:
    vectors = np.asarray(vectors, dtype=np.float32)
    return History([f"h{i}" for i in range(len(vectors))], vectors, spacing * np.arange(len(vectors), dtype=np.float64))


def random_unit(n: int, dim: int, seed: int) -> np.ndarray:
    return unit_rows(np.random.default_rng(seed).normal(size=(n, dim)))


# ---- dot ----------------------------------------------------------------------------------


def test_dot_scores_with_the_recency_weighted_mean() -> None:
    history, candidates = history_of(random_unit(6, 12, 0)), random_unit(30, 12, 1)
    scored = DotScorer().score(history, [str(i) for i in range(30)], candidates)
    user = recency_weights(history.timestamps) @ history.vectors
    np.testing.assert_allclose(scored.scores, candidates @ user, atol=1e-6)
    np.testing.assert_allclose(scored.weights.sum(axis=1), 1.0, atol=1e-6)


def test_dot_half_life_lets_the_latest_item_dominate() -> None:
    history = history_of(np.eye(4, dtype=np.float32)[:3], spacing=3600.0)
    candidates = np.eye(4, dtype=np.float32)[:3]
    short, long = DotScorer(half_life=600.0), DotScorer(half_life=10 * 3600.0)
    assert int(np.argmax(short.score(history, ["a", "b", "c"], candidates).scores)) == 2
    spread = long.score(history, ["a", "b", "c"], candidates).scores
    assert spread.max() - spread.min() < 0.2  # a long half-life weighs the three almost alike


def test_dot_candidate_nothing_argues_for_falls_back_to_recency() -> None:
    history = history_of(np.eye(3, dtype=np.float32))
    scored = DotScorer().score(history, ["opposite"], -np.ones((1, 3), np.float32) / np.sqrt(3))
    np.testing.assert_allclose(scored.weights[0], recency_weights(history.timestamps), atol=1e-6)
    assert scored.scores[0] < 0


def test_empty_history_gives_zero_scores() -> None:
    empty = History([], np.zeros((0, 5), np.float32), np.zeros(0))
    for scorer in (DotScorer(), TargetAttentionScorer()):
        scored = scorer.score(empty, ["a", "b"], np.ones((2, 5), np.float32))
        np.testing.assert_array_equal(scored.scores, 0.0)
        np.testing.assert_array_equal(scorer.query_vector(empty), np.zeros(5))


def test_scorer_input_errors_name_the_plugin() -> None:
    history = history_of(np.eye(3, dtype=np.float32))
    with pytest.raises(ValueError, match=r"'dot'.*2 candidate ids for 3 vectors"):
        DotScorer().score(history, ["a", "b"], np.eye(3, dtype=np.float32))
    with pytest.raises(ValueError, match=r"'target-attention'.*2-d"):
        TargetAttentionScorer().score(history, ["a"], np.ones(3, np.float32))


# ---- target-attention ---------------------------------------------------------------------


def test_target_attention_hot_temperature_is_the_dot_scorer() -> None:
    history, candidates = history_of(random_unit(8, 16, 2)), random_unit(40, 16, 3)
    ids = [str(i) for i in range(40)]
    hot = TargetAttentionScorer(temperature=1e6).score(history, ids, candidates)
    np.testing.assert_allclose(hot.scores, DotScorer().score(history, ids, candidates).scores, atol=1e-5)


def test_target_attention_cold_temperature_picks_the_best_matching_item() -> None:
    history, candidates = history_of(random_unit(8, 16, 4)), random_unit(40, 16, 5)
    scored = TargetAttentionScorer(temperature=1e-3, recency_prior=False).score(
        history, [str(i) for i in range(40)], candidates
    )
    similarities = candidates @ history.vectors.T
    # T log(sum_j exp(s_j / T) / h) -> max_j s_j + T log(1 / h) when one item dominates
    np.testing.assert_allclose(scored.scores, similarities.max(axis=1) + 1e-3 * np.log(1 / 8), atol=1e-4)
    np.testing.assert_array_equal(scored.weights.argmax(axis=1), similarities.argmax(axis=1))
    np.testing.assert_allclose(scored.weights.sum(axis=1), 1.0, atol=1e-5)


def test_target_attention_ranks_a_minority_taste_above_a_blurred_mean() -> None:
    """A user with two tastes: the mean vector sits between them; attention does not."""
    taste_a, taste_b = np.eye(8, dtype=np.float32)[0], np.eye(8, dtype=np.float32)[1]
    history = history_of(np.stack([taste_a] * 3 + [taste_b] * 3))
    between = unit_rows((taste_a + taste_b)[None, :])
    candidates = np.concatenate([taste_a[None, :], between])
    attention = TargetAttentionScorer(recency_prior=False).score(history, ["a", "between"], candidates)
    dot = DotScorer().score(history, ["a", "between"], candidates)
    assert attention.scores[0] > attention.scores[1]
    assert dot.scores[0] < dot.scores[1]


# ---- mlp -----------------------------------------------------------------------------------


def paired_clusters(seed: int = 0, clusters: int = 8, per_cluster: int = 25, dim: int = 32):  # type: ignore[no-untyped-def]
    """Items in ``clusters`` tight clusters; users alternate between a cluster and its partner
    (0<->1, 2<->3, ...), so the next item is *not* like the last one: similarity alone fails."""
    rng = np.random.default_rng(seed)
    centres = np.linalg.qr(rng.normal(size=(dim, clusters)))[0].T
    cluster_of = np.repeat(np.arange(clusters), per_cluster)
    vectors = unit_rows(centres[cluster_of] + 0.15 * rng.normal(size=(len(cluster_of), dim)))

    def sequence(length: int) -> np.ndarray:
        cluster = int(rng.integers(clusters))
        path = [cluster ^ (step % 2) for step in range(length)]
        return np.array([rng.choice(np.flatnonzero(cluster_of == c)) for c in path])

    return vectors, cluster_of, sequence


def next_cluster_precision(scorer: Scorer, vectors, cluster_of, sequence, users: int = 150) -> float:  # type: ignore[no-untyped-def]
    """Share of the top 10 that lie in the cluster of the true next item, over fresh users."""
    ids = [f"i{i}" for i in range(len(vectors))]
    shares = []
    for _ in range(users):
        path = sequence(6)
        history = History([ids[i] for i in path[:-1]], vectors[path[:-1]], np.arange(5.0))
        top = np.argsort(-scorer.score(history, ids, vectors).scores)[:10]
        shares.append(np.mean(cluster_of[top] == cluster_of[path[-1]]))
    return float(np.mean(shares))


@pytest.mark.slow
def test_mlp_learns_a_transition_that_similarity_cannot_see() -> None:
    vectors, cluster_of, sequence = paired_clusters()
    paths = [sequence(10) for _ in range(300)]
    data = TrainingData(
        [f"i{i}" for i in range(len(vectors))],
        vectors,
        [f"u{u}" for u in range(300)],
        paths,
        [np.arange(10.0)] * 300,
        0,
    )
    mlp = MlpScorer(epochs=30, half_life=1.0)
    mlp.fit(data)
    assert mlp.loss_history[-1] < 0.6 * mlp.loss_history[0]
    learned = next_cluster_precision(mlp, vectors, cluster_of, sequence)
    similarity = next_cluster_precision(DotScorer(half_life=1.0), vectors, cluster_of, sequence)
    chance = 1 / 8
    assert learned > 0.8, learned
    assert learned > chance + 0.5 and learned > similarity + 0.5, (learned, similarity)


def test_mlp_training_examples_are_recency_weighted_prefixes() -> None:
    data = clustered_training_data(users=3, length=5)
    config = MlpConfig(history_length=3)
    examples = training_examples(data, config)
    assert len(examples) == 3 * 4
    sequence, stamps = data.sequences[0], data.timestamps[0]
    expected = recency_weights(stamps[1:4]) @ np.asarray(data.item_vectors)[sequence[1:4]]
    np.testing.assert_allclose(examples.users[3], expected, atol=1e-6)  # user 0, position 4, last 3 items
    assert examples.positives[3] == sequence[4]


def test_mlp_caps_examples_with_a_seeded_sample() -> None:
    data = clustered_training_data(users=30, length=10)
    first = training_examples(data, MlpConfig(max_examples=50))
    second = training_examples(data, MlpConfig(max_examples=50))
    assert len(first) == 50
    np.testing.assert_array_equal(first.positives, second.positives)


def test_mlp_before_fit_names_what_to_do() -> None:
    history = history_of(np.eye(4, dtype=np.float32))
    with pytest.raises(NotFittedError, match=r"'mlp' is not fitted.*engine.fit"):
        MlpScorer().score(history, ["a"], np.eye(4, dtype=np.float32)[:1])


def test_mlp_needs_users_with_two_events() -> None:
    data = TrainingData(["a", "b"], np.eye(2, dtype=np.float32), ["u"], [np.array([0])], [np.array([0.0])])
    with pytest.raises(ValueError, match="two or more events"):
        MlpScorer().fit(data)


def test_mlp_rejects_vectors_of_another_dimension_after_fit(tmp_path: Path) -> None:
    mlp = MlpScorer(**SMALL_MLP)
    mlp.fit(clustered_training_data(dim=16))
    history = history_of(np.eye(20, dtype=np.float32)[:3])
    with pytest.raises(ValueError, match="16-d item vectors but got 20-d"):
        mlp.score(history, ["a"], np.eye(20, dtype=np.float32)[:1])
    mlp.save(tmp_path)
    assert (tmp_path / "mlp_scorer.npz").is_file()


# ---- popularity prior (dot and target-attention) ---------------------------------------------


def events_with_counts(counts: dict[str, int]) -> list[Event]:
    """``counts[item]`` events of each item, by as many users."""
    return [Event(user=f"u{n}", item=item, timestamp=float(n)) for item, count in counts.items() for n in range(count)]


#: the built-in scorers with a ``popularity`` weight
WITH_PRIOR = [DotScorer, TargetAttentionScorer]


@pytest.mark.parametrize("make", WITH_PRIOR)
def test_popularity_prior_adds_weighted_log_counts_and_unknown_items_count_zero(make: type[Scorer]) -> None:
    history, candidates = history_of(random_unit(5, 12, 6)), random_unit(4, 12, 7)
    ids = ["hit", "niche", "never-played", "unknown-to-the-log"]
    # "elsewhere" is not a candidate, "never-played" has no event: both must not disturb the others
    events = events_with_counts({"hit": 99, "niche": 2, "elsewhere": 40})
    content = make().score(history, ids, candidates)
    prior = make(popularity=0.25)
    prior.observe(events)
    scored = prior.score(history, ids, candidates)
    expected_bonus = 0.25 * np.log1p([99.0, 2.0, 0.0, 0.0])
    np.testing.assert_allclose(scored.scores, content.scores + expected_bonus, atol=1e-6)
    np.testing.assert_array_equal(scored.weights, content.weights)  # the explanation is the content part's


@pytest.mark.parametrize("make", WITH_PRIOR)
def test_zero_weight_or_no_counts_is_pure_content(make: type[Scorer]) -> None:
    history, candidates = history_of(random_unit(5, 12, 8)), random_unit(30, 12, 9)
    ids = [str(i) for i in range(30)]
    content = make().score(history, ids, candidates).scores
    zero = make(popularity=0.0)
    zero.observe(events_with_counts({"3": 50, "4": 7}))
    np.testing.assert_array_equal(zero.score(history, ids, candidates).scores, content)
    unobserved = make(popularity=0.5)  # e.g. an engine that was never fitted
    np.testing.assert_array_equal(unobserved.score(history, ids, candidates).scores, content)
    empty_log = make(popularity=0.5)
    empty_log.observe([])
    np.testing.assert_array_equal(empty_log.score(history, ids, candidates).scores, content)


@pytest.mark.parametrize("make", WITH_PRIOR)
def test_popularity_breaks_a_content_tie_and_observe_replaces_old_counts(make: type[Scorer]) -> None:
    history = history_of(np.eye(4, dtype=np.float32)[:2])
    twins = unit_rows(np.array([[1.0, 1.0, 0.0, 0.0], [1.0, 1.0, 0.0, 0.0]]))  # equally like the history
    scorer = make(popularity=0.1)
    scorer.observe(events_with_counts({"a": 3, "b": 30}))
    first = scorer.score(history, ["a", "b"], twins).scores
    assert first[1] > first[0]
    scorer.observe(events_with_counts({"a": 30}))  # a later fit sees another log: "b" counts 0 now
    second = scorer.score(history, ["a", "b"], twins).scores
    assert second[0] > second[1]
    np.testing.assert_allclose(second[0] - second[1], 0.1 * np.log1p(30), atol=1e-6)


def test_popularity_prior_does_not_touch_empty_histories() -> None:
    scorer = TargetAttentionScorer(popularity=1.0)
    scorer.observe(events_with_counts({"a": 10}))
    empty = History([], np.zeros((0, 4), np.float32), np.zeros(0))
    scored = scorer.score(empty, ["a", "b"], np.eye(4, dtype=np.float32)[:2])
    np.testing.assert_array_equal(scored.scores, 0.0)  # cold users are the engine's business


def test_fingerprint_names_the_counts_only_when_they_count() -> None:
    events = events_with_counts({"a": 3, "b": 1})
    first, second = TargetAttentionScorer(popularity=0.1), TargetAttentionScorer(popularity=0.1)
    unobserved = first.fingerprint
    first.observe(events)
    second.observe(list(reversed(events)))  # the same counts in another order
    assert first.fingerprint != unobserved and first.fingerprint == second.fingerprint
    second.observe(events_with_counts({"a": 4, "b": 1}))
    assert second.fingerprint != first.fingerprint
    content_only = DotScorer()
    fingerprint = content_only.fingerprint
    content_only.observe(events)  # weight 0: the counts change nothing, so they are not named
    assert content_only.fingerprint == fingerprint


@pytest.mark.parametrize("bad", [-0.1, float("nan"), float("inf")])
def test_popularity_weight_must_be_finite_and_not_negative(bad: float) -> None:
    with pytest.raises(ValidationError, match="popularity"):
        TargetAttentionScorer(popularity=bad)
    with pytest.raises(ValidationError, match="popularity"):
        DotScorer(popularity=bad)


class TestTargetAttentionWithPopularityContract(ScorerContract):
    """The whole scorer contract with counts in place (the suite itself never observes)."""

    def make_scorer(self) -> Scorer:
        return TargetAttentionScorer(popularity=0.05)

    def make_other_scorer(self) -> Scorer:
        return TargetAttentionScorer(popularity=0.1)

    def ready_scorer(self, scorer: Scorer | None = None) -> Scorer:
        scorer = super().ready_scorer(scorer)
        data = self.training_data()
        scorer.observe(
            [
                Event(user=user, item=data.item_ids[i], timestamp=float(t))
                for user, sequence in zip(data.users, data.sequences, strict=True)
                for t, i in enumerate(sequence)
            ]
        )
        return scorer


class TestDotWithPopularityContract(TestTargetAttentionWithPopularityContract):
    def make_scorer(self) -> Scorer:
        return DotScorer(popularity=0.05)

    def make_other_scorer(self) -> Scorer:
        return DotScorer(popularity=0.1)


@pytest.mark.parametrize("make", WITH_PRIOR)
def test_popularity_window_counts_the_events_up_to_the_users_latest_event(make: type[Scorer]) -> None:
    day = 86_400.0
    now = 100 * day  # the history's latest event
    history = History(["h0", "h1"], np.eye(4, dtype=np.float32)[:2], np.array([now - 5 * day, now]))
    twins = np.repeat(unit_rows(np.array([[1.0, 1.0, 0.0, 0.0]])), 4, axis=0)  # content alike: only the prior differs
    ids = ["recent", "old", "future", "never"]
    log = (
        [Event(user=f"r{n}", item="recent", timestamp=now - n * day) for n in range(3)]  # now, now-1d, now-2d
        + [Event(user="edge", item="recent", timestamp=now - 7 * day)]  # exactly a window ago: outside
        + [Event(user=f"o{n}", item="old", timestamp=now - (30 + n) * day) for n in range(9)]
        + [Event(user=f"f{n}", item="future", timestamp=now + day) for n in range(9)]  # not happened yet
    )
    windowed, all_time = make(popularity=0.5, popularity_window=7 * day), make(popularity=0.5)
    windowed.observe(log)
    all_time.observe(log)
    content = make().score(history, ids, twins).scores
    np.testing.assert_allclose(
        windowed.score(history, ids, twins).scores - content, 0.5 * np.log1p([3, 0, 0, 0]), atol=1e-6
    )
    every_event = all_time.score(history, ids, twins).scores - content
    np.testing.assert_allclose(every_event, 0.5 * np.log1p([4, 9, 9, 0]), atol=1e-6)
    # a user whose present is 30 days earlier: 7 of the "old" events fall in their week, "recent" is future
    earlier = History(["h0"], np.eye(4, dtype=np.float32)[:1], np.array([now - 30 * day]))
    bonus = windowed.score(earlier, ids, twins).scores - make().score(earlier, ids, twins).scores
    np.testing.assert_allclose(bonus, 0.5 * np.log1p([0, 7, 0, 0]), atol=1e-6)


def test_popularity_window_changes_the_fingerprint_of_the_same_log() -> None:
    log = events_with_counts({"a": 3, "b": 1})
    windowed = TargetAttentionScorer(popularity=0.1, popularity_window=60.0)
    all_time = TargetAttentionScorer(popularity=0.1)
    windowed.observe(log)
    all_time.observe(log)
    assert windowed.fingerprint != all_time.fingerprint
    with pytest.raises(ValidationError, match="popularity_window"):
        TargetAttentionScorer(popularity=0.1, popularity_window=0.0)


class TestTargetAttentionWithPopularityWindowContract(TestTargetAttentionWithPopularityContract):
    def make_scorer(self) -> Scorer:
        return TargetAttentionScorer(popularity=0.05, popularity_window=7_200.0)

    def make_other_scorer(self) -> Scorer:
        return TargetAttentionScorer(popularity=0.05, popularity_window=3_600.0)
