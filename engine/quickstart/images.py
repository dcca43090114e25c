"""Pictures for the quickstart catalog: varied crops of scikit-image's bundled photos, and
drawings in each category's palette and motif.

Only photos that ship inside the scikit-image wheel are used (some of ``skimage.data``
would be downloaded on first use). PIL, numpy and scikit-image are imported lazily.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

import numpy as np

from polyrec.engine.quickstart.categories import Category

if TYPE_CHECKING:
    from PIL import Image

__all__ = ["IMAGE_SIZE", "photo_variant", "drawn_image"]

IMAGE_SIZE = 256


@functools.cache
def _photo(name: str) -> np.ndarray:
    """A bundled scikit-image photo as an RGB uint8 array."""
    import skimage.data

    array = np.asarray(getattr(skimage.data, name)())
    if array.dtype == bool:
        array = array.astype(np.uint8) * 255
    if array.ndim == 2:
        array = np.stack([array] * 3, axis=-1)
    return np.ascontiguousarray(array[..., :3].astype(np.uint8))


def photo_variant(category: Category, rng: np.random.Generator, size: int = IMAGE_SIZE) -> Image.Image:
    """A random square crop of one of the category's photos, maybe mirrored, slightly re-toned."""
    from PIL import Image, ImageEnhance, ImageOps

    array = _photo(category.photos[int(rng.integers(len(category.photos)))])
    height, width = array.shape[:2]
    side = int(min(height, width) * rng.uniform(0.55, 1.0))
    top = int(rng.integers(0, height - side + 1))
    left = int(rng.integers(0, width - side + 1))
    image = Image.fromarray(array[top : top + side, left : left + side]).resize((size, size), Image.Resampling.LANCZOS)
    if rng.random() < 0.5:
        image = ImageOps.mirror(image)
    image = ImageEnhance.Brightness(image).enhance(float(rng.uniform(0.85, 1.15)))
    return ImageEnhance.Color(image).enhance(float(rng.uniform(0.8, 1.2)))


def drawn_image(category: Category, rng: np.random.Generator, size: int = IMAGE_SIZE) -> Image.Image:
    """A drawing: the category's background, then its motif in colours from its palette."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (size, size), _jitter(category.background, rng, 12))
    draw = ImageDraw.Draw(image)
    _MOTIFS[category.motif](draw, category, rng, size)
    return image


def _jitter(colour: tuple[int, int, int], rng: np.random.Generator, amount: int) -> tuple[int, int, int]:
    shifted = np.clip(np.asarray(colour) + rng.integers(-amount, amount + 1, 3), 0, 255)
    return (int(shifted[0]), int(shifted[1]), int(shifted[2]))


def _colour(category: Category, rng: np.random.Generator) -> tuple[int, int, int]:
    return _jitter(category.palette[int(rng.integers(len(category.palette)))], rng, 20)


def _point(rng: np.random.Generator, size: int, margin: int = 0) -> tuple[int, int]:
    return int(rng.integers(margin, size - margin)), int(rng.integers(margin, size - margin))


def _stars(draw: Any, category: Category, rng: np.random.Generator, size: int) -> None:
    for _ in range(int(rng.integers(60, 120))):
        x, y = _point(rng, size)
        radius = float(rng.choice([0.6, 1.0, 1.6]))
        draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=(235, 235, 255))
    for _ in range(int(rng.integers(1, 3))):
        x, y = _point(rng, size, 40)
        radius = int(rng.integers(18, 50))
        draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=_colour(category, rng))


def _ears(draw: Any, category: Category, rng: np.random.Generator, size: int) -> None:
    for _ in range(int(rng.integers(1, 4))):
        x, y = _point(rng, size, 50)
        radius = int(rng.integers(28, 48))
        fur = _colour(category, rng)
        draw.polygon([(x - radius, y - radius // 3), (x - radius // 2, y - radius * 1.5), (x, y - radius // 2)], fur)
        draw.polygon([(x + radius, y - radius // 3), (x + radius // 2, y - radius * 1.5), (x, y - radius // 2)], fur)
        draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=fur)
        for eye in (-1, 1):
            draw.ellipse((x + eye * radius // 2 - 4, y - 8, x + eye * radius // 2 + 4, y), fill=(40, 40, 40))


def _cups(draw: Any, category: Category, rng: np.random.Generator, size: int) -> None:
    for _ in range(int(rng.integers(1, 3))):
        x, y = _point(rng, size, 60)
        width, height = int(rng.integers(40, 70)), int(rng.integers(40, 60))
        colour = _colour(category, rng)
        draw.rectangle((x - width // 2, y, x + width // 2, y + height), fill=colour)
        draw.arc((x + width // 2 - 10, y + 8, x + width // 2 + 16, y + height - 8), -90, 90, fill=colour, width=5)
        for offset in (-12, 0, 12):  # steam
            draw.arc((x + offset - 6, y - 34, x + offset + 6, y - 4), 90, 270, fill=(150, 120, 100), width=2)


def _blobs(draw: Any, category: Category, rng: np.random.Generator, size: int) -> None:
    for _ in range(int(rng.integers(8, 20))):
        x, y = _point(rng, size)
        rx, ry = int(rng.integers(8, 28)), int(rng.integers(8, 28))
        draw.ellipse((x - rx, y - ry, x + rx, y + ry), fill=_colour(category, rng), outline=(60, 60, 60))
        draw.ellipse((x - 3, y - 3, x + 3, y + 3), fill=(40, 40, 90))


def _frames(draw: Any, category: Category, rng: np.random.Generator, size: int) -> None:
    for _ in range(int(rng.integers(2, 5))):
        x0, y0 = _point(rng, size - 60)
        x1, y1 = x0 + int(rng.integers(40, 110)), y0 + int(rng.integers(30, 90))
        draw.rectangle((x0, y0, x1, y1), outline=_colour(category, rng), width=int(rng.integers(3, 8)))
    x, y = _point(rng, size, 50)
    radius = int(rng.integers(25, 40))  # a clock face
    draw.ellipse((x - radius, y - radius, x + radius, y + radius), outline=(60, 50, 40), width=3)
    angle = float(rng.uniform(0, 2 * np.pi))
    draw.line((x, y, x + radius * 0.8 * np.cos(angle), y + radius * 0.8 * np.sin(angle)), fill=(60, 50, 40), width=3)


def _stripes(draw: Any, category: Category, rng: np.random.Generator, size: int) -> None:
    for x in range(0, size, int(rng.integers(6, 14))):
        top = int(rng.integers(size // 3, size - 20))
        draw.line((x, size, x + int(rng.integers(-8, 9)), top), fill=_colour(category, rng), width=3)
    for _ in range(int(rng.integers(2, 6))):  # flowers
        x, y = _point(rng, size, 20)
        radius = int(rng.integers(5, 12))
        draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=_colour(category, rng))


_MOTIFS = {
    "stars": _stars,
    "ears": _ears,
    "cups": _cups,
    "blobs": _blobs,
    "frames": _frames,
    "stripes": _stripes,
}
