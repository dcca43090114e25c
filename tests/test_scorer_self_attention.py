"""The ``self-attention`` scorer on small synthetic sequences it must learn."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from polyrec.contracts import ConfigError, History, NotFittedError, Scorer, TrainingData
from polyrec.contracts.testing.scorers import ScorerContract
from polyrec.engine.config import resolve_config
from polyrec.engine.plugins import build_plugin_manager
from polyrec.engine.registry import Registry
from polyrec.plugins.scorers.self_attention import SelfAttentionScorer

pytest.importorskip("torch")

N_ITEMS = 24
DIM = 32
#: small and quick: these sequences are easy
FAST = {"dim": 32, "layers": 1, "heads": 2, "max_len": 12, "epochs": 25, "patience": 4, "dropout": 0.1, "lr": 3e-3}


class TestSelfAttentionContract(ScorerContract):
    """The shared scorer suite, on a model small enough to fit in a second or two."""

    atol = 1e-4  # torch float32 matmuls: batch vs single-row scoring differ in the last bits

    def make_scorer(self) -> Scorer:
        return SelfAttentionScorer(**{**FAST, "dim": 16, "epochs": 3, "validation_users": 10})

    def make_other_scorer(self) -> Scorer:
        return SelfAttentionScorer(**{**FAST, "dim": 16, "epochs": 3, "validation_users": 10, "seed": 1})


def test_train_settings_and_model_shape_come_from_the_config_only() -> None:
    from polyrec.plugins.scorers.self_attention.model import ModelShape, TrainSettings

    scorer = SelfAttentionScorer(lr=7e-4, layers=3, negatives=17)
    settings, shape = (
        TrainSettings.from_config(scorer.config),
        ModelShape.from_config(scorer.config, known_items=5, content_dim=8),
    )
    assert (settings.lr, settings.negatives, shape.layers, shape.known_items) == (7e-4, 17, 3, 5)
    assert TrainSettings.from_config(SelfAttentionScorer().config).lr == SelfAttentionScorer.Config().lr
    with pytest.raises(TypeError):
        TrainSettings()  # type: ignore[call-arg]  # no defaults of its own that could drift


def cycle_data(seed: int = 0, users: int = 48, vectors: np.ndarray | None = None) -> TrainingData:
    """Every user walks the item cycle 0 -> 1 -> ... -> N-1 -> 0 from a random start."""
    rng = np.random.default_rng(seed)
    ids = [f"item{i}" for i in range(N_ITEMS)]
    if vectors is None:
        vectors = rng.normal(size=(N_ITEMS, DIM)).astype(np.float32)
    sequences = [(rng.integers(N_ITEMS) + np.arange(rng.integers(8, 20))) % N_ITEMS for _ in range(users)]
    stamps = [np.arange(len(s), dtype=np.float64) for s in sequences]
    return TrainingData(ids, vectors, [f"u{u}" for u in range(users)], sequences, stamps, seed)


def history_of(data: TrainingData, positions: list[int]) -> History:
    return History(
        item_ids=[data.item_ids[p] for p in positions],
        vectors=data.item_vectors[positions],
        timestamps=np.arange(len(positions), dtype=np.float64),
    )


def next_item_accuracy(scorer: SelfAttentionScorer, data: TrainingData, starts: range) -> float:
    """Top-1 accuracy of the next item of 5-item walks, history items masked (as recommend does)."""
    walks = [[(s + k) % N_ITEMS for k in range(5)] for s in starts]
    scores = scorer.score_batch([history_of(data, walk) for walk in walks], data.item_ids, data.item_vectors)
    for row, walk in enumerate(walks):
        scores[row, walk] = -np.inf
    predicted = scores.argmax(axis=1)
    return float(np.mean([p == (s + 5) % N_ITEMS for p, s in zip(predicted, starts)]))


@pytest.fixture(scope="module")
def cycles() -> TrainingData:
    return cycle_data()


@pytest.fixture(scope="module")
def fitted(cycles: TrainingData) -> SelfAttentionScorer:
    scorer = SelfAttentionScorer(**FAST)
    scorer.fit(cycles)
    return scorer


def test_learns_item_cycles_far_better_than_random(fitted: SelfAttentionScorer, cycles: TrainingData) -> None:
    accuracy = next_item_accuracy(fitted, cycles, range(N_ITEMS))
    assert accuracy >= 0.8, f"next-item accuracy {accuracy:.2f} (random: {1 / N_ITEMS:.2f})"
    assert fitted.train_log is not None and fitted.train_log.best_epoch >= 0
    assert fitted.train_log.losses[-1] < fitted.train_log.losses[0]


def test_untrained_model_does_not_know_the_cycles(cycles: TrainingData) -> None:
    """The accuracy above comes from training, not from the setup."""
    scorer = SelfAttentionScorer(**{**FAST, "epochs": 1, "lr": 1e-6})
    scorer.fit(cycles)
    assert next_item_accuracy(scorer, cycles, range(N_ITEMS)) < 0.3


def test_sampled_softmax_also_learns(cycles: TrainingData) -> None:
    scorer = SelfAttentionScorer(**{**FAST, "full_softmax_items": 10, "negatives": 8})
    scorer.fit(cycles)
    assert next_item_accuracy(scorer, cycles, range(N_ITEMS)) >= 0.7


def test_score_matches_score_batch(fitted: SelfAttentionScorer, cycles: TrainingData) -> None:
    histories = [history_of(cycles, [3, 4, 5]), history_of(cycles, list(range(10, 24)))]
    batched = fitted.score_batch(histories, cycles.item_ids, cycles.item_vectors)
    for row, history in enumerate(histories):
        single = fitted.score(history, cycles.item_ids, cycles.item_vectors).scores
        np.testing.assert_allclose(single, batched[row], rtol=1e-4, atol=1e-5)


def test_explanation_is_attention_over_the_history_per_candidate(
    fitted: SelfAttentionScorer, cycles: TrainingData
) -> None:
    history = history_of(cycles, [(7 + k) % N_ITEMS for k in range(20)])  # longer than max_len (12)
    candidates = [2, 9, 15]
    scored = fitted.score(history, [cycles.item_ids[i] for i in candidates], cycles.item_vectors[candidates])
    assert scored.scores.shape == (3,)
    assert scored.weights.shape == (3, 20)
    np.testing.assert_allclose(scored.weights.sum(axis=1), 1.0, rtol=1e-5)
    assert (scored.weights >= 0).all()
    assert (scored.weights[:, :8] == 0).all(), "items older than max_len are not read, so carry no weight"
    walk = [(7 + k) % N_ITEMS for k in range(20)]
    # a candidate that is itself a history item in the window is explained most by that item
    assert scored.weights[2].argmax() == walk.index(15) and scored.weights[0].argmax() == walk.index(2)
    assert not np.allclose(scored.weights[0], scored.weights[2]), "explanations depend on the candidate"


def test_empty_history_scores_zero(fitted: SelfAttentionScorer, cycles: TrainingData) -> None:
    empty = History([], np.zeros((0, DIM), np.float32), np.zeros(0))
    scored = fitted.score(empty, cycles.item_ids, cycles.item_vectors)
    assert scored.weights.shape == (N_ITEMS, 0)
    assert not scored.scores.any()
    batched = fitted.score_batch([empty, history_of(cycles, [1, 2])], cycles.item_ids, cycles.item_vectors)
    assert not batched[0].any() and batched[1].any()


def test_cold_items_are_placed_by_their_content() -> None:
    """Items in four content clusters; users stay in one cluster. Items never seen in
    training must still rank above other clusters' cold items for a user of their cluster."""
    rng = np.random.default_rng(1)
    clusters, per_cluster = 4, 10
    centres = rng.normal(size=(clusters, DIM))
    cluster = np.repeat(np.arange(clusters), per_cluster)
    vectors = (centres[cluster] + 0.3 * rng.normal(size=(len(cluster), DIM))).astype(np.float32)
    ids = [f"item{i}" for i in range(len(cluster))]
    cold = np.array([c * per_cluster + k for c in range(clusters) for k in (7, 8, 9)])
    warm = [np.flatnonzero((cluster == c) & ~np.isin(np.arange(len(cluster)), cold)) for c in range(clusters)]
    sequences = [rng.choice(warm[u % clusters], size=12) for u in range(64)]
    data = TrainingData(ids, vectors, [f"u{u}" for u in range(64)], sequences, [np.arange(12.0)] * 64)
    scorer = SelfAttentionScorer(**{**FAST, "id_dropout": 0.2})
    scorer.fit(data)
    assert all(ids[i] not in scorer.item_rows for i in cold), "cold items must have no ID embedding"
    hits = 0
    for c in range(clusters):
        history = History([ids[i] for i in warm[c][:5]], vectors[warm[c][:5]], np.arange(5.0))
        scores = scorer.score(history, [ids[i] for i in cold], vectors[cold]).scores
        hits += int(cluster[cold[np.argmax(scores)]] == c)
    assert hits == clusters

    no_content = SelfAttentionScorer(**{**FAST, "content": False, "epochs": 2})
    no_content.fit(data)
    scores = no_content.score(history, [ids[i] for i in cold], vectors[cold]).scores
    assert np.allclose(scores, scores[0]), "without content every cold item looks the same"


def test_same_seed_same_model_other_seed_other_model(cycles: TrainingData) -> None:
    params = {**FAST, "epochs": 3}
    first, second, other = (
        SelfAttentionScorer(**params),
        SelfAttentionScorer(**params),
        SelfAttentionScorer(**{**params, "seed": 1}),
    )
    for scorer in (first, second, other):
        scorer.fit(cycles)
    history = history_of(cycles, [0, 1, 2, 3])
    a, b, c = (s.score_batch([history], cycles.item_ids, cycles.item_vectors) for s in (first, second, other))
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
    assert first.fingerprint == second.fingerprint != other.fingerprint


def test_save_load_round_trip(fitted: SelfAttentionScorer, cycles: TrainingData, tmp_path) -> None:
    fitted.save(tmp_path)
    loaded = SelfAttentionScorer(**FAST)
    loaded.load(tmp_path)
    history = history_of(cycles, [5, 6, 7, 8])
    np.testing.assert_array_equal(
        loaded.score_batch([history], cycles.item_ids, cycles.item_vectors),
        fitted.score_batch([history], cycles.item_ids, cycles.item_vectors),
    )
    original = fitted.score(history, cycles.item_ids, cycles.item_vectors)
    again = loaded.score(history, cycles.item_ids, cycles.item_vectors)
    np.testing.assert_array_equal(original.weights, again.weights)
    np.testing.assert_array_equal(loaded.query_vector(history), fitted.query_vector(history))
    assert loaded.fingerprint == fitted.fingerprint
    assert loaded.train_log == fitted.train_log


def test_query_vector_retrieves_what_the_model_ranks_first(fitted: SelfAttentionScorer, cycles: TrainingData) -> None:
    """ANN on the fused vectors with the query vector must find the scorer's favourite."""
    found = 0
    for start in range(N_ITEMS):
        history = history_of(cycles, [(start + k) % N_ITEMS for k in range(4)])
        query = fitted.query_vector(history)
        assert query.shape == (DIM,) and np.isclose(np.linalg.norm(query), 1.0, atol=1e-5)
        best = int(np.argmax(fitted.score(history, cycles.item_ids, cycles.item_vectors).scores))
        found += best in np.argsort(-(cycles.item_vectors @ query))[:6]
    assert found >= 0.8 * N_ITEMS, f"scorer's top item in the query's top 6 for {found}/{N_ITEMS} histories"


def test_not_fitted_errors(cycles: TrainingData, tmp_path) -> None:
    scorer = SelfAttentionScorer()
    history = history_of(cycles, [1, 2])
    with pytest.raises(NotFittedError, match="self-attention"):
        scorer.score(history, cycles.item_ids, cycles.item_vectors)
    with pytest.raises(NotFittedError):
        scorer.score_batch([history], cycles.item_ids, cycles.item_vectors)
    with pytest.raises(NotFittedError):
        scorer.query_vector(history)
    with pytest.raises(NotFittedError):
        scorer.save(tmp_path)
    with pytest.raises(FileNotFoundError, match="self-attention"):
        scorer.load(tmp_path)


def test_wrong_vector_dim_is_a_clear_error(fitted: SelfAttentionScorer, cycles: TrainingData) -> None:
    history = History(["item1"], np.ones((1, 8), np.float32), np.zeros(1))
    with pytest.raises(ValueError, match=r"self-attention.*32-d"):
        fitted.score(history, ["item2"], np.ones((1, 8), np.float32))


def test_fit_needs_a_user_with_two_events(cycles: TrainingData) -> None:
    data = TrainingData(cycles.item_ids, cycles.item_vectors, ["u"], [np.array([3])], [np.zeros(1)])
    with pytest.raises(ValueError, match="two or more events"):
        SelfAttentionScorer(**FAST).fit(data)


def test_registered_and_configured_through_the_registry() -> None:
    registry = Registry.from_plugin_manager(build_plugin_manager(load_entry_points=False))
    cls = registry.get("scorer", "self-attention")
    assert cls is SelfAttentionScorer and cls.trainable
    raw = {"encoders": {"text": {"plugin": "sentence-transformers"}}, "scorer": {"plugin": "self-attention", "dim": 32}}
    assert resolve_config(raw, registry).scorer.config.dim == 32
    for bad in ({"id_embeddings": False, "content": False}, {"dim": 30, "heads": 4}, {"layers": 0}):
        with pytest.raises(ConfigError, match="scorer"):
            resolve_config({**raw, "scorer": {"plugin": "self-attention", **bad}}, registry)


def test_importing_the_plugin_does_not_import_torch() -> None:
    code = "import sys, polyrec.plugins.scorers.self_attention; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_training_windows_cover_every_next_item_once() -> None:
    from polyrec.plugins.scorers.self_attention.model import training_windows

    rng = np.random.default_rng(0)
    sequences = [np.arange(n) + 100 * n for n in (1, 2, 7, 30, 61)]
    for _ in range(5):  # the random shift changes the cut, never the coverage
        windows = training_windows(sequences, max_len=8, rng=rng)
        targets = sorted(int(t) for window, _ in windows for t in window[1:])
        assert targets == sorted(int(t) for s in sequences for t in s[1:])
        for window, prefix in windows:
            assert 2 <= len(window) <= 9
            whole = np.concatenate([prefix, window])
            assert any(np.array_equal(whole, s[: len(whole)]) for s in sequences), "prefix + window is a user's start"


def test_seen_before_masks_earlier_items_of_window_and_prefix() -> None:
    torch = pytest.importorskip("torch")
    from polyrec.plugins.scorers.self_attention.model import left_pad, seen_before

    inputs, pad = left_pad(torch, [np.array([1, 2, 1]), np.array([4])], 3)
    seen = seen_before(torch, torch.arange(6), inputs, pad, [np.array([5]), np.array([], dtype=np.int64)]).numpy()
    # user 0: item 5 before the window, then 1, 2, 1 -> seen sets grow cumulatively
    assert [np.flatnonzero(seen[0, t]).tolist() for t in range(3)] == [[1, 5], [1, 2, 5], [1, 2, 5]]
    # user 1: two padding positions, then item 4
    assert [np.flatnonzero(seen[1, t]).tolist() for t in range(3)] == [[], [], [4]]


def test_hold_out_last_keeps_histories_and_caps_users() -> None:
    from polyrec.plugins.scorers.self_attention.model import hold_out_last

    sequences = [np.arange(n) for n in (2, 3, 5, 8)]
    train, cases = hold_out_last(sequences, max_cases=10, rng=np.random.default_rng(0))
    assert [len(s) for s in train] == [2, 2, 4, 7]
    assert cases.targets.tolist() == [2, 4, 7]
    assert all(np.array_equal(h, s) for h, s in zip(cases.histories, train[1:]))
    _, capped = hold_out_last(sequences, max_cases=2, rng=np.random.default_rng(0))
    assert len(capped) == 2


def test_no_weight_average_and_no_seen_mask_also_learn(cycles: TrainingData) -> None:
    averaged = SelfAttentionScorer(**{**FAST, "average_epochs": 0})
    averaged.fit(cycles)
    assert next_item_accuracy(averaged, cycles, range(N_ITEMS)) >= 0.8
    unmasked = SelfAttentionScorer(**{**FAST, "mask_seen": False, "validation_users": 0, "epochs": 12})
    unmasked.fit(cycles)
    assert unmasked.train_log is not None and unmasked.train_log.validation == []
    assert len(unmasked.train_log.losses) == 12, "without a hold-out every epoch runs"
    assert next_item_accuracy(unmasked, cycles, range(N_ITEMS)) >= 0.8


def test_engine_fits_recommends_explains_and_reloads(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A real engine (LanceDB store, MiniLM + behavior encoders) with this scorer: fit, recommend
    with explanations, and a second engine on the same store that loads the trained scorer."""
    pytest.importorskip("sentence_transformers")
    from polyrec.engine.engine import Engine

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    config = {
        "store": {"plugin": "lancedb", "uri": str(tmp_path / "db")},
        "encoders": {
            "title": {"plugin": "sentence-transformers"},
            "behavior": {"plugin": "behavior", "dim": 8, "min_count": 1},
        },
        "scorer": {"plugin": "self-attention", **FAST},
        "retrieval": {"candidates": N_ITEMS},
    }
    data = cycle_data()
    items = [{"id": item_id, "title": item_id} for item_id in data.item_ids]
    events = [
        {"user": user, "item": data.item_ids[i], "timestamp": float(t)}
        for user, sequence in zip(data.users, data.sequences)
        for t, i in enumerate(sequence)
    ]
    walk = [f"item{i}" for i in (5, 6, 7, 8)]
    events += [{"user": "walker", "item": item, "timestamp": float(t)} for t, item in enumerate(walk)]
    with Engine.from_config(config) as engine:
        engine.ingest(items)
        engine.add_events(events)
        engine.fit()
        first = engine.recommend("walker", k=3)
    assert first[0].item == "item9"
    assert {w.item for w in first[0].explanation} <= set(walk)
    assert first[0].explanation and all(w.weight > 0 for w in first[0].explanation)
    with Engine.from_config(config) as reopened:
        again = reopened.recommend("walker", k=3)
    assert [(r.item, round(r.score, 5)) for r in again] == [(r.item, round(r.score, 5)) for r in first]
