"""``weighted-mean`` fusion: project every field to one common dimension, average, normalise.

Projection: each field gets a fixed random matrix with orthonormal rows or columns
(QR of a Gaussian matrix), seeded by ``seed`` and the field's name, so adding a field
never changes another field's projection and the same config always gives the same
vectors. A field no wider than ``dim`` is embedded isometrically (cosines within the
field are kept exactly); a wider one is projected onto a random ``dim``-subspace, which
keeps cosines approximately (Johnson-Lindenstrauss). Different fields land in nearly
orthogonal random subspaces, so they interfere little when averaged.

The fused vector is the weighted mean of the projected fields an item has (each
renormalised to unit length after projection), renormalised; a missing field neither counts nor dilutes the others.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from pydantic import Field

from polyrec.contracts import Fusion, hookimpl
from polyrec.plugins.fusions.fields import FieldWeightsConfig, check_field_weights, normalized_fields, random_projection
from polyrec.plugins.support.vectors import l2_normalize_rows

__all__ = ["WeightedMeanFusion", "WeightedMeanConfig", "register_fusions"]


class WeightedMeanConfig(FieldWeightsConfig):
    dim: int = Field(default=256, gt=0, description="common dimension every field is projected to")
    seed: int = Field(default=0, description="seed of the fixed random projections")


class WeightedMeanFusion(Fusion):
    """Weighted mean of fields projected to ``dim`` by fixed seeded orthonormal projections."""

    name = "weighted-mean"
    Config = WeightedMeanConfig
    config: WeightedMeanConfig

    def bind(self, field_dims: Mapping[str, int]) -> None:
        check_field_weights(self.name, self.config.weights, field_dims)
        super().bind(field_dims)
        self.projections = {
            name: random_projection(dim, self.config.dim, self.config.seed, name) for name, dim in field_dims.items()
        }

    @property
    def dim(self) -> int:
        return self.config.dim

    def fuse(self, fields: Mapping[str, np.ndarray], present: Mapping[str, np.ndarray]) -> np.ndarray:
        if not hasattr(self, "field_dims"):
            raise RuntimeError(f"fusion {self.name!r} used before bind(field_dims)")
        n, blocks, _ = normalized_fields(self.name, self.field_dims, fields, present)
        total = np.zeros((n, self.config.dim), dtype=np.float32)
        for name, block in blocks.items():
            weight = float(self.config.weights.get(name, 1.0))
            if weight > 0:
                # renormalised so a wide field squeezed into ``dim`` counts as much as a
                # narrow one; absent rows are zero and add nothing, and the final
                # normalisation makes dividing by the present weights' sum unnecessary
                total += weight * l2_normalize_rows(block @ self.projections[name])
        return l2_normalize_rows(total).astype(np.float32)


@hookimpl
def register_fusions(register) -> None:  # type: ignore[no-untyped-def]
    register(WeightedMeanFusion)
