"""Whether the quickstart can encode its pictures: only with real CLIP weights.

Weights are available when the user passes a checkpoint file, when open_clip's pretrained
weights are already in the local Hugging Face cache, or when the hub can be reached (and
``HF_HUB_OFFLINE`` is not set). Otherwise the pictures are shown in the report but not
encoded: a randomly initialised image encoder would only add noise to the item vectors.
"""

from __future__ import annotations

import os
import socket
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from polyrec.contracts import ConfigError

__all__ = ["IMAGE_PLUGIN", "DEFAULT_IMAGE_MODEL", "DEFAULT_IMAGE_PRETRAINED", "ImageEncoderChoice", "choose"]

IMAGE_PLUGIN = "open-clip"
DEFAULT_IMAGE_MODEL = "ViT-B-32"
DEFAULT_IMAGE_PRETRAINED = "laion2b_s34b_b79k"
_HUB_TIMEOUT_S = 3.0
_WEIGHT_FILES = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")
_TRUE = {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class ImageEncoderChoice:
    """The ``open-clip`` encoder slot to configure (None: pictures are not encoded) and why, in one line."""

    slot: dict[str, Any] | None
    message: str


def _offline_requested() -> bool:
    flags = (os.environ.get("HF_HUB_OFFLINE", ""), os.environ.get("TRANSFORMERS_OFFLINE", ""))
    return any(flag.strip().lower() in _TRUE for flag in flags)


def _cache_may_hold_clip() -> bool:
    """Whether any repo in the hub cache looks like CLIP weights: a cheap test that spares
    importing open_clip (and torch: many seconds) when the cache has none."""
    try:
        from huggingface_hub import constants
    except ImportError:
        return False
    cache = Path(constants.HF_HUB_CACHE)
    return cache.is_dir() and any("clip" in entry.name.lower() for entry in cache.iterdir())


def _cached_weights(model: str, pretrained: str) -> Path | None:
    """The local file of open_clip's ``pretrained`` weights for ``model``, if the hub cache has it."""
    if not _cache_may_hold_clip():
        return None
    try:
        from huggingface_hub import try_to_load_from_cache
        from open_clip.pretrained import get_pretrained_cfg
    except ImportError:
        return None
    hub_name = get_pretrained_cfg(model, pretrained).get("hf_hub", "")
    if not hub_name:
        return None
    repo, filename = os.path.split(hub_name)
    for candidate in (filename,) if filename else _WEIGHT_FILES:
        found = try_to_load_from_cache(repo_id=repo, filename=candidate)
        if isinstance(found, str) and Path(found).is_file():
            return Path(found)
    return None


def _hub_reachable() -> bool:
    """A TCP connection to the hub within a few seconds (DNS included, hence the thread)."""
    try:
        from huggingface_hub import constants

        host = urlparse(constants.ENDPOINT).hostname or "huggingface.co"
    except ImportError:
        return False
    result: list[bool] = []

    def connect() -> None:
        try:
            socket.create_connection((host, 443), timeout=_HUB_TIMEOUT_S).close()
            result.append(True)
        except OSError:
            result.append(False)

    thread = threading.Thread(target=connect, daemon=True)
    thread.start()
    thread.join(_HUB_TIMEOUT_S)
    return bool(result and result[0])


def choose(
    checkpoint: Path | None = None,
    model: str = DEFAULT_IMAGE_MODEL,
    pretrained: str = DEFAULT_IMAGE_PRETRAINED,
    *,
    allow_download: bool = True,
) -> ImageEncoderChoice:
    """Pick how (and whether) pictures are encoded; a missing checkpoint file is a ConfigError."""
    slot: dict[str, Any] = {"plugin": IMAGE_PLUGIN, "field": "image", "model": model}
    if checkpoint is not None:
        path = checkpoint.expanduser().resolve()
        if not path.is_file():
            raise ConfigError([("--image-checkpoint", f"checkpoint file not found: {path}")])
        return ImageEncoderChoice(
            {**slot, "checkpoint": str(path)}, f"images: encoded with {IMAGE_PLUGIN} {model} from {path}"
        )
    if _cached_weights(model, pretrained) is not None:
        message = f"images: encoded with {IMAGE_PLUGIN} {model}/{pretrained} (weights from the local hub cache)"
        return ImageEncoderChoice({**slot, "pretrained": pretrained}, message)
    if allow_download and not _offline_requested() and _hub_reachable():
        message = f"images: encoded with {IMAGE_PLUGIN} {model}/{pretrained} (weights download from the hub first)"
        return ImageEncoderChoice({**slot, "pretrained": pretrained}, message)
    return ImageEncoderChoice(
        None,
        "images: shown in the report but not encoded - no CLIP weights offline "
        "(pass --image-checkpoint FILE to encode them)",
    )
