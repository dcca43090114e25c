"""Fixed-length audio features: spectral statistics of the whole clip and of its course in time.

:func:`audio_features` maps a mono waveform (at :attr:`FeatureSettings.sample_rate`) to
one vector in two halves of equal weight:

* *global* statistics (what the clip sounds like on the whole: band levels, timbre,
  brightness, dynamics), and
* *temporal* ones: the clip, with its leading and trailing silence trimmed, is cut into
  ``segments`` equal parts, and the mean MFCC and MFCC delta of each part are kept,
  relative to the clip's own mean MFCC (cepstral mean normalisation, so a voice's or a
  microphone's constant colouring cancels). Mean and std over the whole clip cannot tell
  "garden" from "danger"; the order of the parts can.

Every feature is first put on a common, *fixed* scale (affine maps derived from the units
of the feature, written next to each one; nothing is fitted on data), so that a unit step
means roughly the same in every dimension:

========================  =====================================================  ==============================
group                      what                                                   scale (value -> unit)
========================  =====================================================  ==============================
``logmel_mean``            mean over time of each log-mel band (dB re. clip max)  ``(dB + 40) / 20``
``logmel_std``             std over time of each log-mel band                     ``(dB - 10) / 10``
``mfcc_mean``              mean of MFCC 1..n_mfcc (c0 dropped: it is the level)   ``c / sqrt(n_mels / 2) / 10``
``mfcc_std``               std of MFCC 1..n_mfcc                                  ``c / sqrt(n_mels / 2) / 5``
``delta_std``              std of the MFCC deltas (how fast the timbre moves)     ``d / sqrt(n_mels / 2) / 1``
``spectral_shape``         centroid, bandwidth, rolloff (mean, std)               ``log2(Hz / 1000) / 2`` (octaves)
                           flatness (mean, std)                                   ``(log10(f) + 3) / 1.5``
``dynamics``               zero-crossing rate (mean, std),                        ``log2(zcr / 0.1) / 2``
                           frame RMS in dB re. clip peak (mean, std)              ``(dB + 20) / 10``, ``dB / 10``
``segment_mfcc``           per segment: mean MFCC minus the clip's mean MFCC      ``c / sqrt(n_mels / 2) / 5``
``segment_delta``          per segment: mean MFCC delta                           ``d / sqrt(n_mels / 2) / 1``
========================  =====================================================  ==============================

MFCC coefficients are divided by ``sqrt(n_mels / 2)`` because, with the orthonormal DCT,
a cosine of amplitude ``A`` dB across the mel bands gives ``A * sqrt(n_mels / 2)``;
the result is in dB of spectral-envelope ripple.

Then each group is divided by the square root of its size, so every group weighs about
the same whatever ``n_mels``/``n_mfcc``/``segments`` are (otherwise 2 x n_mels band
statistics would drown the eight spectral-shape numbers); the two temporal groups are
multiplied by ``sqrt(7 / 2)`` so that they weigh as much as the seven global ones together,
and the vector is L2-normalised.

The waveform is peak-normalised first, so features do not depend on the recording gain,
and frames more than :data:`TRIM_DB` (40 dB) below the loudest are trimmed from both ends
(silence around a sound is not part of it, and its length varies between recordings);
a clip whose peak is below :data:`SILENCE_PEAK` (-90 dBFS) is digital silence and gets
the floor values (every band at -80 dB).

Measured (``bench/bench_audio_features.py``): cross-voice precision@5 of the same spoken
word (espeak-ng, 10 words x 8 voices; neighbours of other voices only; chance 0.11) is
0.74 on the development words and 0.73 on held-out words and voices, against 0.43 / 0.32
for the version-1 features (global statistics only, no trimming) and 0.42 / 0.38 for raw
MFCC mean+std; the synthetic sound kinds of tests/test_encoder_audio.py keep precision@5
0.97 (0.985 before). Per-segment means beat per-segment means and stds normalised to unit
variance (0.59 / 0.68: dividing by the clip's std flattens the very contrasts between
segments that tell words apart). ``segments=0`` and ``trim_db=None`` give the version-1
vector exactly.

Left out after checking nearest-neighbour quality on synthetic clips (tests/test_encoder_audio.py
kinds, other seeds): spectral contrast (octave bands above a low-rate source's Nyquist hold
only resampling noise, so contrast varied more within a kind than between kinds: precision@5
rose from ~0.9 to ~0.98 without it) and chroma (no gain; it separates clips by key rather
than by kind of sound).

librosa is imported inside the functions that need it.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise

import numpy as np

__all__ = [
    "FeatureSettings",
    "SILENCE_PEAK",
    "TOP_DB",
    "TRIM_DB",
    "audio_features",
    "feature_dim",
    "feature_groups",
]

#: peak amplitude below which a clip counts as digital silence (-90 dBFS)
SILENCE_PEAK = 10 ** (-90 / 20)
#: dynamic range kept below the loudest mel bin / frame
TOP_DB = 80.0
#: frames this far below the loudest are trimmed from both ends of a clip
TRIM_DB = 40.0
#: how many of the groups describe the whole clip (the rest describe its segments)
_GLOBAL_GROUPS = 7
_AMIN = 1e-10
_SHAPE_STATS = 8
_DYNAMICS_STATS = 4


@dataclass(frozen=True)
class FeatureSettings:
    """Analysis parameters; ``n_fft``/``hop_length`` are in samples at ``sample_rate``.

    ``segments``: equal time parts of the temporal groups (0: none, the version-1 vector);
    ``trim_db``: trim frames this far below the loudest from both ends (None: keep all).
    """

    sample_rate: int = 22050
    n_mels: int = 64
    n_mfcc: int = 20
    n_fft: int = 2048
    hop_length: int = 512
    segments: int = 4
    trim_db: float | None = TRIM_DB


def feature_groups(settings: FeatureSettings) -> dict[str, int]:
    """Size of every feature group, in output order."""
    return {
        "logmel_mean": settings.n_mels,
        "logmel_std": settings.n_mels,
        "mfcc_mean": settings.n_mfcc,
        "mfcc_std": settings.n_mfcc,
        "delta_std": settings.n_mfcc,
        "spectral_shape": _SHAPE_STATS,
        "dynamics": _DYNAMICS_STATS,
        **(
            {"segment_mfcc": settings.segments * settings.n_mfcc, "segment_delta": settings.segments * settings.n_mfcc}
            if settings.segments
            else {}
        ),
    }


def feature_dim(settings: FeatureSettings) -> int:
    """Length of the vectors :func:`audio_features` returns."""
    return sum(feature_groups(settings).values())


def audio_features(samples: np.ndarray, settings: FeatureSettings) -> np.ndarray:
    """Return the unit-length float32 feature vector of a mono waveform.

    ``samples`` must be 1-D, finite and non-empty, at ``settings.sample_rate``. Clips
    shorter than one analysis window are zero-padded to ``n_fft`` samples.
    """
    if samples.ndim != 1 or samples.size == 0:
        raise ValueError(f"expected a non-empty mono waveform, got shape {samples.shape}")
    peak = float(np.max(np.abs(samples)))
    silent = peak < SILENCE_PEAK
    y = np.zeros(samples.shape, np.float32) if silent else (samples / peak).astype(np.float32)
    if settings.trim_db is not None and not silent:
        y = _trim(y, settings)
    if y.size < settings.n_fft:
        y = np.pad(y, (0, settings.n_fft - y.size))
    groups = _compute_groups(y, settings, silent)
    temporal_weight = np.sqrt(_GLOBAL_GROUPS / 2)  # the two temporal groups weigh as much as the seven global ones
    parts = [
        groups[name] / np.sqrt(size) * (temporal_weight if name.startswith("segment_") else 1.0)
        for name, size in feature_groups(settings).items()
    ]
    vector = np.concatenate(parts).astype(np.float64)
    return (vector / np.linalg.norm(vector)).astype(np.float32)


def _compute_groups(y: np.ndarray, settings: FeatureSettings, silent: bool) -> dict[str, np.ndarray]:
    import librosa

    sr = settings.sample_rate
    magnitude = np.abs(librosa.stft(y, n_fft=settings.n_fft, hop_length=settings.hop_length))
    power = magnitude**2
    mel = librosa.feature.melspectrogram(S=power, sr=sr, n_mels=settings.n_mels)
    logmel = _db(mel, silent)
    # orthonormal DCT of the dB log-mel; c0 (overall level) is dropped
    mfcc = librosa.feature.mfcc(S=logmel, n_mfcc=settings.n_mfcc + 1, norm="ortho")[1:]
    ripple = np.sqrt(settings.n_mels / 2)
    delta = librosa.feature.delta(mfcc, mode="nearest") if mfcc.shape[1] > 1 else np.zeros_like(mfcc)
    groups = {
        "logmel_mean": (logmel.mean(axis=1) + 40.0) / 20.0,
        "logmel_std": (logmel.std(axis=1) - 10.0) / 10.0,
        "mfcc_mean": mfcc.mean(axis=1) / ripple / 10.0,
        "mfcc_std": mfcc.std(axis=1) / ripple / 5.0,
        "delta_std": delta.std(axis=1) / ripple,
        "spectral_shape": _spectral_shape(magnitude, sr),
        "dynamics": _dynamics(y, magnitude, settings),
    }
    if settings.segments:
        centred = mfcc - mfcc.mean(axis=1, keepdims=True)  # cepstral mean normalisation
        groups["segment_mfcc"] = _segment_means(centred, settings.segments) / ripple / 5.0
        groups["segment_delta"] = _segment_means(delta, settings.segments) / ripple
    return groups


def _trim(y: np.ndarray, settings: FeatureSettings) -> np.ndarray:
    """``y`` without its quiet ends, unless less than one analysis window would remain."""
    import librosa

    _, (start, stop) = librosa.effects.trim(
        y, top_db=settings.trim_db, frame_length=settings.n_fft, hop_length=settings.hop_length
    )
    return y[start:stop] if stop - start >= settings.n_fft else y


def _segment_means(frames: np.ndarray, segments: int) -> np.ndarray:
    """Means of ``segments`` equal, contiguous time parts of ``(coefficients, frames)``, concatenated.

    A clip with fewer frames than segments repeats frames, so every part has at least one.
    """
    n = frames.shape[1]
    edges = np.linspace(0.0, n, segments + 1)
    parts = []
    for low, high in pairwise(edges):
        start = min(int(np.floor(low)), n - 1)
        parts.append(frames[:, start : max(int(np.ceil(high)), start + 1)].mean(axis=1))
    return np.concatenate(parts)


def _db(power: np.ndarray, silent: bool) -> np.ndarray:
    """dB re. the loudest bin, floored at -TOP_DB; silence sits on the floor."""
    ref = 1.0 if silent else max(float(power.max()), _AMIN)
    db = 10.0 * np.log10(np.maximum(power, _AMIN) / ref)
    return np.maximum(db, -TOP_DB)


def _octaves(hz: np.ndarray) -> np.ndarray:
    # 20 Hz floor: silent frames report 0 Hz
    return np.log2(np.maximum(hz, 20.0) / 1000.0) / 2.0


def _spectral_shape(magnitude: np.ndarray, sr: int) -> np.ndarray:
    import librosa

    centroid = _octaves(librosa.feature.spectral_centroid(S=magnitude, sr=sr)[0])
    bandwidth = _octaves(librosa.feature.spectral_bandwidth(S=magnitude, sr=sr)[0])
    rolloff = _octaves(librosa.feature.spectral_rolloff(S=magnitude, sr=sr)[0])
    flatness = np.log10(np.maximum(librosa.feature.spectral_flatness(S=magnitude, amin=_AMIN)[0], 1e-6))
    flatness = (flatness + 3.0) / 1.5
    stats = [(series.mean(), series.std()) for series in (centroid, bandwidth, rolloff, flatness)]
    return np.asarray(stats, dtype=np.float64).ravel()


def _dynamics(y: np.ndarray, magnitude: np.ndarray, settings: FeatureSettings) -> np.ndarray:
    import librosa

    zcr = librosa.feature.zero_crossing_rate(y, frame_length=settings.n_fft, hop_length=settings.hop_length)[0]
    zcr = np.log2(np.maximum(zcr, 1e-3) / 0.1) / 2.0
    rms = librosa.feature.rms(S=magnitude, frame_length=settings.n_fft)[0]
    rms_db = _db(rms**2, silent=not np.any(rms > 0))
    return np.array([zcr.mean(), zcr.std(), (rms_db.mean() + 20.0) / 10.0, rms_db.std() / 10.0])
