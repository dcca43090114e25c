"""Decoding of image and audio field values, shared by the built-in encoders and open to plugins.

Every function raises ``ValueError`` with a short reason for a bad value ("file not found:
...", "cannot decode image: ...") so that the engine fails just that item and reports the
reason; a missing optional library raises :class:`~polyrec.contracts.MissingDependencyError`,
which stops the run instead. Pillow, soundfile and librosa are imported on first use.

Images: :func:`load_image` accepts

* a file path, as ``str`` or :class:`~pathlib.Path` (any format Pillow reads);
* the encoded bytes of such a file (``bytes``, ``bytearray``, ``memoryview``);
* a PIL image (any mode);
* a numpy array shaped ``HxW``, ``HxWx1``, ``HxWx3`` or ``HxWx4`` (channels last), dtype
  ``uint8``, ``bool``, or float with values in [0, 1].

and returns an upright RGB PIL image: the EXIF orientation is applied; grayscale, palette,
CMYK, 16-bit and alpha images become RGB (transparent pixels over white).

Audio: :func:`load_audio` accepts

* a file path (``str`` or ``os.PathLike``) soundfile can read (wav, flac, ogg, mp3 with
  libsndfile >= 1.1); other formats fall back to ``librosa.load`` (audioread/ffmpeg);
* the bytes of such a file;
* an :class:`~polyrec.contracts.AudioClip`, or a mapping ``{"samples": ..., "sample_rate": ...}``;
* a bare numpy array (or list) of samples, taken to be at ``sample_rate`` (it carries none).

and returns a mono float32 :class:`AudioClip`. Channels are averaged; for a 2-D array the
channel axis is the shorter one (the first on a tie), at most :data:`MAX_CHANNELS`. Integer
PCM is scaled to [-1, 1]. ``max_duration`` keeps the central seconds of a longer clip (files
are read only over that window when soundfile can seek), and ``sample_rate`` resamples.

Files: :func:`file_sha256` hashes a file once per (path, mtime, size), for fingerprints that
cover a weights file; :func:`file_content_bytes` is the content key of a value naming a file;
:func:`resolve_file_value` is how the engine turns a catalog's path strings into paths.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import tempfile
import threading
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from polyrec.contracts.errors import MissingDependencyError
from polyrec.contracts.records import AudioClip

if TYPE_CHECKING:
    from PIL import Image

__all__ = [
    "MAX_CHANNELS",
    "file_content_bytes",
    "file_sha256",
    "load_audio",
    "load_image",
    "names_file",
    "resolve_file_value",
]

#: most channels a 2-D sample array may have
MAX_CHANNELS = 16
#: what transparent pixels are composited over: product shots are usually on white
_BACKGROUND = (255, 255, 255)
_REQUESTER = "polyrec.contracts.media"


# ---- files ----------------------------------------------------------------------------------

_file_hashes: dict[tuple[str, int, int], str] = {}
_file_hashes_lock = threading.Lock()


def file_sha256(path: str | os.PathLike[str]) -> str:
    """SHA-256 hex digest of a file, remembered per (path, mtime, size) so it is read once."""
    path = Path(path)
    stat = path.stat()
    key = (str(path.resolve()), stat.st_mtime_ns, stat.st_size)
    with _file_hashes_lock:
        if key not in _file_hashes:
            digest = hashlib.sha256()
            with path.open("rb") as handle:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(block)
            _file_hashes[key] = digest.hexdigest()
        return _file_hashes[key]


def names_file(value: Any) -> bool:
    """Whether ``value`` is a path (``str`` or ``PathLike``, not a URL) of an existing regular file."""
    if isinstance(value, str):
        if not value or "://" in value or "\n" in value or len(value) > 4096:
            return False
    elif not isinstance(value, os.PathLike):
        return False
    try:
        return Path(value).is_file()
    except (OSError, ValueError):  # a name too long for the OS, a NUL byte
        return False


def file_content_bytes(value: Any) -> bytes | None:
    """The bytes of the file ``value`` names (``str`` or ``PathLike``), or None when it names none.

    A content key, so an edited file gets a new vector however its path is spelt.
    """
    return Path(value).read_bytes() if names_file(value) else None


def resolve_file_value(value: Any, base_dir: Path | None = None) -> Any:
    """A ``str`` naming an existing file as a :class:`Path`; any other value unchanged.

    A relative path is looked up beside the catalog (``base_dir``) first, then as given (the
    working directory); absolute paths are kept; URLs (``://``) and strings naming no file
    stay strings, so the encoder reports them ("file not found: ...").
    """
    if not isinstance(value, str) or "://" in value:
        return value
    if base_dir is not None and not Path(value).is_absolute() and names_file(base_dir / value):
        return base_dir / value
    return Path(value) if names_file(value) else value


# ---- images ---------------------------------------------------------------------------------


def _pil() -> Any:
    try:
        from PIL import Image
    except ImportError as exc:
        raise MissingDependencyError(_REQUESTER, "pillow", "image") from exc
    return Image


def load_image(value: Any) -> Image.Image:
    """Decode ``value`` into an upright RGB image or raise ValueError saying why not."""
    image_module = _pil()
    if value is None:
        raise ValueError("value is missing")
    if isinstance(value, str | os.PathLike):
        image = _open_image_path(Path(value))
    elif isinstance(value, bytes | bytearray | memoryview):
        image = _open_image_bytes(bytes(value))
    elif isinstance(value, image_module.Image):
        image = value
    elif isinstance(value, np.ndarray):
        return _to_rgb(_image_from_array(value))
    else:
        raise ValueError(f"expected an image path, bytes, PIL image or array; got {type(value).__name__}")
    return _to_rgb(_upright(image))


def _open_image_path(path: Path) -> Image.Image:
    if str(path) in ("", "."):
        raise ValueError("image path is empty")
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ValueError(f"file not found: {path}") from None
    except IsADirectoryError:
        raise ValueError(f"not a file: {path}") from None
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror or exc}") from None
    return _open_image_bytes(data, origin=str(path))


def _open_image_bytes(data: bytes, origin: str = "bytes") -> Image.Image:
    image_module = _pil()
    if not data:
        raise ValueError(f"cannot decode image: {origin} is empty")
    try:
        image = image_module.open(io.BytesIO(data))
        image.load()  # decode now, so truncated data fails here and not later in a batch
    except (image_module.DecompressionBombError, OSError, SyntaxError, ValueError) as exc:
        raise ValueError(f"cannot decode image: {exc}") from None
    return image


def _upright(image: Image.Image) -> Image.Image:
    from PIL import ImageOps

    try:
        return ImageOps.exif_transpose(image) or image
    except Exception:  # a broken EXIF block should not cost the picture
        return image


def _image_from_array(array: np.ndarray) -> Image.Image:
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (3, 4)):
        raise ValueError(f"image array must be HxW, HxWx1, HxWx3 or HxWx4; got shape {array.shape}")
    if min(array.shape[:2]) == 0:
        raise ValueError(f"image array is empty: shape {array.shape}")
    return _pil().fromarray(np.ascontiguousarray(_pixels_as_uint8(array)))  # L, RGB or RGBA by shape


def _pixels_as_uint8(array: np.ndarray) -> np.ndarray:
    if array.dtype == np.uint8:
        return array
    if array.dtype == np.bool_:
        return array.astype(np.uint8) * 255
    if np.issubdtype(array.dtype, np.floating):
        if not np.isfinite(array).all():
            raise ValueError("image array has NaN or infinite values")
        low, high = float(array.min()), float(array.max())
        if low < 0.0 or high > 1.0:
            raise ValueError(f"float image array must hold values in [0, 1]; got [{low:g}, {high:g}]")
        return np.round(array * 255.0).astype(np.uint8)
    raise ValueError(f"image array dtype must be uint8, bool or float in [0, 1]; got {array.dtype}")


def _to_rgb(image: Image.Image) -> Image.Image:
    image_module = _pil()
    if image.mode == "RGB":
        return image
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        image = _wide_gray_to_l(image)
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA", "La", "RGBa"):
        rgba = image.convert("RGBA")
        background = image_module.new("RGBA", rgba.size, (*_BACKGROUND, 255))
        return image_module.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def _wide_gray_to_l(image: Image.Image) -> Image.Image:
    # Pillow clips 16/32-bit grayscale to 0..255 on convert("L"); rescale instead
    values = np.asarray(image, dtype=np.float64)
    peak = float(values.max(initial=0.0))
    top = 65535.0 if peak > 255.0 else 1.0 if image.mode == "F" and peak <= 1.0 else 255.0
    return _pil().fromarray(np.clip(np.round(values / top * 255.0), 0, 255).astype(np.uint8))


# ---- audio ----------------------------------------------------------------------------------


def load_audio(value: Any, sample_rate: int | None = None, *, max_duration: float | None = None) -> AudioClip:
    """Decode ``value`` into a mono float32 clip, cropped and resampled; ValueError says why not.

    ``sample_rate``: the rate of the result (None keeps the source's) and the rate a bare
    array is taken to be at (a bare array needs it). ``max_duration``: seconds kept from the
    middle of a longer clip (the middle of a track is more typical of it than its intro).
    """
    if value is None:
        raise ValueError("value is missing")
    samples, rate = _decode_audio(value, sample_rate, max_duration)
    mono = _to_mono(samples)
    if not np.isfinite(mono).all():
        raise ValueError("audio contains NaN or infinite samples")
    start, stop = _middle_window(mono.size, rate, max_duration)
    mono = mono[start:stop]
    if sample_rate is not None and rate != sample_rate:
        mono = _resample(mono, rate, sample_rate)
        rate = sample_rate
    return AudioClip(samples=np.ascontiguousarray(mono, dtype=np.float32), sample_rate=rate)


def _decode_audio(value: Any, bare_rate: int | None, max_duration: float | None) -> tuple[np.ndarray, int]:
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
        return _read_audio_file(Path(value), max_duration)
    if isinstance(value, bytes | bytearray | memoryview):
        return _read_audio_bytes(bytes(value))
    if isinstance(value, np.ndarray | list | tuple):
        if bare_rate is None:
            raise ValueError("a bare sample array carries no sample rate: pass an AudioClip or a sample_rate")
        return np.asarray(value), bare_rate
    raise ValueError(f"unsupported audio value of type {type(value).__name__}; expected a path, bytes or AudioClip")


def _soundfile() -> Any:
    try:
        import soundfile
    except ImportError as exc:
        raise MissingDependencyError(_REQUESTER, "soundfile", "audio") from exc
    return soundfile


def _librosa() -> Any:
    try:
        import librosa
    except ImportError as exc:
        raise MissingDependencyError(_REQUESTER, "librosa", "audio") from exc
    return librosa


def _read_audio_file(path: Path, max_duration: float | None) -> tuple[np.ndarray, int]:
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


def _read_audio_bytes(data: bytes) -> tuple[np.ndarray, int]:
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
    librosa = _librosa()
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


def _to_mono(samples: np.ndarray) -> np.ndarray:
    """Average channels; the channel axis of a 2-D array is its shorter axis (first on a tie)."""
    array = np.asarray(samples)
    if array.dtype.kind not in "iuf":
        raise ValueError(f"audio samples must be numbers, got dtype {array.dtype}")
    if array.size == 0:
        raise ValueError("audio has no samples")
    array = _samples_as_float(array)
    if array.ndim == 1:
        return array
    if array.ndim != 2:
        raise ValueError(f"audio samples must be 1-D or 2-D (channels x samples), got shape {array.shape}")
    channel_axis = 0 if array.shape[0] <= array.shape[1] else 1
    if array.shape[channel_axis] > MAX_CHANNELS:
        raise ValueError(f"cannot tell channels from samples in shape {array.shape} (more than {MAX_CHANNELS})")
    return array.mean(axis=channel_axis, dtype=np.float64).astype(np.float32)


def _samples_as_float(array: np.ndarray) -> np.ndarray:
    if array.dtype.kind in "iu":
        info = np.iinfo(array.dtype)
        midpoint = (int(info.max) + int(info.min) + 1) / 2  # 128 for uint8 PCM, 0 for signed
        return ((array.astype(np.float64) - midpoint) / (info.max - midpoint)).astype(np.float32)
    return array.astype(np.float32, copy=False)


def _resample(mono: np.ndarray, rate: int, target: int) -> np.ndarray:
    resampled = _librosa().resample(mono, orig_sr=rate, target_sr=target, res_type="soxr_hq")
    if resampled.size == 0:  # a few samples at a high rate can round down to none
        resampled = mono[:1]
    return np.ascontiguousarray(resampled, dtype=np.float32)
