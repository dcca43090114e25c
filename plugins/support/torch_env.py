"""Runtime choices shared by the built-in torch encoders: device and hub offline mode.

Nothing heavy is imported at module import time.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["hub_offline_requested", "hub_offline_while", "resolve_device"]

_TRUE = {"1", "true", "yes", "on"}


def resolve_device(device: str) -> str:
    """``"auto"`` -> ``cuda``, then ``mps``, then ``cpu``; any other value is kept."""
    if device != "auto":
        return device
    import torch

    if torch.cuda.is_available():
        return "cuda"
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return "mps"
    return "cpu"


def hub_offline_requested() -> bool:
    """``HF_HUB_OFFLINE`` (or ``TRANSFORMERS_OFFLINE``) as set *now* in the environment."""
    flags = (os.environ.get("HF_HUB_OFFLINE", ""), os.environ.get("TRANSFORMERS_OFFLINE", ""))
    return any(flag.strip().lower() in _TRUE for flag in flags)


@contextmanager
def hub_offline_while(offline: bool) -> Iterator[None]:
    """Hold huggingface_hub in offline mode for the duration of a load.

    ``local_files_only`` alone is not enough: the hub client still makes side requests
    (e.g. for its user-agent), and it reads ``HF_HUB_OFFLINE`` only once, when imported,
    which may be before the user set it.
    """
    if not offline:
        yield
        return
    from huggingface_hub import constants

    before = constants.HF_HUB_OFFLINE
    constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        constants.HF_HUB_OFFLINE = before
