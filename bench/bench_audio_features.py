"""Audio features: cross-voice precision@5 of spoken words, old vs new features vs raw MFCC, one run.

Real speech, made on the spot by espeak-ng (``make speech`` installs it): every word said by
every speaker (a voice, a variant, a pitch, a speed). For each clip, the k nearest clips of
*other* speakers are looked up by cosine; precision@k is the share of them saying the same
word. Three vectors of the same clips, measured in the same run:

* ``raw MFCC mean+std``: ``librosa.feature.mfcc(y, sr, n_mfcc=20)``, mean and std over time;
* ``features v1``: the librosa encoder's version-1 features (whole-clip statistics, no trimming);
* ``features v2``: the current ones (plus per-segment MFCC and deltas, trimmed, see
  :mod:`polyrec.plugins.encoders.audio_features`).

The development set is what the features were designed on; the held-out set shares no
word and no speaker with it. Chance is about 1/len(words).

    python bench/bench_audio_features.py              # both sets, 10 words x 8 speakers each
    python bench/bench_audio_features.py --words 5 --speakers 6
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the shared speech generator

from speech_fixtures import (
    DEV_SPEAKERS,
    DEV_WORDS,
    HELD_OUT_SPEAKERS,
    HELD_OUT_WORDS,
    SpokenWord,
    cross_voice_precision,
    espeak_available,
    spoken_set,
)

from polyrec.plugins.encoders.audio_features import FeatureSettings, audio_features

SAMPLE_RATE = 22050
VERSION_1 = FeatureSettings(segments=0, trim_db=None)


def resampled(clip: SpokenWord) -> np.ndarray:
    import librosa

    if clip.sample_rate == SAMPLE_RATE:
        return clip.samples
    return librosa.resample(clip.samples, orig_sr=clip.sample_rate, target_sr=SAMPLE_RATE, res_type="soxr_hq")


def raw_mfcc(y: np.ndarray) -> np.ndarray:
    import librosa

    mfcc = librosa.feature.mfcc(y=y, sr=SAMPLE_RATE, n_mfcc=20)
    return np.concatenate([mfcc.mean(axis=1), mfcc.std(axis=1)])


METHODS = {
    "raw MFCC mean+std": raw_mfcc,
    "features v1": lambda y: audio_features(y, VERSION_1),
    "features v2": lambda y: audio_features(y, FeatureSettings()),
}


def measure(name: str, clips: list[SpokenWord], k: int) -> dict[str, float]:
    waves = [resampled(clip) for clip in clips]
    results = {}
    for method, features in METHODS.items():
        started = time.perf_counter()
        vectors = np.stack([features(y) for y in waves])
        results[method] = cross_voice_precision(vectors, clips, k)
        ms = 1000 * (time.perf_counter() - started) / len(clips)
        print(f"  {name:9s} {method:18s} precision@{k} {results[method]:.3f}   ({ms:.1f} ms/clip)")
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--words", type=int, default=10, help="words per set (at most 10)")
    parser.add_argument("--speakers", type=int, default=8, help="speakers per set (at most 8; k + 1 at least)")
    parser.add_argument("--k", type=int, default=5)
    args = parser.parse_args()
    if not espeak_available():
        sys.exit("espeak-ng is not installed: run `make speech` (Debian's espeak-ng package)")
    if args.speakers < 2:
        sys.exit("--speakers must be at least 2")
    print(f"cross-voice precision@{args.k} of spoken words ({args.words} words x {args.speakers} speakers per set)")
    summary = {}
    for name, words, speakers in (
        ("dev", DEV_WORDS, DEV_SPEAKERS),
        ("held-out", HELD_OUT_WORDS, HELD_OUT_SPEAKERS),
    ):
        clips = spoken_set(words[: args.words], speakers[: args.speakers])
        summary[name] = measure(name, clips, args.k)
    ceiling = min(args.k, args.speakers - 1) / args.k  # other speakers saying the same word
    print(f"  chance ~ {1 / args.words:.2f}, best possible {ceiling:.2f}")
    for name, results in summary.items():
        base = results["raw MFCC mean+std"]
        ratios = ", ".join(f"{method} {value / base:.2f}x" for method, value in results.items() if "features" in method)
        print(f"  {name:9s} vs raw MFCC: {ratios}")


if __name__ == "__main__":
    main()
