"""``polyrec.contracts.media``: the public decoding helpers plugins share, on values made here.

The encoders' own tests (test_encoder_image.py, test_encoder_audio.py) check the same rules
through the built-in encoders; these check the helpers' documented types directly, pixel by
pixel and sample by sample.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from polyrec.contracts import AudioClip, MissingDependencyError
from polyrec.contracts.media import file_content_bytes, file_sha256, load_audio, load_image, names_file

Image = pytest.importorskip("PIL.Image", reason="the 'image' extra is not installed")
soundfile = pytest.importorskip("soundfile", reason="the 'audio' extra is not installed")


def _pattern(height: int = 6, width: int = 8) -> np.ndarray:
    yy, xx = np.mgrid[0:height, 0:width]
    return np.stack([xx * 30, yy * 40, (xx + yy) * 10], axis=-1).astype(np.uint8)


# -- images -----------------------------------------------------------------------------------


def test_every_image_form_gives_the_same_rgb_pixels(tmp_path: Path) -> None:
    pixels = _pattern()
    path = tmp_path / "pattern.png"
    Image.fromarray(pixels).save(path)
    forms = [path, str(path), path.read_bytes(), bytearray(path.read_bytes()), Image.fromarray(pixels), pixels]
    for form in forms:
        image = load_image(form)
        assert image.mode == "RGB"
        np.testing.assert_array_equal(np.asarray(image), pixels, err_msg=type(form).__name__)


def test_array_layouts_and_dtypes() -> None:
    gray = _pattern()[:, :, 0]
    expected = np.dstack([gray] * 3)
    for form in (gray, gray[:, :, None], np.dstack([gray] * 3 + [np.full_like(gray, 255)])):
        np.testing.assert_array_equal(np.asarray(load_image(form)), expected)
    np.testing.assert_array_equal(np.asarray(load_image(gray / 255.0)), expected)
    mask = gray > 100
    np.testing.assert_array_equal(np.asarray(load_image(mask))[:, :, 0], mask.astype(np.uint8) * 255)
    transparent = np.dstack([_pattern(), np.zeros(gray.shape, np.uint8)])
    assert (np.asarray(load_image(transparent)) == 255).all()  # over white


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (None, "value is missing"),
        ("", "image path is empty"),
        (b"", "cannot decode image: bytes is empty"),
        (b"not a picture", "cannot decode image:"),
        (np.zeros((4, 4, 2), np.uint8), "image array must be HxW, HxWx1, HxWx3 or HxWx4; got shape (4, 4, 2)"),
        (np.zeros((0, 4), np.uint8), "image array is empty"),
        (np.full((2, 2), 1.5), "float image array must hold values in [0, 1]; got [1.5, 1.5]"),
        (np.zeros((2, 2), np.int64), "image array dtype must be uint8, bool or float in [0, 1]; got int64"),
        (12, "expected an image path, bytes, PIL image or array; got int"),
    ],
)
def test_bad_images_say_why(value: object, reason: str) -> None:
    with pytest.raises(ValueError) as caught:
        load_image(value)
    assert str(caught.value).startswith(reason)


def test_missing_and_directory_paths(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=f"^file not found: {tmp_path / 'gone.png'}$"):
        load_image(tmp_path / "gone.png")
    with pytest.raises(ValueError, match=r"^not a file: "):
        load_image(tmp_path)


# -- audio ------------------------------------------------------------------------------------


def _tone(rate: int, seconds: float = 0.5) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)


def test_audio_forms_decode_to_the_same_mono_clip(tmp_path: Path) -> None:
    tone = _tone(16000)
    stereo = np.stack([tone, tone])  # (channels, n)
    path = tmp_path / "tone.wav"
    soundfile.write(path, stereo.T, 16000, subtype="FLOAT")
    buffer = io.BytesIO()
    soundfile.write(buffer, tone, 16000, format="FLAC")
    forms = [path, str(path), AudioClip(samples=stereo, sample_rate=16000), {"samples": stereo.T, "sample_rate": 16000}]
    for form in forms:
        clip = load_audio(form)
        assert clip.sample_rate == 16000 and clip.samples.dtype == np.float32 and clip.samples.ndim == 1
        np.testing.assert_allclose(clip.samples, tone, atol=1e-6, err_msg=type(form).__name__)
    np.testing.assert_allclose(load_audio(buffer.getvalue()).samples, tone, atol=1e-4)  # FLAC is 16-bit
    np.testing.assert_allclose(load_audio(tone, 16000).samples, tone)  # a bare array is at the rate given


def test_audio_is_resampled_cropped_and_scaled() -> None:
    clip = load_audio(AudioClip(samples=_tone(44100, 1.0), sample_rate=44100), 22050)
    assert clip.sample_rate == 22050 and clip.samples.size == 22050
    middle = load_audio(np.arange(10_000, dtype=np.float32) / 10_000, 1000, max_duration=2.0).samples
    np.testing.assert_allclose(middle, np.arange(4000, 6000) / 10_000, atol=1e-7)  # the central 2 s
    pcm = load_audio(np.array([-32768, 0, 16384], np.int16), 8000).samples
    np.testing.assert_allclose(pcm, [-1.0, 0.0, 0.5], atol=1e-4)
    unsigned = load_audio(np.array([0, 128, 255], np.uint8), 8000).samples
    np.testing.assert_allclose(unsigned, [-128 / 127, 0.0, 1.0], atol=1e-6)  # 128 is the zero of uint8 PCM


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (None, "value is missing"),
        (np.zeros(10), "a bare sample array carries no sample rate"),
        (b"", "cannot decode audio: empty bytes"),
        (AudioClip(samples=np.zeros(0), sample_rate=8000), "audio has no samples"),
        (AudioClip(samples=np.array([0.0, np.nan]), sample_rate=8000), "audio contains NaN or infinite samples"),
        (AudioClip(samples=np.zeros((20, 40)), sample_rate=8000), "cannot tell channels from samples"),
        ({"samples": [0.0]}, "an audio mapping needs 'samples' and a positive 'sample_rate'"),
        (3.5, "unsupported audio value of type float"),
    ],
)
def test_bad_audio_says_why(value: object, reason: str) -> None:
    with pytest.raises(ValueError) as caught:
        load_audio(value)
    assert str(caught.value).startswith(reason)


def test_missing_audio_file(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=f"^file not found: {tmp_path / 'gone.wav'}$"):
        load_audio(str(tmp_path / "gone.wav"))


# -- files ------------------------------------------------------------------------------------


def test_file_content_bytes_follow_the_file_however_the_path_is_spelt(tmp_path: Path) -> None:
    path = tmp_path / "picture.png"
    path.write_bytes(b"first")
    spellings = [path, str(path), str(path.resolve()), os.fspath(path)]
    assert {file_content_bytes(spelling) for spelling in spellings} == {b"first"}
    path.write_bytes(b"edited")
    assert file_content_bytes(str(path)) == b"edited"
    for not_a_file in (str(tmp_path / "gone.png"), str(tmp_path), "https://example.org/a.png", "a\nb", 42, "x" * 5000):
        assert file_content_bytes(not_a_file) is None
        assert not names_file(not_a_file)


def test_file_sha256_is_recomputed_when_the_file_changes(tmp_path: Path) -> None:
    import hashlib

    path = tmp_path / "weights.bin"
    path.write_bytes(b"a" * 10)
    assert file_sha256(path) == hashlib.sha256(b"a" * 10).hexdigest()
    path.write_bytes(b"b" * 11)
    assert file_sha256(str(path)) == hashlib.sha256(b"b" * 11).hexdigest()


def test_importing_media_imports_nothing_heavy() -> None:
    code = (
        "import sys, polyrec.contracts.media; "
        "heavy = {'PIL', 'soundfile', 'librosa', 'torch'} & set(sys.modules); assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_a_missing_library_is_a_missing_dependency_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "soundfile", None)  # import soundfile now raises ImportError
    with pytest.raises(MissingDependencyError, match="soundfile"):
        load_audio(b"RIFF....")
