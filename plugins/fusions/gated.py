"""``gated`` fusion: per-field gate weights learned from users' sequences.

The fused vector is the concatenation of the unit-length fields, field f scaled by
sqrt(w_f), renormalised; so the inner product of two items is the w-weighted mean of
their per-field cosine similarities. The gates w (``min_gate`` each, plus a softmax over
one logit per field sharing the rest, summing to 1) are learned with a contrastive
next-item objective: for consecutive items (a, b) in a user's sequence, fused(a) must be
closer to fused(b) than to the other batch items' successors (in-batch negatives,
symmetric InfoNCE, seeded, ``epochs`` but at least ``min_steps`` updates). A modality
that predicts what users go on to consume gets a large gate; one that does not is
turned down. :meth:`GatedFusion.field_weights` shows the result.

The ``min_gate`` floor keeps every modality in play: behavior vectors learnt from the same
log the gates are fitted on would otherwise win outright and leave items that only have
content (cold items) nearly orthogonal to everything else.

Before :meth:`fit` (or when the log has no consecutive pairs) all gates are equal, which
gives exactly ``weighted-concat`` with equal weights. Gates are per field, not per item:
they stay explainable and cannot overfit a small log.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field

from polyrec.contracts import ComponentConfig, ConfigError, Fusion, TrainingData, hookimpl
from polyrec.plugins.fusions.fields import normalized_fields
from polyrec.plugins.support.torch_training import (
    import_torch,
    load_state,
    save_state,
    seeded,
    state_digest,
    train_minibatches,
)
from polyrec.plugins.support.vectors import l2_normalize_rows

__all__ = ["GatedFusion", "GatedConfig", "consecutive_pairs", "register_fusions"]

log = logging.getLogger(__name__)

STATE_FILE = "gated_fusion.npz"


def consecutive_pairs(data: TrainingData, usable: np.ndarray, max_pairs: int, seed: int) -> np.ndarray:
    """``(p, 2)`` index pairs of consecutive, different, usable items, at most ``max_pairs`` (seeded sample)."""
    chunks = []
    for sequence in data.sequences:
        sequence = np.asarray(sequence, dtype=np.int64)
        if len(sequence) < 2:
            continue
        pairs = np.stack([sequence[:-1], sequence[1:]], axis=1)
        keep = (pairs[:, 0] != pairs[:, 1]) & usable[pairs[:, 0]] & usable[pairs[:, 1]]
        chunks.append(pairs[keep])
    pairs = np.concatenate(chunks) if chunks else np.zeros((0, 2), dtype=np.int64)
    if len(pairs) > max_pairs:
        pairs = pairs[np.sort(np.random.default_rng(seed).choice(len(pairs), max_pairs, replace=False))]
    return pairs


class GatedConfig(ComponentConfig):
    epochs: int = Field(default=5, gt=0)
    min_steps: int = Field(default=200, ge=0, description="at least this many updates (more epochs on a small log)")
    batch_size: int = Field(default=512, ge=2, description="pairs per batch; the other pairs are the negatives")
    lr: float = Field(default=0.05, gt=0)
    min_gate: float = Field(default=0.05, ge=0, lt=1, description="smallest gate a field can get")
    temperature: float = Field(default=0.1, gt=0, description="temperature of the contrastive loss")
    max_pairs: int = Field(default=200_000, gt=0, description="consecutive pairs sampled from the log")
    seed: int = Field(default=0, description="added to the engine's seed (TrainingData.seed)")


class GatedFusion(Fusion):
    """Concatenation of unit-length fields scaled by learned per-field gates."""

    name = "gated"
    Config = GatedConfig
    config: GatedConfig
    trainable = True

    def __init__(self, config: GatedConfig | None = None, **params: object) -> None:
        super().__init__(config, **params)
        self._learned: dict[str, float] | None = None
        self.loss_history: list[float] = []

    def bind(self, field_dims: Mapping[str, int]) -> None:
        if len(field_dims) * self.config.min_gate >= 1:
            raise ConfigError(
                [("fusion.min_gate", f"plugin {self.name!r}: {len(field_dims)} fields x min_gate must stay below 1")]
            )
        super().bind(field_dims)

    @property
    def dim(self) -> int:
        return int(sum(self._bound().values()))

    @property
    def fitted(self) -> bool:
        return self._learned is not None

    def _bound(self) -> dict[str, int]:
        if not hasattr(self, "field_dims"):
            raise RuntimeError(f"fusion {self.name!r} used before bind(field_dims)")
        return self.field_dims

    def field_weights(self) -> dict[str, float]:
        """The gate of every bound field (summing to 1; equal before fit)."""
        fields = list(self._bound())
        if self._learned is None:
            return {name: 1.0 / len(fields) for name in fields} if fields else {}
        if set(self._learned) != set(fields):
            raise ValueError(
                f"fusion {self.name!r}: gates were learned for fields {sorted(self._learned)} "
                f"but the fusion is bound to {sorted(fields)}; fit again"
            )
        return {name: self._learned[name] for name in fields}

    def fuse(self, fields: Mapping[str, np.ndarray], present: Mapping[str, np.ndarray]) -> np.ndarray:
        n, blocks, _ = normalized_fields(self.name, self._bound(), fields, present)
        if not blocks:
            return np.zeros((n, 0), dtype=np.float32)
        gates = self.field_weights()
        parts = [blocks[name] * np.sqrt(gates[name]) for name in blocks]
        return l2_normalize_rows(np.concatenate(parts, axis=1)).astype(np.float32)

    def fit(
        self, fields: Mapping[str, np.ndarray], present: Mapping[str, np.ndarray], data: TrainingData | None
    ) -> None:
        """Learn the gates; rows of ``fields`` must be the items of ``data.item_ids``, in order."""
        n, blocks, masks = normalized_fields(self.name, self._bound(), fields, present)
        if data is None or not blocks:
            log.info("fusion %r: no event log to learn from; gates stay equal", self.name)
            return
        if len(data.item_ids) != n:
            raise ValueError(
                f"fusion {self.name!r}: {n} field rows but {len(data.item_ids)} items in the training data; "
                "rows must be the training data's items, in order"
            )
        usable = np.any(np.stack(list(masks.values()), axis=1), axis=1)
        seed = self.config.seed + data.seed  # the engine's global seed counts too
        pairs = consecutive_pairs(data, usable, self.config.max_pairs, seed)
        if len(pairs) < 2:
            log.info("fusion %r: fewer than 2 consecutive item pairs in the log; gates stay equal", self.name)
            return
        logits, self.loss_history = self._train(blocks, pairs, seed)
        shares = np.exp(logits - logits.max())
        gates = self._floored(shares / shares.sum())
        self._learned = {name: float(g) for name, g in zip(blocks, gates)}

    def _train(self, blocks: dict[str, np.ndarray], pairs: np.ndarray, seed: int) -> tuple[np.ndarray, list[float]]:
        torch = import_torch(self.name)
        config = self.config
        with seeded(seed):
            tensors = [torch.from_numpy(block) for block in blocks.values()]
            pair_tensor = torch.from_numpy(pairs)
            logits = torch.zeros(len(tensors), requires_grad=True)

            def fused(indices: object) -> object:
                scales = self._floored(torch.softmax(logits, dim=0)).sqrt()
                parts = [block[indices] * scales[f] for f, block in enumerate(tensors)]
                return torch.nn.functional.normalize(torch.cat(parts, dim=1), dim=1)

            def batch_loss(batch: object) -> object:
                first, second = pair_tensor[batch, 0], pair_tensor[batch, 1]
                similarity = fused(first) @ fused(second).T / config.temperature
                # a batch may hold the same item twice: it is no negative of itself
                clash = (second[:, None] == second[None, :]) | (first[:, None] == first[None, :])
                clash.fill_diagonal_(False)
                similarity = similarity.masked_fill(clash, float("-inf"))
                targets = torch.arange(len(batch))
                cross_entropy = torch.nn.functional.cross_entropy
                return (cross_entropy(similarity, targets) + cross_entropy(similarity.T, targets)) / 2

            history = train_minibatches(
                [logits],
                batch_loss,
                len(pairs),
                epochs=self._epochs(len(pairs)),
                batch_size=config.batch_size,
                lr=config.lr,
            )
        return logits.detach().numpy().astype(np.float64), history

    def _floored(self, shares: Any) -> Any:
        """Gates from softmax shares: ``min_gate`` each, the rest split by the shares."""
        floor = self.config.min_gate
        return floor + (1.0 - floor * len(self._bound())) * shares

    def _epochs(self, n_pairs: int) -> int:
        # a handful of scalars is cheap to train, but a small log gives few batches per epoch
        batches = math.ceil(n_pairs / self.config.batch_size)
        return max(self.config.epochs, math.ceil(self.config.min_steps / batches))

    @property
    def fingerprint(self) -> str:
        base = super().fingerprint
        if self._learned is None:
            return base
        names = sorted(self._learned)
        return f"{base}:gates={state_digest({'g': np.array([self._learned[k] for k in names]), 'f': np.array(names)})}"

    def save(self, directory: Path) -> None:
        """Write the gates (no fields saved = never fitted: equal gates after load)."""
        learned = self._learned or {}
        names = list(learned)
        save_state(
            Path(directory) / STATE_FILE,
            {"fields": np.array(names, dtype=str), "gates": np.array([learned[k] for k in names], dtype=np.float64)},
        )

    def load(self, directory: Path) -> None:
        state = load_state(Path(directory) / STATE_FILE, self.name)
        learned = {str(name): float(g) for name, g in zip(state["fields"], state["gates"])}
        self._learned = learned or None


@hookimpl
def register_fusions(register) -> None:  # type: ignore[no-untyped-def]
    register(GatedFusion)
