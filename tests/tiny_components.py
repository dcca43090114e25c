"""Minimal fusion and scorer classes shared by the registry and config tests."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import ClassVar

import numpy as np

from polyrec.contracts import Fusion, History, Scored, Scorer


class SumFusion(Fusion):
    name: ClassVar[str] = "sum"

    @property
    def dim(self) -> int:
        return max(self.field_dims.values())

    def fuse(self, fields: Mapping[str, np.ndarray], present: Mapping[str, np.ndarray]) -> np.ndarray:
        total = np.zeros((len(next(iter(fields.values()))), self.dim), dtype=np.float32)
        for name, vectors in fields.items():
            total[present[name], : vectors.shape[1]] += vectors[present[name]]
        return total


class LastItemScorer(Scorer):
    name: ClassVar[str] = "last-item"

    def score(self, history: History, candidate_ids: Sequence[str], candidates: np.ndarray) -> Scored:
        weights = np.zeros((len(candidate_ids), len(history)), dtype=np.float32)
        weights[:, -1] = 1.0
        return Scored(candidates @ history.vectors[-1], weights)
