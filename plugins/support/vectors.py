"""Vector helpers shared by plugins of several kinds (fusions and scorers)."""

from __future__ import annotations

import numpy as np

__all__ = ["l2_normalize_rows"]


def l2_normalize_rows(matrix: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length; all-zero rows stay zero."""
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return np.divide(matrix, norms, out=np.zeros_like(matrix), where=norms > 0)
