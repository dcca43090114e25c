"""Sounds for the quickstart catalog, synthesised with numpy: one recipe per category.

Every clip of a recipe differs (pitch, tempo, length of its parts), but the recipes differ
more from each other (drones, chirps, hiss, beeps, ticks, birdsong), as real categories do.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

__all__ = ["SAMPLE_RATE", "CLIP_SECONDS", "RECIPES", "synthesize"]

SAMPLE_RATE = 22050
CLIP_SECONDS = 1.5

Recipe = Callable[[np.random.Generator, np.ndarray], np.ndarray]


def _envelope(length: int, attack: float = 0.1, release: float = 0.3) -> np.ndarray:
    """Linear fade in and out over the given fractions of ``length``."""
    ramp_in = max(1, int(length * attack))
    ramp_out = max(1, int(length * release))
    envelope = np.ones(length)
    envelope[:ramp_in] = np.linspace(0.0, 1.0, ramp_in)
    envelope[-ramp_out:] = np.minimum(envelope[-ramp_out:], np.linspace(1.0, 0.0, ramp_out))
    return envelope


def _tone(frequency: np.ndarray | float, t: np.ndarray, harmonics: int = 1) -> np.ndarray:
    """A (possibly gliding) tone; ``frequency`` may vary per sample."""
    phase = 2 * np.pi * np.cumsum(np.broadcast_to(frequency, t.shape)) / SAMPLE_RATE
    return sum(np.sin(k * phase) / k for k in range(1, harmonics + 1))


def _place(signal: np.ndarray, part: np.ndarray, start: int) -> None:
    end = min(len(signal), start + len(part))
    if start < end:
        signal[start:end] += part[: end - start]


def _drone(rng: np.random.Generator, t: np.ndarray) -> np.ndarray:
    base = rng.uniform(55, 110)
    vibrato = 1 + 0.02 * np.sin(2 * np.pi * rng.uniform(0.2, 0.6) * t)
    rumble = np.convolve(rng.normal(size=len(t)), np.ones(64) / 64, mode="same")
    return _tone(base * vibrato, t, harmonics=4) + 2.0 * rumble


def _meow(rng: np.random.Generator, t: np.ndarray) -> np.ndarray:
    signal = np.zeros_like(t)
    start = 0
    for _ in range(int(rng.integers(2, 4))):
        length = int(SAMPLE_RATE * rng.uniform(0.3, 0.5))
        shape = np.sin(np.linspace(0, np.pi, length))  # up, then down
        low, high = rng.uniform(350, 500), rng.uniform(750, 1000)
        part = _tone(low + (high - low) * shape, t[:length], harmonics=3) * _envelope(length)
        _place(signal, part, start)
        start += length + int(SAMPLE_RATE * rng.uniform(0.05, 0.15))
    return signal


def _hiss(rng: np.random.Generator, t: np.ndarray) -> np.ndarray:
    noise = np.diff(rng.normal(size=len(t) + 1))  # differencing tilts white noise towards the highs
    swell = 0.6 + 0.4 * np.sin(2 * np.pi * rng.uniform(0.5, 2.0) * t + rng.uniform(0, np.pi))
    gurgle = 0.3 * _tone(rng.uniform(150, 250) * (1 + 0.3 * np.sin(2 * np.pi * 6 * t)), t)
    return noise * swell + gurgle


def _beeps(rng: np.random.Generator, t: np.ndarray) -> np.ndarray:
    signal = np.zeros_like(t)
    pitch = rng.uniform(1000, 2500)
    length = int(SAMPLE_RATE * rng.uniform(0.08, 0.15))
    period = int(SAMPLE_RATE * rng.uniform(0.2, 0.35))
    for start in range(int(rng.integers(0, period)), len(t), period):
        step = pitch * rng.choice([1.0, 1.25, 1.5])
        _place(signal, _tone(step, t[:length]) * _envelope(length, 0.05, 0.2), start)
    return signal


def _ticks(rng: np.random.Generator, t: np.ndarray) -> np.ndarray:
    signal = np.zeros_like(t)
    period = int(SAMPLE_RATE * rng.uniform(0.25, 0.5))
    length = int(SAMPLE_RATE * 0.02)
    decay = np.exp(-np.linspace(0, 8, length))
    for number, start in enumerate(range(int(rng.integers(0, period)), len(t), period)):
        pitch = 3000 if number % 2 == 0 else 2200  # tick, tock
        click = (rng.normal(size=length) * 0.5 + _tone(pitch, t[:length])) * decay
        _place(signal, click, start)
    return signal


def _birdsong(rng: np.random.Generator, t: np.ndarray) -> np.ndarray:
    signal = np.zeros_like(t)
    start = int(SAMPLE_RATE * rng.uniform(0, 0.2))
    while start < len(t):
        for _ in range(int(rng.integers(3, 7))):  # a trill of quick downward chirps
            length = int(SAMPLE_RATE * rng.uniform(0.04, 0.08))
            high, low = rng.uniform(4500, 6000), rng.uniform(2500, 3500)
            _place(signal, _tone(np.linspace(high, low, length), t[:length]) * _envelope(length, 0.2, 0.4), start)
            start += length + int(SAMPLE_RATE * 0.02)
        start += int(SAMPLE_RATE * rng.uniform(0.15, 0.35))
    return signal


RECIPES: dict[str, Recipe] = {
    "drone": _drone,
    "meow": _meow,
    "hiss": _hiss,
    "beeps": _beeps,
    "ticks": _ticks,
    "birdsong": _birdsong,
}


def synthesize(recipe: str, rng: np.random.Generator, seconds: float = CLIP_SECONDS) -> np.ndarray:
    """A mono float32 clip at :data:`SAMPLE_RATE`, peak 0.8, with a little background noise."""
    t = np.arange(int(SAMPLE_RATE * seconds)) / SAMPLE_RATE
    signal = RECIPES[recipe](rng, t) + 0.01 * rng.normal(size=len(t))
    peak = float(np.max(np.abs(signal))) or 1.0
    return (0.8 * signal / peak).astype(np.float32)
