"""Image encoder ``open-clip``: CLIP image embeddings, searchable with text queries.

Config (``[encoders.<slot>]`` with ``plugin = "open-clip"``):

``model`` (str, default ``"ViT-B-32"``)
    An open_clip architecture name (see ``open_clip.list_models()``), or
    ``hf-hub:org/repo`` / ``local-dir:/path`` (config and weights from there; then
    ``pretrained`` is ignored).
``pretrained`` (str or None, default ``"laion2b_s34b_b79k"``)
    An open_clip pretrained tag for ``model`` (downloaded from the hub on first use;
    ``HF_HUB_OFFLINE=1`` restricts it to the local cache).
``checkpoint`` (path or None, default None)
    A local weights file (``torch.save(model.state_dict())`` or safetensors) for
    ``model``; takes precedence over ``pretrained``. Relative paths are resolved against
    the working directory.
``batch_size`` (int, default 32)
    Images per forward pass.
``device`` (str, default ``"auto"``)
    ``"auto"`` picks ``cuda``, then ``mps``, then ``cpu``; or any torch device string.
``normalize`` (bool, default True)
    L2-normalise image and query vectors (inner product = cosine similarity).

Accepted values: what :func:`polyrec.contracts.media.load_image` accepts: a path to an image
file, encoded image bytes, a PIL image, or a numpy array (HxW, HxWx3, HxWx4; uint8, bool or
float in [0, 1]). ``prepare`` decodes, applies
the EXIF orientation and converts to RGB, so a missing or corrupt file fails only its
item ("file not found: ...", "cannot decode image: ..."). ``encode_query`` takes text
and returns a vector in the image space (zero-shot text-to-image search).

Fingerprint: model, pretrained tag or the SHA-256 of the checkpoint file, ``normalize``
and the open_clip major version.
"""

from __future__ import annotations

import hashlib
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from pydantic import Field

from polyrec.contracts import ComponentConfig, ConfigError, Encoder, MissingDependencyError, hookimpl
from polyrec.contracts.media import file_content_bytes, file_sha256, load_image
from polyrec.plugins.support.torch_env import hub_offline_requested, hub_offline_while, resolve_device

__all__ = ["OpenClipConfig", "OpenClipEncoder", "file_sha256", "register_encoders"]

PLUGIN_NAME = "open-clip"
_SCHEMAS = ("hf-hub:", "local-dir:")


class OpenClipConfig(ComponentConfig):
    model: str = "ViT-B-32"
    pretrained: str | None = "laion2b_s34b_b79k"
    checkpoint: Path | None = None
    batch_size: int = Field(default=32, gt=0)
    device: str = "auto"
    normalize: bool = True


# ---- weights identity -------------------------------------------------------------------------


def _local_dir_identity(directory: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in directory.iterdir() if p.is_file() and not p.name.startswith(".")):
        digest.update(f"{path.name}\0{file_sha256(path)}\0".encode())
    return digest.hexdigest()


# ---- model loading (once per process and settings) -------------------------------------------


class _LoadedClip:
    """A model in eval mode with its inference transform and tokenizer."""

    def __init__(self, model: Any, preprocess: Any, tokenizer: Any, device: str) -> None:
        self.model, self.preprocess, self.tokenizer, self.device = model, preprocess, tokenizer, device


_models: dict[tuple[str, str | None, tuple[int, int] | None, str], _LoadedClip] = {}
_models_lock = threading.Lock()


def _import_open_clip() -> Any:
    try:
        import open_clip
    except ImportError as exc:
        raise MissingDependencyError(PLUGIN_NAME, "open-clip-torch", "image") from exc
    return open_clip


def _weights_source(config: OpenClipConfig) -> str | None:
    """What to pass as open_clip's ``pretrained``: the checkpoint file, the tag, or None."""
    if config.checkpoint is not None:
        path = config.checkpoint.expanduser()
        if not path.is_file():
            raise ConfigError([("checkpoint", f"checkpoint file not found: {path}")])
        return str(path.resolve())
    if config.model.startswith(_SCHEMAS):
        return None  # the schema location holds the weights
    if not config.pretrained:
        raise ConfigError(
            [("pretrained", f"model {config.model!r} has no weights: set 'pretrained' (a tag) or 'checkpoint'")]
        )
    return config.pretrained


def _file_stamp(path: Path) -> tuple[int, int]:
    stat = path.stat()
    return stat.st_mtime_ns, stat.st_size


#: seconds to wait for the model hub before saying it cannot be reached
HUB_PROBE_SECONDS = 3.0


def _hub_reachable() -> bool:
    import socket
    from urllib.parse import urlparse

    from huggingface_hub import constants

    url = urlparse(constants.ENDPOINT)
    try:
        with socket.create_connection((url.hostname or "", url.port or 443), timeout=HUB_PROBE_SECONDS):
            return True
    except OSError:
        return False


def _weights_cached(model_name: str, tag: str) -> bool:
    """Whether the hub cache holds the weights of ``tag`` (open_clip's own file names)."""
    import os

    from huggingface_hub import try_to_load_from_cache

    open_clip = _import_open_clip()
    hub = (open_clip.pretrained.get_pretrained_cfg(model_name, tag) or {}).get("hf_hub", "")
    if not hub:
        return False
    repo, filename = os.path.split(hub)
    names = [filename] if filename else ["open_clip_model.safetensors", "open_clip_pytorch_model.bin"]
    return any(isinstance(try_to_load_from_cache(repo, name), str) for name in names)


def _check_weights_reachable(config: OpenClipConfig, tag: str) -> None:
    """Fail in seconds, saying what to do, when a tag's weights are neither cached nor downloadable
    (the hub client would otherwise retry for about a minute before failing)."""
    offline = hub_offline_requested()
    if not offline and _hub_reachable():
        return
    if _weights_cached(config.model, tag):
        return
    why = "HF_HUB_OFFLINE is set" if offline else "the model hub cannot be reached"
    raise ConfigError(
        [
            (
                "pretrained",
                f"open_clip weights {tag!r} of model {config.model!r} are not in the local cache and {why}. "
                "Set 'checkpoint' to a local weights file (e.g. open_clip_model.safetensors), or download them "
                "once where the hub is reachable (then HF_HUB_OFFLINE=1 uses the cache), or use the offline "
                'image encoder: plugin = "timm" (its weights install with polyrec[image])',
            )
        ]
    )


def _load(config: OpenClipConfig) -> _LoadedClip:
    weights = _weights_source(config)
    device = resolve_device(config.device)
    # a rewritten checkpoint file must not be served from the cache
    stamp = _file_stamp(Path(weights)) if config.checkpoint is not None and weights else None
    key = (config.model, weights, stamp, device)
    with _models_lock:
        if key not in _models:
            if config.checkpoint is None and weights is not None and not config.model.startswith(_SCHEMAS):
                _check_weights_reachable(config, weights)
            _models[key] = _load_uncached(config.model, weights, device)
        return _models[key]


def _load_uncached(model_name: str, weights: str | None, device: str) -> _LoadedClip:
    open_clip = _import_open_clip()
    try:
        with hub_offline_while(hub_offline_requested()):
            model, _, preprocess = open_clip.create_model_and_transforms(model_name, pretrained=weights, device=device)
            tokenizer = open_clip.get_tokenizer(model_name)
    except Exception as exc:
        what = f"weights {weights!r}" if weights else "its weights"
        raise ConfigError([("model", f"cannot load open_clip model {model_name!r} with {what}: {exc}")]) from exc
    model.eval()
    return _LoadedClip(model, preprocess, tokenizer, device)


# ---- the encoder --------------------------------------------------------------------------------


class OpenClipEncoder(Encoder):
    """CLIP image embeddings with open_clip; text queries land in the same space."""

    name: ClassVar[str] = PLUGIN_NAME
    modality: ClassVar[str] = "image"
    query_modalities: ClassVar[tuple[str, ...]] = ("text", "image")
    Config = OpenClipConfig
    config: OpenClipConfig

    def __init__(self, config: ComponentConfig | None = None, **params: Any) -> None:
        super().__init__(config, **params)
        self._fingerprint: str | None = None
        self._dim: int | None = None

    @property
    def dim(self) -> int:
        if self._dim is None:
            loaded = _load(self.config)
            output_dim = getattr(loaded.model.visual, "output_dim", None)
            # towers that do not declare it (timm, custom): measure once
            self._dim = int(output_dim) if output_dim else int(self._forward_images(loaded, [self._probe()]).shape[1])
        return self._dim

    @property
    def fingerprint(self) -> str:
        if self._fingerprint is None:
            config = self.config
            if config.checkpoint is not None:
                weights = "checkpoint-sha256=" + file_sha256(Path(_weights_source(config) or ""))
            elif config.model.startswith("local-dir:"):
                weights = "local-dir-sha256=" + _local_dir_identity(Path(config.model.removeprefix("local-dir:")))
            elif config.model.startswith("hf-hub:"):
                weights = "hub"
            else:
                weights = f"pretrained={config.pretrained}"
            self._fingerprint = (
                f"{self.name}:model={config.model}:{weights}:normalize={config.normalize}"
                f":open_clip={_import_open_clip().__version__.split('.')[0]}"
            )
        return self._fingerprint

    def prepare(self, value: Any) -> Any:
        return load_image(value)

    def content_bytes(self, value: Any) -> bytes:
        file_bytes = file_content_bytes(value)
        return file_bytes if file_bytes is not None else super().content_bytes(value)

    def encode(self, batch: Sequence[Any]) -> np.ndarray:
        loaded = _load(self.config)
        if not batch:
            return np.zeros((0, self.dim), dtype=np.float32)
        size = self.config.batch_size
        starts = range(0, len(batch), size)
        chunks = [self._forward_images(loaded, list(batch[start : start + size])) for start in self._progress(starts)]
        return np.ascontiguousarray(np.concatenate(chunks, axis=0), dtype=np.float32)

    def encode_query(self, query: Any) -> np.ndarray:
        """A ``str`` is a text query; anything else (Path, bytes, PIL image, array) is an image."""
        if not isinstance(query, str):
            return self.encode([self.prepare(query)])[0]
        if not query.strip():
            raise ValueError(f"{self.name} text queries must not be empty")
        import torch

        loaded = _load(self.config)
        tokens = loaded.tokenizer([query.strip()]).to(loaded.device)
        with torch.inference_mode():
            vector = loaded.model.encode_text(tokens, normalize=self.config.normalize)
        return vector[0].float().cpu().numpy().astype(np.float32)

    def _forward_images(self, loaded: _LoadedClip, images: list[Any]) -> np.ndarray:
        import torch

        pixels = torch.stack([loaded.preprocess(image) for image in images]).to(loaded.device)
        with torch.inference_mode():
            features = loaded.model.encode_image(pixels, normalize=self.config.normalize)
        return features.float().cpu().numpy()

    def _progress(self, starts: range) -> Any:
        if len(starts) <= 4 or not sys.stderr.isatty():
            return starts
        from tqdm.auto import tqdm

        return tqdm(starts, desc=f"{self.name} batches", unit="batch")

    @staticmethod
    def _probe() -> Any:
        from PIL import Image

        return Image.new("RGB", (64, 64), (128, 128, 128))


@hookimpl
def register_encoders(register: Any) -> None:
    register(OpenClipEncoder)
