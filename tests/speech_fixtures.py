"""Real speech made on the spot: Debian's ``espeak-ng`` says words in several voices.

Used by the audio tests and ``bench/bench_audio_features.py`` to measure *cross-voice*
retrieval: is a spoken word nearest to the same word said by other voices? A speaker is a
voice, a variant (``+f3``, ``+klatt2``, ...), a pitch and a speed. The development and the
held-out sets share no word and no speaker. ``make speech`` installs espeak-ng.
"""

from __future__ import annotations

import io
import shutil
import subprocess
from dataclasses import dataclass

import numpy as np

__all__ = [
    "DEV_SPEAKERS",
    "DEV_WORDS",
    "HELD_OUT_SPEAKERS",
    "HELD_OUT_WORDS",
    "Speaker",
    "SpokenWord",
    "cross_voice_precision",
    "espeak_available",
    "speak",
    "spoken_set",
]

DEV_WORDS = ("seven", "yellow", "garden", "morning", "table", "river", "pocket", "window", "silver", "butter")
HELD_OUT_WORDS = ("three", "orange", "kitchen", "evening", "basket", "mountain", "letter", "candle", "purple", "winter")


@dataclass(frozen=True)
class Speaker:
    voice: str
    variant: str
    pitch: int
    speed: int

    @property
    def name(self) -> str:
        return f"{self.voice}{self.variant}/p{self.pitch}/s{self.speed}"


DEV_SPEAKERS = (
    Speaker("en", "", 50, 175),
    Speaker("en-us", "+f3", 60, 160),
    Speaker("en-gb-scotland", "+m3", 40, 190),
    Speaker("en-029", "+klatt2", 55, 170),
    Speaker("en-us-nyc", "+f1", 70, 150),
    Speaker("en-gb-x-rp", "+m7", 35, 200),
    Speaker("en-us", "+croak", 45, 165),
    Speaker("en", "+f5", 80, 180),
)
HELD_OUT_SPEAKERS = (
    Speaker("en-gb-x-gbclan", "", 50, 170),
    Speaker("en-gb-x-gbcwmd", "+f2", 65, 155),
    Speaker("en-us", "+m1", 30, 185),
    Speaker("en", "+klatt3", 50, 160),
    Speaker("en-gb-scotland", "+f4", 75, 175),
    Speaker("en-029", "+m5", 40, 195),
    Speaker("en-us-nyc", "+whisper", 50, 170),
    Speaker("en-gb-x-rp", "+f3", 60, 145),
)


@dataclass(frozen=True)
class SpokenWord:
    samples: np.ndarray
    sample_rate: int
    word: str
    speaker: str


def espeak_available() -> bool:
    return shutil.which("espeak-ng") is not None


def speak(word: str, speaker: Speaker) -> SpokenWord:
    """One word as espeak-ng says it (a WAV on its stdout, decoded by soundfile)."""
    import soundfile

    command = ["espeak-ng", "-v", speaker.voice + speaker.variant, "-p", str(speaker.pitch), "-s", str(speaker.speed)]
    wav = subprocess.run([*command, "--stdout", word], capture_output=True, check=True, timeout=30).stdout
    samples, rate = soundfile.read(io.BytesIO(wav), dtype="float32")
    return SpokenWord(samples, int(rate), word, speaker.name)


def spoken_set(words: tuple[str, ...], speakers: tuple[Speaker, ...]) -> list[SpokenWord]:
    """Every word by every speaker."""
    return [speak(word, speaker) for speaker in speakers for word in words]


def cross_voice_precision(vectors: np.ndarray, clips: list[SpokenWord], k: int = 5) -> float:
    """Mean share of the same word among each clip's k nearest clips of *other* speakers (cosine)."""
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    similarity = unit @ unit.T
    speakers = np.array([clip.speaker for clip in clips])
    words = np.array([clip.word for clip in clips])
    similarity[speakers[:, None] == speakers[None, :]] = -np.inf  # the same voice never counts
    nearest = np.argsort(-similarity, axis=1)[:, :k]
    return float((words[nearest] == words[:, None]).mean())
