"""Runtime choices shared by the built-in torch encoders: device and hub offline mode.

Nothing heavy is imported at module import time.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["hub_offline_requested", "hub_offline_while", "quiet_model_loading", "resolve_device"]

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


@contextmanager
def quiet_model_loading() -> Iterator[None]:
    """No progress bars of transformers and huggingface_hub while a model loads: their
    "Loading weights" bar would share the line of the command's own bar and leave garbage."""
    try:
        from huggingface_hub.utils import are_progress_bars_disabled, disable_progress_bars, enable_progress_bars
    except ImportError:
        yield
        return
    try:
        from transformers.utils import logging as transformers_logging
    except ImportError:
        transformers_logging = None
    hub_was_quiet = are_progress_bars_disabled()
    transformers_was_on = transformers_logging is not None and transformers_logging.is_progress_bar_enabled()
    disable_progress_bars()
    if transformers_logging is not None:
        transformers_logging.disable_progress_bar()
    try:
        yield
    finally:
        if transformers_was_on:
            transformers_logging.enable_progress_bar()  # type: ignore[union-attr]
        if not hub_was_quiet:
            enable_progress_bars()
