"""Synthetic test clips of five kinds, with random (seeded) parameters.

Every generator takes a numpy ``Generator``, a sample rate and a duration in seconds and
returns float32 mono samples in [-1, 1]. The kinds are meant to be told apart by ear:

* ``tone``: a steady note (1-4 harmonics) with a soft attack and release;
* ``chirp``: a pure tone sweeping exponentially up or down over 2-6 octaves;
* ``white``: Gaussian white noise;
* ``pink``: 1/f noise (spectrum shaped in the frequency domain);
* ``speech``: a voiced harmonic stack with a drifting pitch, formant envelopes that
  change every syllable, and a syllable-rate amplitude envelope with pauses.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

__all__ = ["KINDS", "GENERATORS", "make_clip", "tone", "chirp", "white_noise", "pink_noise", "speech_like"]


def _time(rate: int, seconds: float) -> np.ndarray:
    return np.arange(max(1, round(rate * seconds))) / rate


def _fade(n: int, rate: int, seconds: float = 0.02) -> np.ndarray:
    ramp = min(n // 2, max(1, round(rate * seconds)))
    envelope = np.ones(n)
    envelope[:ramp] = np.linspace(0.0, 1.0, ramp)
    envelope[n - ramp :] = np.linspace(1.0, 0.0, ramp)
    return envelope


def _unit(samples: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    peak = np.max(np.abs(samples))
    gain = rng.uniform(0.2, 0.9)  # random recording level
    return (samples / peak * gain).astype(np.float32) if peak > 0 else samples.astype(np.float32)


def tone(rng: np.random.Generator, rate: int, seconds: float) -> np.ndarray:
    t = _time(rate, seconds)
    f0 = rng.uniform(110.0, min(1500.0, rate / 8))
    harmonics = rng.integers(1, 5)
    signal = sum(
        rng.uniform(0.3, 1.0) / k * np.sin(2 * np.pi * k * f0 * t + rng.uniform(0, 2 * np.pi))
        for k in range(1, harmonics + 1)
    )
    return _unit(signal * _fade(t.size, rate, 0.05), rng)


def chirp(rng: np.random.Generator, rate: int, seconds: float) -> np.ndarray:
    t = _time(rate, seconds)
    low = rng.uniform(100.0, 300.0)
    high = min(low * 2 ** rng.uniform(2, 6), rate * 0.45)
    start, end = (low, high) if rng.random() < 0.5 else (high, low)
    duration = max(t[-1], 1.0 / rate)
    # exponential sweep: instantaneous frequency start * (end/start) ** (t / duration)
    k = np.log(end / start) / duration
    phase = 2 * np.pi * start * (np.exp(k * t) - 1) / k
    return _unit(np.sin(phase) * _fade(t.size, rate), rng)


def white_noise(rng: np.random.Generator, rate: int, seconds: float) -> np.ndarray:
    return _unit(rng.standard_normal(_time(rate, seconds).size), rng)


def pink_noise(rng: np.random.Generator, rate: int, seconds: float) -> np.ndarray:
    n = _time(rate, seconds).size
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1.0 / rate)
    spectrum[1:] /= np.sqrt(freqs[1:])  # power ~ 1/f
    spectrum[0] = 0.0
    return _unit(np.fft.irfft(spectrum, n), rng)


def speech_like(rng: np.random.Generator, rate: int, seconds: float) -> np.ndarray:
    t = _time(rate, seconds)
    f0 = rng.uniform(90.0, 240.0) * (1 + 0.08 * np.sin(2 * np.pi * rng.uniform(0.3, 1.5) * t))
    phase = 2 * np.pi * np.cumsum(f0) / rate
    syllable_rate = rng.uniform(3.0, 6.0)
    syllable = np.floor(t * syllable_rate).astype(int)
    n_syllables = syllable.max() + 1
    formants = np.stack(
        [rng.uniform(300, 850, n_syllables), rng.uniform(900, 2300, n_syllables), rng.uniform(2400, 3200, n_syllables)],
        axis=1,
    )
    signal = np.zeros_like(t)
    nyquist = rate / 2
    top = min(nyquist * 0.9, 5000.0)  # formants end near 3.2 kHz: higher harmonics are ~silent
    for k in range(1, int(top / f0.min()) + 1):
        freq = k * f0
        # formant envelope at this harmonic: three resonances, the higher ones weaker
        gain = sum(
            w * np.exp(-0.5 * ((freq - formants[syllable, j]) / (80 + 40 * j)) ** 2)
            for j, w in enumerate((1.0, 0.6, 0.3))
        )
        signal += np.where(freq < nyquist * 0.95, gain / k**0.5, 0.0) * np.sin(k * phase)
    within = t * syllable_rate - syllable  # position inside the syllable, 0..1
    voiced = rng.random(n_syllables) > 0.2  # some syllables are pauses
    envelope = np.sin(np.pi * np.clip(within / 0.8, 0, 1)) ** 2 * voiced[syllable]
    return _unit(signal * envelope + 1e-3 * rng.standard_normal(t.size), rng)


GENERATORS: dict[str, Callable[[np.random.Generator, int, float], np.ndarray]] = {
    "tone": tone,
    "chirp": chirp,
    "white": white_noise,
    "pink": pink_noise,
    "speech": speech_like,
}
KINDS = tuple(GENERATORS)


def make_clip(kind: str, rng: np.random.Generator, rate: int, seconds: float) -> np.ndarray:
    """One clip of ``kind`` (see :data:`KINDS`)."""
    return GENERATORS[kind](rng, rate, seconds)
