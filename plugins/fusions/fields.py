"""Field handling every built-in fusion shares.

Which rows count as present, per-field L2 normalisation, the errors for unknown or
misshapen fields, per-field weights, and the fixed random projections.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

import numpy as np
from pydantic import Field, field_validator

from polyrec.contracts import ComponentConfig, ConfigError
from polyrec.plugins.support.vectors import l2_normalize_rows

__all__ = ["FieldWeightsConfig", "check_field_weights", "normalized_fields", "random_projection"]


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


class FieldWeightsConfig(ComponentConfig):
    """Per-field weights, the setting every built-in fusion shares."""

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


def random_projection(in_dim: int, out_dim: int, seed: int, field: str) -> np.ndarray:
    """A fixed ``(in_dim, out_dim)`` matrix with orthonormal rows (in <= out) or columns."""
    digest = hashlib.sha256(f"polyrec-projection:{seed}:{field}".encode()).digest()
    rng = np.random.default_rng(int.from_bytes(digest[:8], "little"))
    gaussian = rng.standard_normal((max(in_dim, out_dim), min(in_dim, out_dim)))
    q, r = np.linalg.qr(gaussian)
    q = q * np.sign(np.diag(r))[None, :]  # make the factorisation unique
    return (q.T if in_dim <= out_dim else q).astype(np.float32)
