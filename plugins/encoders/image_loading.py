"""Decode image field values into upright RGB PIL images, with clear per-item reasons.

Accepted values: a file path (``str`` or ``Path``), encoded bytes, a PIL image, or a
numpy array shaped HxW, HxWx1, HxWx3 or HxWx4 with dtype uint8, bool, or float in
[0, 1]. EXIF orientation is applied; grayscale, palette, CMYK, 16-bit and alpha images
become RGB (transparent pixels over white). Pillow is imported on first use.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from PIL import Image

__all__ = ["image_content_bytes", "load_image"]

#: what transparent pixels are composited over: product shots are usually on white
_BACKGROUND = (255, 255, 255)


def load_image(value: Any) -> Image.Image:
    """Decode ``value`` into an RGB image or raise ValueError saying why not."""
    from PIL import Image

    if value is None:
        raise ValueError("value is missing")
    if isinstance(value, str | Path):
        image = _open_path(Path(value))
    elif isinstance(value, bytes | bytearray | memoryview):
        image = _open_bytes(bytes(value))
    elif isinstance(value, Image.Image):
        image = value
    elif isinstance(value, np.ndarray):
        return _to_rgb(_from_array(value))
    else:
        raise ValueError(f"expected an image path, bytes, PIL image or array; got {type(value).__name__}")
    return _to_rgb(_upright(image))


def image_content_bytes(value: Any) -> bytes | None:
    """The bytes of an image file named by a path, or None for other values."""
    if isinstance(value, str | Path):
        path = Path(value)
        if path.is_file():
            return path.read_bytes()
    return None


def _open_path(path: Path) -> Image.Image:
    if str(path) == "" or str(path) == ".":
        raise ValueError("image path is empty")
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ValueError(f"file not found: {path}") from None
    except IsADirectoryError:
        raise ValueError(f"not a file: {path}") from None
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror or exc}") from None
    return _open_bytes(data, origin=str(path))


def _open_bytes(data: bytes, origin: str = "bytes") -> Image.Image:
    from PIL import Image

    if not data:
        raise ValueError(f"cannot decode image: {origin} is empty")
    try:
        image = Image.open(io.BytesIO(data))
        image.load()  # decode now, so truncated data fails here and not later in a batch
    except (Image.DecompressionBombError, OSError, SyntaxError, ValueError) as exc:
        raise ValueError(f"cannot decode image: {exc}") from None
    return image


def _upright(image: Image.Image) -> Image.Image:
    from PIL import ImageOps

    try:
        return ImageOps.exif_transpose(image) or image
    except Exception:  # a broken EXIF block should not cost the picture
        return image


def _from_array(array: np.ndarray) -> Image.Image:
    from PIL import Image

    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (3, 4)):
        raise ValueError(f"image array must be HxW, HxWx1, HxWx3 or HxWx4; got shape {array.shape}")
    if min(array.shape[:2]) == 0:
        raise ValueError(f"image array is empty: shape {array.shape}")
    return Image.fromarray(np.ascontiguousarray(_as_uint8(array)))  # L, RGB or RGBA by shape


def _as_uint8(array: np.ndarray) -> np.ndarray:
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
    from PIL import Image

    if image.mode == "RGB":
        return image
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        image = _wide_gray_to_l(image)
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA", "La", "RGBa"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (*_BACKGROUND, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def _wide_gray_to_l(image: Image.Image) -> Image.Image:
    # Pillow clips 16/32-bit grayscale to 0..255 on convert("L"); rescale instead
    from PIL import Image

    values = np.asarray(image, dtype=np.float64)
    peak = float(values.max(initial=0.0))
    top = 65535.0 if peak > 255.0 else 1.0 if image.mode == "F" and peak <= 1.0 else 255.0
    return Image.fromarray(np.clip(np.round(values / top * 255.0), 0, 255).astype(np.uint8))
