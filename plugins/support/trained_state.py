"""Trained weights kept as named numpy arrays: fingerprint, save and load in one place.

A trainable component that stores what it learned as ``self.weights`` (a dict of arrays,
``None`` before fit) mixes in :class:`TrainedWeights` and names its ``state_file``. The
arrays go to one ``.npz`` file, so loading and scoring need no torch.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import numpy as np

from polyrec.plugins.support.torch_training import load_state, save_state, state_digest

__all__ = ["TrainedWeights"]


class TrainedWeights:
    """Mixin (before the component base class) for components whose trained state is ``self.weights``."""

    name: ClassVar[str]
    state_file: ClassVar[str]
    weights: dict[str, np.ndarray] | None

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[call-arg]
        self.weights = None
        self.loss_history: list[float] = []

    @property
    def fitted(self) -> bool:
        return self.weights is not None

    @property
    def fingerprint(self) -> str:
        base: str = super().fingerprint  # type: ignore[misc]
        return base if self.weights is None else f"{base}:weights={state_digest(self.weights)}"

    def save(self, directory: Path) -> None:
        """Write the learned weights (an empty file before fit)."""
        save_state(Path(directory) / self.state_file, self.weights or {})

    def load(self, directory: Path) -> None:
        self.weights = load_state(Path(directory) / self.state_file, self.name) or None
