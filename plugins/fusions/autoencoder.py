"""``autoencoder`` fusion: a small MLP autoencoder compresses all fields into ``dim``.

Input: the concatenation of the unit-length fields (a missing field is a zero block).
Encoder and decoder are one hidden layer each (GELU); the loss is the reconstruction
error of the fields an item *has* (masked, so missing fields never count), averaged per
present field. Whole fields are dropped from the input at random while training
(``field_dropout``) and must still be reconstructed, so an item that lacks a modality is
embedded near where it would be with it. Training needs only the catalog (no events),
is seeded and runs on the CPU in seconds for a few thousand items. Output: the code,
L2-normalised.

Before :meth:`fit` the fusion is a fixed seeded orthonormal projection of the
concatenation to ``dim`` (a Johnson-Lindenstrauss sketch that keeps cosines roughly), so
items can be ingested first and the fusion fitted after. Learned weights are kept as
numpy arrays: fusing and loading need no torch.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from pydantic import Field

from polyrec.contracts import ComponentConfig, Fusion, TrainingData, hookimpl
from polyrec.plugins.fusions.fields import normalized_fields, random_projection
from polyrec.plugins.support.torch_training import (
    gelu_tanh,
    import_torch,
    seeded,
    train_minibatches,
)
from polyrec.plugins.support.trained_state import TrainedWeights
from polyrec.plugins.support.vectors import l2_normalize_rows

__all__ = ["AutoencoderFusion", "AutoencoderConfig", "register_fusions"]

LAYERS = ("encoder_1", "encoder_2", "decoder_1", "decoder_2")


class AutoencoderConfig(ComponentConfig):
    dim: int = Field(default=64, gt=0, description="size of the fused vector (the code)")
    hidden: int = Field(default=256, gt=0, description="width of the encoder's and decoder's hidden layer")
    epochs: int = Field(default=60, gt=0)
    batch_size: int = Field(default=256, gt=0)
    lr: float = Field(default=2e-3, gt=0)
    field_dropout: float = Field(default=0.25, ge=0, lt=1, description="chance to hide a present field in training")
    seed: int = 0


class AutoencoderFusion(TrainedWeights, Fusion):
    """Masked MLP autoencoder over the concatenated fields; the code is the fused vector."""

    name = "autoencoder"
    Config = AutoencoderConfig
    config: AutoencoderConfig
    trainable = True
    state_file = "autoencoder_fusion.npz"

    def bind(self, field_dims: Mapping[str, int]) -> None:
        super().bind(field_dims)
        self.sketch = random_projection(sum(field_dims.values()), self.config.dim, self.config.seed, "autoencoder")

    @property
    def dim(self) -> int:
        return self.config.dim

    def _concatenated(
        self, fields: Mapping[str, np.ndarray], present: Mapping[str, np.ndarray]
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(x (n, in_dim), masks (n, fields))`` with missing fields zero."""
        if not hasattr(self, "field_dims"):
            raise RuntimeError(f"fusion {self.name!r} used before bind(field_dims)")
        n, blocks, masks = normalized_fields(self.name, self.field_dims, fields, present)
        if not blocks:
            return np.zeros((n, 0), np.float32), np.zeros((n, 0), bool)
        return np.concatenate(list(blocks.values()), axis=1), np.stack(list(masks.values()), axis=1)

    def _check_state(self) -> dict[str, np.ndarray]:
        assert self.weights is not None
        expected = np.array(list(self.field_dims.items()), dtype=str)
        if not np.array_equal(self.weights["fields"], expected):
            raise ValueError(
                f"fusion {self.name!r}: weights were learned for fields {self.weights['fields'].tolist()} "
                f"but the fusion is bound to {list(self.field_dims.items())}; fit again"
            )
        return self.weights

    def encode(self, x: np.ndarray) -> np.ndarray:
        """The (unnormalised) code of concatenated inputs."""
        if self.weights is None:
            return x @ self.sketch
        w = self._check_state()
        return gelu_tanh(x @ w["encoder_1_w"] + w["encoder_1_b"]) @ w["encoder_2_w"] + w["encoder_2_b"]

    def fuse(self, fields: Mapping[str, np.ndarray], present: Mapping[str, np.ndarray]) -> np.ndarray:
        x, masks = self._concatenated(fields, present)
        if x.shape[1] == 0:
            return np.zeros((len(x), self.dim), dtype=np.float32)
        # the network's biases would give an item with no field at all a vector: keep it zero
        code = np.where(masks.any(axis=1)[:, None], self.encode(x), 0.0)
        return l2_normalize_rows(code.astype(np.float32))

    def reconstruction_error(self, fields: Mapping[str, np.ndarray], present: Mapping[str, np.ndarray]) -> float:
        """Mean squared error per present field (the training loss without dropout)."""
        if self.weights is None:
            raise ValueError(f"fusion {self.name!r} has no decoder before fit")
        x, masks = self._concatenated(fields, present)
        w = self._check_state()
        code = self.encode(x)
        decoded = gelu_tanh(code @ w["decoder_1_w"] + w["decoder_1_b"]) @ w["decoder_2_w"] + w["decoder_2_b"]
        return float(self._masked_error(decoded - x, masks).mean())

    def _masked_error(self, difference: np.ndarray, masks: np.ndarray) -> np.ndarray:
        """Per item: squared error summed within each present field, averaged over present fields."""
        per_field = np.stack([(block**2).sum(axis=1) for block in np.split(difference, self._splits(), axis=1)], axis=1)
        return (per_field * masks).sum(axis=1) / np.maximum(masks.sum(axis=1), 1)

    def _splits(self) -> list[int]:
        return list(np.cumsum(list(self.field_dims.values()))[:-1])

    def fit(
        self,
        fields: Mapping[str, np.ndarray],
        present: Mapping[str, np.ndarray],
        data: TrainingData | None = None,
    ) -> None:
        """Train on the catalog's fields (``data`` is not needed and is ignored)."""
        x, masks = self._concatenated(fields, present)
        keep = masks.any(axis=1)
        if x.shape[1] == 0 or keep.sum() < 2:
            raise ValueError(f"fusion {self.name!r}: fit needs at least 2 items with a field; got {int(keep.sum())}")
        weights, self.loss_history = self._train(x[keep], masks[keep])
        names = np.array(list(self.field_dims.items()), dtype=str)
        self.weights = {**weights, "fields": names}

    def _train(self, x: np.ndarray, masks: np.ndarray) -> tuple[dict[str, np.ndarray], list[float]]:
        torch = import_torch(self.name)
        config = self.config
        sizes = list(self.field_dims.values())
        with seeded(config.seed):
            network = torch.nn.ModuleDict(
                {
                    "encoder_1": torch.nn.Linear(x.shape[1], config.hidden),
                    "encoder_2": torch.nn.Linear(config.hidden, config.dim),
                    "decoder_1": torch.nn.Linear(config.dim, config.hidden),
                    "decoder_2": torch.nn.Linear(config.hidden, x.shape[1]),
                }
            )
            activation = torch.nn.GELU(approximate="tanh")
            inputs, present = torch.from_numpy(x), torch.from_numpy(masks)
            field_of_column = torch.repeat_interleave(torch.arange(len(sizes)), torch.tensor(sizes))

            def batch_loss(batch: object) -> object:
                target, mask = inputs[batch], present[batch]
                hidden_fields = (torch.rand(mask.shape) < config.field_dropout) & mask
                # never hide every field an item has: there would be nothing to encode
                hidden_fields &= ~(hidden_fields.sum(1, keepdim=True) == mask.sum(1, keepdim=True))
                corrupted = target * ~hidden_fields[:, field_of_column]
                code = network["encoder_2"](activation(network["encoder_1"](corrupted)))
                decoded = network["decoder_2"](activation(network["decoder_1"](code)))
                squared = ((decoded - target) ** 2).T
                per_field = torch.zeros(len(sizes), len(batch)).index_add_(0, field_of_column, squared).T
                return ((per_field * mask).sum(1) / mask.sum(1).clamp(min=1)).mean()

            history = train_minibatches(
                network.parameters(),
                batch_loss,
                len(x),
                epochs=config.epochs,
                batch_size=config.batch_size,
                lr=config.lr,
            )
        weights = {}
        for layer in LAYERS:
            weights[f"{layer}_w"] = network[layer].weight.detach().numpy().T.copy()
            weights[f"{layer}_b"] = network[layer].bias.detach().numpy().copy()
        return weights, history


@hookimpl
def register_fusions(register) -> None:  # type: ignore[no-untyped-def]
    register(AutoencoderFusion)
