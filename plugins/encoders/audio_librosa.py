"""The ``librosa`` audio encoder: log-mel/MFCC statistics as a fixed-length vector.

Accepted field values (``prepare`` turns each into a mono float32 waveform at
``sample_rate``):

* a path (``str`` or ``PathLike``) to a file soundfile can read (wav, flac, ogg, mp3 with
  libsndfile >= 1.1); other formats fall back to ``librosa.load`` (audioread/ffmpeg);
* ``bytes`` of such a file (decoded in memory; fallback through a temporary file);
* an :class:`~polyrec.contracts.AudioClip` (samples and their sample rate), or a mapping
  ``{"samples": ..., "sample_rate": ...}``;
* a bare numpy array (or list) of samples, assumed to be at the configured
  ``sample_rate`` because it carries none.

Multi-channel audio is averaged to mono. For a 2-D array the channel axis is the
shorter one (so ``(n, 2)`` and ``(2, n)`` both work); on a tie it is the first axis, as
in :class:`AudioClip`. A shorter axis longer than :data:`MAX_CHANNELS` is an error.
Integer PCM is scaled to [-1, 1]. Clips longer than ``max_duration`` seconds are cropped
to their central ``max_duration`` seconds (the middle of a track is more typical of it
than its intro); files are read only over that window when soundfile can seek.

Errors (each fails only its item): "file not found: ...", "cannot decode audio: ...",
"audio has no samples", "audio contains NaN or infinite samples".

The vector itself is described in :mod:`polyrec.plugins.encoders.audio_features`. librosa and
soundfile are imported lazily.
"""

from __future__ import annotations

import io
import os
import re
import tempfile
import warnings
from collections.abc import Mapping, Sequence
from functools import cached_property
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from pydantic import Field, model_validator

from polyrec.contracts import AudioClip, ComponentConfig, Encoder, MissingDependencyError, hookimpl
from polyrec.contracts.components import default_content_bytes
from polyrec.plugins.encoders.audio_features import FeatureSettings, audio_features, feature_dim

__all__ = ["LibrosaAudioEncoder", "LibrosaConfig", "MAX_CHANNELS", "register_encoders"]

#: most channels a 2-D sample array may have
MAX_CHANNELS = 16
#: bumped whenever the feature maths changes, so cached vectors are recomputed
FEATURE_VERSION = 1


class LibrosaConfig(ComponentConfig):
    sample_rate: int = Field(
        default=22050, ge=4000, le=192000, description="analysis rate (Hz); bare arrays are assumed at it"
    )
    n_mels: int = Field(default=64, ge=8, le=256, description="mel bands")
    n_mfcc: int = Field(default=20, ge=2, le=64, description="cepstral coefficients kept (c0 excluded)")
    max_duration: float | None = Field(
        default=30.0, gt=0, description="seconds kept from the middle of longer clips; None keeps everything"
    )
    batch_size: int = Field(default=16, gt=0, description="clips per encode call the engine should send")

    @model_validator(mode="after")
    def _mfcc_fit_in_mels(self) -> LibrosaConfig:
        # the DCT of n_mels bands has n_mels coefficients; c0 is dropped, so at most n_mels - 1 remain
        if self.n_mfcc >= self.n_mels:
            raise ValueError(f"n_mfcc ({self.n_mfcc}) must be smaller than n_mels ({self.n_mels})")
        return self


class LibrosaAudioEncoder(Encoder):
    """Audio clip -> unit-length vector of spectral statistics (see module docs)."""

    name: ClassVar[str] = "librosa"
    modality: ClassVar[str] = "audio"
    query_modalities: ClassVar[tuple[str, ...]] = ("audio",)
    Config: ClassVar[type[ComponentConfig]] = LibrosaConfig
    config: LibrosaConfig

    @cached_property
    def settings(self) -> FeatureSettings:
        config = self.config
        return FeatureSettings(sample_rate=config.sample_rate, n_mels=config.n_mels, n_mfcc=config.n_mfcc)

    @property
    def dim(self) -> int:
        return feature_dim(self.settings)

    @property
    def fingerprint(self) -> str:
        return f"{super().fingerprint}:features-v{FEATURE_VERSION}:librosa-{_librosa_version()}"

    def prepare(self, value: Any) -> np.ndarray:
        """Decode, downmix, crop and resample one value; raises ValueError for bad audio."""
        if value is None:
            raise ValueError("value is missing")
        samples, rate = _decode(value, self.config.sample_rate, self.config.max_duration)
        mono = _to_mono(samples)
        if not np.isfinite(mono).all():
            raise ValueError("audio contains NaN or infinite samples")
        mono = _crop_middle(mono, rate, self.config.max_duration)
        return _resample(mono, rate, self.config.sample_rate)

    def encode(self, batch: Sequence[Any]) -> np.ndarray:
        # prepare() is idempotent on its own output, so unprepared values are accepted too
        rows = [audio_features(self.prepare(value), self.settings) for value in batch]
        if not rows:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.stack(rows).astype(np.float32, copy=False)

    def encode_query(self, query: Any) -> np.ndarray:
        """An audio query (any value ``prepare`` accepts) -> ``(dim,)`` vector."""
        return self.encode([self.prepare(query)])[0]

    def content_bytes(self, value: Any) -> bytes:
        if isinstance(value, str | os.PathLike):
            path = Path(value)
            return path.read_bytes() if path.is_file() else str(path).encode()
        if isinstance(value, AudioClip):
            return f"{value.sample_rate}:".encode() + default_content_bytes(np.asarray(value.samples))
        return default_content_bytes(value)


def _librosa_version() -> str:
    try:
        return ".".join(version("librosa").split(".")[:2])
    except PackageNotFoundError:
        return "missing"


# ---- decoding ------------------------------------------------------------------------


def _decode(value: Any, default_rate: int, max_duration: float | None) -> tuple[np.ndarray, int]:
    """Samples (any layout) and their rate."""
    if isinstance(value, AudioClip):
        return np.asarray(value.samples), value.sample_rate
    if isinstance(value, Mapping):
        try:
            clip = AudioClip(samples=np.asarray(value["samples"]), sample_rate=value["sample_rate"])
        except (KeyError, ValueError) as exc:
            raise ValueError(f"an audio mapping needs 'samples' and a positive 'sample_rate': {exc}") from exc
        return np.asarray(clip.samples), clip.sample_rate
    if isinstance(value, str | os.PathLike):
        return _read_file(Path(value), max_duration)
    if isinstance(value, bytes | bytearray | memoryview):
        return _read_bytes(bytes(value))
    if isinstance(value, np.ndarray | list | tuple):
        return np.asarray(value), default_rate
    raise ValueError(f"unsupported audio value of type {type(value).__name__}; expected a path, bytes or AudioClip")


def _soundfile():
    try:
        import soundfile
    except ImportError as exc:
        raise MissingDependencyError("librosa", "soundfile", "audio") from exc
    return soundfile


def _read_file(path: Path, max_duration: float | None) -> tuple[np.ndarray, int]:
    if not path.exists():
        raise ValueError(f"file not found: {path}")
    if not path.is_file():
        raise ValueError(f"not a file: {path}")
    soundfile = _soundfile()
    try:
        info = soundfile.info(str(path))
        start, stop = _middle_window(info.frames, info.samplerate, max_duration)
        samples, rate = soundfile.read(str(path), start=start, stop=stop, dtype="float32", always_2d=True)
        return samples.T, int(rate)
    except Exception as first:
        return _librosa_load(path, first)


def _read_bytes(data: bytes) -> tuple[np.ndarray, int]:
    if not data:
        raise ValueError("cannot decode audio: empty bytes")
    soundfile = _soundfile()
    try:
        samples, rate = soundfile.read(io.BytesIO(data), dtype="float32", always_2d=True)
        return samples.T, int(rate)
    except Exception as first:
        # audioread (librosa's fallback) needs a real file
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "clip"
            path.write_bytes(data)
            return _librosa_load(path, first)


def _librosa_load(path: Path, first: BaseException) -> tuple[np.ndarray, int]:
    try:
        import librosa
    except ImportError as exc:
        raise MissingDependencyError("librosa", "librosa", "audio") from exc
    try:
        with warnings.catch_warnings():  # librosa warns that soundfile failed: we know, we tried it first
            warnings.simplefilter("ignore", UserWarning)
            warnings.simplefilter("ignore", FutureWarning)
            warnings.simplefilter("ignore", DeprecationWarning)  # audioread's stdlib imports
            samples, rate = librosa.load(str(path), sr=None, mono=False)
    except Exception as second:
        raise ValueError(
            f"cannot decode audio: {_short(first)} (soundfile); librosa/audioread fallback: {_short(second)}"
        ) from second
    return np.asarray(samples), int(rate)


def _short(exc: BaseException) -> str:
    """First line of an error, without soundfile's "Error opening <file object>: " prefix."""
    lines = str(exc).strip().splitlines()
    if not lines:
        return type(exc).__name__
    return re.sub(r"^Error opening .*?: ", "", lines[0])[:200]


def _middle_window(frames: int, rate: int, max_duration: float | None) -> tuple[int, int | None]:
    if max_duration is None or frames <= 0:
        return 0, None
    keep = round(max_duration * rate)
    if frames <= keep:
        return 0, None
    start = (frames - keep) // 2
    return start, start + keep


# ---- layout, cropping, resampling ---------------------------------------------------


def _to_mono(samples: np.ndarray) -> np.ndarray:
    """Average channels; the channel axis of a 2-D array is its shorter axis (first on a tie)."""
    array = np.asarray(samples)
    if array.dtype.kind not in "iuf":
        raise ValueError(f"audio samples must be numbers, got dtype {array.dtype}")
    if array.size == 0:
        raise ValueError("audio has no samples")
    array = _as_float(array)
    if array.ndim == 1:
        return array
    if array.ndim != 2:
        raise ValueError(f"audio samples must be 1-D or 2-D (channels x samples), got shape {array.shape}")
    channel_axis = 0 if array.shape[0] <= array.shape[1] else 1
    if array.shape[channel_axis] > MAX_CHANNELS:
        raise ValueError(f"cannot tell channels from samples in shape {array.shape} (more than {MAX_CHANNELS})")
    return array.mean(axis=channel_axis, dtype=np.float64).astype(np.float32)


def _as_float(array: np.ndarray) -> np.ndarray:
    if array.dtype.kind in "iu":
        info = np.iinfo(array.dtype)
        midpoint = (int(info.max) + int(info.min) + 1) / 2  # 128 for uint8 PCM, 0 for signed
        return ((array.astype(np.float64) - midpoint) / (info.max - midpoint)).astype(np.float32)
    return array.astype(np.float32, copy=False)


def _crop_middle(mono: np.ndarray, rate: int, max_duration: float | None) -> np.ndarray:
    start, stop = _middle_window(mono.size, rate, max_duration)
    return mono[start:stop]


def _resample(mono: np.ndarray, rate: int, target: int) -> np.ndarray:
    if rate == target:
        return np.ascontiguousarray(mono, dtype=np.float32)
    import librosa

    resampled = librosa.resample(mono, orig_sr=rate, target_sr=target, res_type="soxr_hq")
    if resampled.size == 0:  # a few samples at a high rate can round down to none
        resampled = mono[:1]
    return np.ascontiguousarray(resampled, dtype=np.float32)


@hookimpl
def register_encoders(register) -> None:
    register(LibrosaAudioEncoder)
