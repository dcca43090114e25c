"""``mlp`` scorer: the scoring layer of M6-Rec-style designs, trained on the event log.

Model: user vector u = recency-weighted mean of the history (as in ``dot``), candidate
vector c. Both go through one learned projection P (D -> ``projection``), then

    score(u, c) = w2 . gelu(W1 [Pu, Pc, Pu * Pc] + b1) + b2 + alpha * (u . c)

The ``alpha * (u . c)`` skip (alpha starts at 10, the MLP's output layer at zero) starts
the model as the ``dot`` scorer and lets the MLP learn what similarity misses (e.g.
"after A users go on to B", or item-side priors), so a small log cannot make it much
worse than ``dot``.

Training (:meth:`MlpScorer.fit`): every position t >= 1 of every user's sequence is an
example (at most ``max_examples``, seeded sample): the prefix (last ``history_length``
items) gives u, the item at t is the positive, ``negatives`` items drawn uniformly from
the catalog are the negatives; loss = sampled softmax cross-entropy. Torch, CPU, seeded
by ``seed`` + ``TrainingData.seed`` (the engine's global seed).
The learned weights are kept as numpy arrays, so scoring needs no torch and costs one
(m x D) @ (D x projection) product: a few ms for thousands of candidates.

Explanation (gradient-free attribution): the MLP itself is not decomposable per history
item, so ``weights`` are target-attention weights (softmax over the history of the
similarity to the candidate, ``temperature``, with the recency prior) - which history
items the candidate is most like. Empty history: zero scores (see :mod:`.base`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from pydantic import Field

from polyrec.contracts import (
    ComponentConfig,
    History,
    NotFittedError,
    Scored,
    Scorer,
    TrainingData,
    hookimpl,
    recency_weights,
)
from polyrec.plugins.scorers.base import (
    attention_weights,
    check_inputs,
    empty_scored,
    recency_query_vector,
    weighted_mean_vector,
)
from polyrec.plugins.support.torch_training import (
    gelu_tanh,
    import_torch,
    seeded,
    train_minibatches,
)
from polyrec.plugins.support.trained_state import TrainedWeights

__all__ = ["MlpScorer", "MlpConfig", "TrainingExamples", "training_examples", "register_scorers"]


class MlpConfig(ComponentConfig):
    projection: int = Field(default=64, gt=0, description="size of the learned projection of u and c")
    hidden: int = Field(default=64, gt=0, description="hidden units of the MLP")
    negatives: int = Field(default=16, gt=0, description="sampled negatives per positive")
    epochs: int = Field(default=10, gt=0)
    batch_size: int = Field(default=256, gt=0)
    lr: float = Field(default=3e-3, gt=0)
    weight_decay: float = Field(default=1e-5, ge=0)
    history_length: int = Field(default=50, gt=0, description="prefix items that make the user vector")
    max_examples: int = Field(default=20_000, gt=0, description="training examples sampled from the log")
    half_life: float | None = Field(default=None, gt=0, description="recency half-life in seconds; default by position")
    temperature: float = Field(default=0.1, gt=0, description="of the attention weights used as explanation")
    seed: int = Field(default=0, description="added to the engine's seed (TrainingData.seed)")


class TrainingExamples:
    """User vectors of sampled prefixes and the item that followed each."""

    def __init__(self, users: np.ndarray, positives: np.ndarray) -> None:
        self.users = users
        self.positives = positives

    def __len__(self) -> int:
        return len(self.positives)


def training_examples(data: TrainingData, config: MlpConfig) -> TrainingExamples:
    """Sample (user, position) pairs and build each prefix's recency-weighted mean vector."""
    positions = [(u, t) for u, sequence in enumerate(data.sequences) for t in range(1, len(sequence))]
    rng = np.random.default_rng(config.seed + data.seed)
    if len(positions) > config.max_examples:
        positions = [positions[i] for i in np.sort(rng.choice(len(positions), config.max_examples, replace=False))]
    vectors = np.asarray(data.item_vectors, dtype=np.float32)
    users = np.zeros((len(positions), vectors.shape[1]), dtype=np.float32)
    positives = np.zeros(len(positions), dtype=np.int64)
    for row, (u, t) in enumerate(positions):
        sequence, stamps = np.asarray(data.sequences[u]), np.asarray(data.timestamps[u])
        start = max(0, t - config.history_length)
        users[row] = recency_weights(stamps[start:t], config.half_life) @ vectors[sequence[start:t]]
        positives[row] = sequence[t]
    return TrainingExamples(users, positives)


class MlpScorer(TrainedWeights, Scorer):
    """MLP over [user, candidate, user * candidate] with a dot-product skip; trained, seeded."""

    name = "mlp"
    Config = MlpConfig
    config: MlpConfig
    trainable = True
    state_file = "mlp_scorer.npz"

    def _weights(self, dim: int) -> dict[str, np.ndarray]:
        if self.weights is None:
            raise NotFittedError(
                f"scorer {self.name!r} is not fitted: run fit on the event log first "
                "(engine.fit(), or scorer.fit(TrainingData)), or load saved state"
            )
        if self.weights["projection"].shape[1] != dim:
            raise ValueError(
                f"scorer {self.name!r} was trained on {self.weights['projection'].shape[1]}-d item vectors "
                f"but got {dim}-d ones; fit again"
            )
        return self.weights

    def score(self, history: History, candidate_ids: Sequence[str], candidates: np.ndarray) -> Scored:
        candidates = check_inputs(self.name, history, candidate_ids, candidates)
        w = self._weights(candidates.shape[1])
        if len(history) == 0:
            return empty_scored(len(candidates))
        recency, user = weighted_mean_vector(history, self.config.half_life)
        user_p = w["projection"] @ user
        p, h = len(user_p), len(history)
        # one pass over the candidates: projection, history similarities and u . c together
        stacked = np.concatenate([w["projection"], np.asarray(history.vectors, dtype=np.float32), user[None, :]])
        product = candidates @ stacked.T
        candidates_p, similarities, dot = product[:, :p], product[:, p : p + h], product[:, p + h]
        w_user, w_cand, w_prod = w["w1"][:, :p], w["w1"][:, p : 2 * p], w["w1"][:, 2 * p :]
        # W1 [u', c', u'*c'] = c' (W_c + W_x diag(u'))^T + (W_u u' + b1): one (m x p) product
        hidden = candidates_p @ (w_cand + w_prod * user_p[None, :]).T + (w_user @ user_p + w["b1"])
        scores = gelu_tanh(hidden) @ w["w2"] + w["b2"] + w["alpha"] * dot
        weights = attention_weights(similarities, recency, self.config.temperature)
        return Scored(scores=scores.astype(np.float32), weights=weights)

    def query_vector(self, history: History) -> np.ndarray:
        return recency_query_vector(history, self.config.half_life)

    def fit(self, data: TrainingData) -> None:
        """Train on the log's next-item examples (needs a user with at least two events)."""
        examples = training_examples(data, self.config)
        if len(examples) == 0:
            raise ValueError(f"scorer {self.name!r}: no user has two or more events; nothing to learn from")
        items = np.asarray(data.item_vectors, dtype=np.float32)
        self.weights, self.loss_history = self._train(items, examples, self.config.seed + data.seed)

    def _train(
        self, items: np.ndarray, examples: TrainingExamples, seed: int
    ) -> tuple[dict[str, np.ndarray], list[float]]:
        torch = import_torch(self.name)
        config = self.config
        with seeded(seed):
            projection = torch.nn.Linear(items.shape[1], config.projection, bias=False)
            layer_1 = torch.nn.Linear(3 * config.projection, config.hidden)
            layer_2 = torch.nn.Linear(config.hidden, 1)
            # start as the dot scorer at softmax temperature 0.1: the MLP's output layer is
            # zero, so it only adds what the log teaches it (robust on small logs)
            torch.nn.init.zeros_(layer_2.weight)
            alpha = torch.nn.Parameter(torch.tensor(10.0))
            activation = torch.nn.GELU(approximate="tanh")
            item_tensor, users = torch.from_numpy(items), torch.from_numpy(examples.users)
            positives = torch.from_numpy(examples.positives)

            def batch_loss(batch: object) -> object:
                negatives = torch.randint(len(item_tensor), (len(batch), config.negatives))
                candidates = item_tensor[torch.cat([positives[batch, None], negatives], dim=1)]  # (B, 1+K, D)
                user = users[batch]
                user_p = projection(user)[:, None, :].expand(-1, candidates.shape[1], -1)
                candidates_p = projection(candidates)
                features = torch.cat([user_p, candidates_p, user_p * candidates_p], dim=-1)
                skip = alpha * (candidates @ user[:, :, None]).squeeze(-1)
                logits = layer_2(activation(layer_1(features))).squeeze(-1) + skip
                return torch.nn.functional.cross_entropy(logits, torch.zeros(len(batch), dtype=torch.long))

            parameters = [*projection.parameters(), *layer_1.parameters(), *layer_2.parameters(), alpha]
            history = train_minibatches(
                parameters,
                batch_loss,
                len(examples),
                epochs=config.epochs,
                batch_size=config.batch_size,
                lr=config.lr,
                weight_decay=config.weight_decay,
            )
        weights = {
            "projection": projection.weight.detach().numpy().copy(),
            "w1": layer_1.weight.detach().numpy().copy(),
            "b1": layer_1.bias.detach().numpy().copy(),
            "w2": layer_2.weight.detach().numpy()[0].copy(),
            "b2": layer_2.bias.detach().numpy()[0].copy(),
            "alpha": alpha.detach().numpy().copy(),
        }
        return weights, history


@hookimpl
def register_scorers(register) -> None:  # type: ignore[no-untyped-def]
    register(MlpScorer)
