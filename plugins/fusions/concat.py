"""``weighted-concat`` fusion: normalise each field, weight it, concatenate, renormalise.

The inner product of two fused vectors is the weighted sum of their per-field cosine
similarities (weights squared, since each block is scaled by its weight), divided by the
norms, so a field's weight says how much that modality counts in every similarity.
A field an item lacks contributes a zero block; an item with no field at all gets a zero
vector (the engine reports such an item as failed upstream).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from polyrec.contracts import Fusion, hookimpl
from polyrec.plugins.fusions.fields import FieldWeightsConfig, check_field_weights, normalized_fields
from polyrec.plugins.support.vectors import l2_normalize_rows

__all__ = ["WeightedConcatConfig", "WeightedConcatFusion", "register_fusions"]


class WeightedConcatConfig(FieldWeightsConfig):
    """Settings of ``weighted-concat``: the per-field weights."""


class WeightedConcatFusion(Fusion):
    """Concatenation of L2-normalised, weighted field vectors, renormalised.

    ``dim`` is the sum of the field dimensions, in the order the fields were bound.
    """

    name = "weighted-concat"
    Config = WeightedConcatConfig
    config: WeightedConcatConfig

    def bind(self, field_dims: Mapping[str, int]) -> None:
        check_field_weights(self.name, self.config.weights, field_dims)
        super().bind(field_dims)

    @property
    def dim(self) -> int:
        return int(sum(self._bound().values()))

    def _bound(self) -> dict[str, int]:
        if not hasattr(self, "field_dims"):
            raise RuntimeError(f"fusion {self.name!r} used before bind(field_dims)")
        return self.field_dims

    def field_weight(self, name: str) -> float:
        return float(self.config.weights.get(name, 1.0))

    def fuse(self, fields: Mapping[str, np.ndarray], present: Mapping[str, np.ndarray]) -> np.ndarray:
        field_dims = self._bound()
        n, blocks, _ = normalized_fields(self.name, field_dims, fields, present)
        if not field_dims:
            return np.zeros((n, 0), dtype=np.float32)
        parts = [blocks[name] * self.field_weight(name) for name in field_dims]
        return l2_normalize_rows(np.concatenate(parts, axis=1)).astype(np.float32)


@hookimpl
def register_fusions(register) -> None:  # type: ignore[no-untyped-def]
    register(WeightedConcatFusion)
