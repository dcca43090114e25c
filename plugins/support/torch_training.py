"""Small, seeded torch training loop shared by the trainable fusions and scorers.

Torch is imported only inside these functions. Trained state is kept as numpy arrays
(:func:`save_state` / :func:`load_state`, an ``.npz`` file), so loading a model and
scoring with it needs no torch, and :func:`state_digest` fingerprints it.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from polyrec.contracts import MissingDependencyError

__all__ = [
    "import_torch",
    "seeded",
    "train_minibatches",
    "save_state",
    "load_state",
    "state_digest",
    "gelu_tanh",
]


def import_torch(plugin: str) -> Any:
    """The torch module, or a clear error naming the plugin and the extra to install."""
    try:
        import torch
    except ImportError as exc:
        raise MissingDependencyError(plugin, "torch", "train") from exc
    return torch


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Seed torch for the block (parameter init, shuffling) without disturbing the caller's RNG."""
    torch = import_torch("polyrec")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def train_minibatches(
    parameters: Any,
    batch_loss: Callable[[Any], Any],
    n_examples: int,
    *,
    epochs: int,
    batch_size: int,
    lr: float,
    weight_decay: float = 0.0,
) -> list[float]:
    """Adam over shuffled minibatches of example indices; returns the mean loss per epoch.

    ``batch_loss(indices)`` gets a LongTensor of example indices and returns a scalar loss.
    Call inside :func:`seeded` for reproducible shuffling.
    """
    torch = import_torch("polyrec")
    optimizer = torch.optim.Adam(list(parameters), lr=lr, weight_decay=weight_decay)
    history: list[float] = []
    with single_thread(torch):
        for _ in range(epochs):
            order = torch.randperm(n_examples)
            total, batches = 0.0, 0
            for start in range(0, n_examples, batch_size):
                loss = batch_loss(order[start : start + batch_size])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                total += float(loss.detach())
                batches += 1
            history.append(total / max(batches, 1))
    return history


@contextlib.contextmanager
def single_thread(torch: Any) -> Iterator[None]:
    """Run torch on one thread for the block, then restore the caller's setting.

    These models are tiny: thread hand-offs cost more than they save, and on a busy
    machine intra-op threads spinning against each other made training ~10x slower.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def save_state(path: Path, arrays: Mapping[str, np.ndarray]) -> None:
    """Write named arrays to ``path`` (an ``.npz`` file), creating its folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as handle:
        np.savez(handle, **{name: np.asarray(value) for name, value in arrays.items()})


def load_state(path: Path, plugin: str) -> dict[str, np.ndarray]:
    """Read what :func:`save_state` wrote; a clear error if it is not there."""
    if not path.is_file():
        raise FileNotFoundError(f"plugin {plugin!r}: no saved state at {path}; fit and save first")
    with np.load(path, allow_pickle=False) as data:
        return {name: data[name] for name in data.files}


def state_digest(arrays: Mapping[str, np.ndarray]) -> str:
    """Short content hash of named arrays, for fingerprints of trained components."""
    digest = hashlib.sha256()
    for name in sorted(arrays):
        value = np.ascontiguousarray(arrays[name])
        digest.update(f"{name}:{value.dtype}:{value.shape}".encode())
        digest.update(value.tobytes())
    return digest.hexdigest()[:16]


def gelu_tanh(x: np.ndarray) -> np.ndarray:
    """numpy twin of ``torch.nn.GELU(approximate="tanh")``, for torch-free inference."""
    return 0.5 * x * (1.0 + np.tanh(float(np.sqrt(2.0 / np.pi)) * (x + 0.044715 * x * x * x)))
