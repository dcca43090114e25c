"""``weighted-concat`` fusion: normalise each field, weight it, concatenate, renormalise.

Also home of the field handling every built-in fusion shares (:func:`normalized_fields`,
:func:`check_field_weights`): which rows count as present, per-field L2 normalisation,
and the errors for unknown or misshapen fields.

The inner product of two fused vectors is the weighted sum of their per-field cosine
similarities (weights squared, since each block is scaled by its weight), divided by the
norms, so a field's weight says how much that modality counts in every similarity.
A field an item lacks contributes a zero block; an item with no field at all gets a zero
vector (the engine reports such an item as failed upstream).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from pydantic import Field, field_validator

from polyrec.contracts import ComponentConfig, ConfigError, Fusion, hookimpl

__all__ = [
    "WeightedConcatFusion",
    "WeightedConcatConfig",
    "normalized_fields",
    "check_field_weights",
    "l2_normalize_rows",
    "register_fusions",
]


def l2_normalize_rows(matrix: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length; all-zero rows stay zero."""
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return np.divide(matrix, norms, out=np.zeros_like(matrix), where=norms > 0)


def _row_count(fields: Mapping[str, np.ndarray], present: Mapping[str, np.ndarray]) -> int:
    for source in (fields, present):
        for value in source.values():
            return len(value)
    return 0


def normalized_fields(
    plugin: str,
    field_dims: Mapping[str, int],
    fields: Mapping[str, np.ndarray],
    present: Mapping[str, np.ndarray],
) -> tuple[int, dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Validate the fusion input and return ``(n, unit-norm fields, masks)``.

    Every bound field is in the result (one that ``fields`` lacks is all absent). A row is
    present when ``present`` says so (default: True) *and* it is finite and non-zero: an
    all-zero encoder row means "no signal", and a non-finite one is never mixed into a
    vector. Absent rows are zero in the returned arrays.
    """
    unknown = sorted(set(fields) - set(field_dims))
    if unknown:
        raise ValueError(f"fusion {plugin!r} got fields {unknown} it was not bound to; bound: {sorted(field_dims)}")
    n = _row_count(fields, present)
    blocks: dict[str, np.ndarray] = {}
    masks: dict[str, np.ndarray] = {}
    for name, dim in field_dims.items():
        if name not in fields:
            blocks[name] = np.zeros((n, dim), dtype=np.float32)
            masks[name] = np.zeros(n, dtype=bool)
            continue
        values = np.asarray(fields[name], dtype=np.float32)
        if values.shape != (n, dim):
            raise ValueError(f"fusion {plugin!r}, field {name!r}: expected shape ({n}, {dim}), got {values.shape}")
        mask = np.ones(n, dtype=bool) if name not in present else np.asarray(present[name], dtype=bool)
        if mask.shape != (n,):
            raise ValueError(f"fusion {plugin!r}, field {name!r}: present mask has shape {mask.shape}, expected ({n},)")
        finite = np.isfinite(values).all(axis=1)
        values = np.where(finite[:, None], values, 0.0).astype(np.float32)
        mask = mask & finite & (np.abs(values).sum(axis=1) > 0)
        blocks[name] = np.where(mask[:, None], l2_normalize_rows(values), 0.0).astype(np.float32)
        masks[name] = mask
    return n, blocks, masks


def check_field_weights(plugin: str, weights: Mapping[str, float], field_dims: Mapping[str, int]) -> None:
    """Weights may only name bound fields: a typo would otherwise silently weigh nothing."""
    unknown = sorted(set(weights) - set(field_dims))
    if unknown:
        known = ", ".join(sorted(field_dims)) or "(none)"
        message = "plugin {plugin!r}: unknown field {name!r}; known fields: {known}"
        raise ConfigError(
            [(f"fusion.weights.{name}", message.format(plugin=plugin, name=name, known=known)) for name in unknown]
        )


class WeightedConcatConfig(ComponentConfig):
    weights: dict[str, float] = Field(
        default_factory=dict, description="per-field weight (default 1.0); 0 drops the field"
    )

    @field_validator("weights")
    @classmethod
    def _non_negative(cls, weights: dict[str, float]) -> dict[str, float]:
        bad = {name: w for name, w in weights.items() if not (np.isfinite(w) and w >= 0)}
        if bad:
            raise ValueError(f"weights must be finite and >= 0; got {bad}")
        return weights


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
