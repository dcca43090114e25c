"""The ``librosa`` audio encoder: spectral statistics of a clip and of its course in time.

Accepted field values: what :func:`polyrec.contracts.media.load_audio` accepts (``prepare``
turns each into a mono float32 waveform at ``sample_rate``):

* a path (``str`` or ``PathLike``) to a file soundfile can read (wav, flac, ogg, mp3 with
  libsndfile >= 1.1); other formats fall back to ``librosa.load`` (audioread/ffmpeg);
* ``bytes`` of such a file (decoded in memory; fallback through a temporary file);
* an :class:`~polyrec.contracts.AudioClip` (samples and their sample rate), or a mapping
  ``{"samples": ..., "sample_rate": ...}``;
* a bare numpy array (or list) of samples, assumed to be at the configured
  ``sample_rate`` because it carries none.

Multi-channel audio is averaged to mono (the channel axis of a 2-D array is the shorter
one, the first on a tie, at most :data:`MAX_CHANNELS`). Integer PCM is scaled to [-1, 1].
Clips longer than ``max_duration`` seconds are cropped to their central ``max_duration``
seconds (the middle of a track is more typical of it than its intro); files are read only
over that window when soundfile can seek.

Errors (each fails only its item): "file not found: ...", "cannot decode audio: ...",
"audio has no samples", "audio contains NaN or infinite samples".

The vector itself is described in :mod:`polyrec.plugins.encoders.audio_features`
(version 2: whole-clip statistics plus ``segments`` per-segment MFCC means and deltas).
librosa and soundfile are imported lazily.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from functools import cached_property
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from pydantic import Field, model_validator

from polyrec.contracts import AudioClip, ComponentConfig, Encoder, hookimpl
from polyrec.contracts.components import default_content_bytes
from polyrec.contracts.media import MAX_CHANNELS, load_audio
from polyrec.plugins.encoders.audio_features import FeatureSettings, audio_features, feature_dim

__all__ = ["LibrosaAudioEncoder", "LibrosaConfig", "MAX_CHANNELS", "register_encoders"]

#: bumped whenever the feature maths changes, so cached vectors are recomputed
#: (2: leading/trailing silence trimmed, per-segment MFCC means and deltas added)
FEATURE_VERSION = 2


class LibrosaConfig(ComponentConfig):
    sample_rate: int = Field(
        default=22050, ge=4000, le=192000, description="analysis rate (Hz); bare arrays are assumed at it"
    )
    n_mels: int = Field(default=64, ge=8, le=256, description="mel bands")
    n_mfcc: int = Field(default=20, ge=2, le=64, description="cepstral coefficients kept (c0 excluded)")
    max_duration: float | None = Field(
        default=30.0, gt=0, description="seconds kept from the middle of longer clips; None keeps everything"
    )
    segments: int = Field(
        default=4, ge=0, le=32, description="equal time parts whose MFCC means and deltas are kept (0: none)"
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
        return FeatureSettings(
            sample_rate=config.sample_rate, n_mels=config.n_mels, n_mfcc=config.n_mfcc, segments=config.segments
        )

    @property
    def dim(self) -> int:
        return feature_dim(self.settings)

    @property
    def fingerprint(self) -> str:
        return f"{super().fingerprint}:features-v{FEATURE_VERSION}:librosa-{_librosa_version()}"

    def prepare(self, value: Any) -> np.ndarray:
        """Decode, downmix, crop and resample one value; raises ValueError for bad audio."""
        config = self.config
        return load_audio(value, config.sample_rate, max_duration=config.max_duration).samples

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


@hookimpl
def register_encoders(register) -> None:
    register(LibrosaAudioEncoder)
