"""Pictures and sounds of items, for the report: found among their metadata, made small.

An item's thumbnail comes from the first metadata value that names an existing image file
(resolved against the given roots: typically the config's folder and the working
directory, since catalog paths are relative to the catalog). Thumbnails are written as
small JPEGs under ``thumbs/`` in the report folder, so the HTML stays light and the
folder can be moved or shared as a whole. PIL is imported lazily.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["IMAGE_SUFFIXES", "AUDIO_SUFFIXES", "THUMB_DIR", "find_media", "Thumbnails"]

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".gif", ".bmp", ".webp", ".tif", ".tiff"})
AUDIO_SUFFIXES = frozenset({".wav", ".flac", ".mp3", ".ogg", ".oga", ".m4a"})
THUMB_DIR = "thumbs"
THUMB_SIZE = 128


def find_media(metadata: Mapping[str, Any], roots: Sequence[Path], suffixes: frozenset[str]) -> Path | None:
    """The first metadata value that is a path to an existing file with one of ``suffixes``."""
    for value in metadata.values():
        if not isinstance(value, str) or "://" in value or Path(value).suffix.lower() not in suffixes:
            continue
        path = Path(value).expanduser()
        candidates = [path] if path.is_absolute() else [root / path for root in roots]
        for candidate in candidates:
            if candidate.is_file():
                return candidate.resolve()
    return None


def _file_name(item_id: str) -> str:
    # ids may hold any character; the hash keeps "a/b" and "a_b" apart
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", item_id)[:60]
    return f"{safe}-{hashlib.sha1(item_id.encode()).hexdigest()[:8]}.jpg"


class Thumbnails:
    """Makes (once per item) a thumbnail under ``out_dir/thumbs`` and returns its relative path."""

    def __init__(self, out_dir: Path, roots: Sequence[Path], size: int = THUMB_SIZE) -> None:
        self.out_dir = out_dir
        self.roots = list(roots)
        self.size = size
        self._made: dict[str, str | None] = {}

    def for_item(self, item_id: str, metadata: Mapping[str, Any]) -> str | None:
        """Relative path (POSIX) of the item's thumbnail, or None if it has no readable picture."""
        if item_id not in self._made:
            self._made[item_id] = self._make(item_id, metadata)
        return self._made[item_id]

    def _make(self, item_id: str, metadata: Mapping[str, Any]) -> str | None:
        source = find_media(metadata, self.roots, IMAGE_SUFFIXES)
        if source is None:
            return None
        from PIL import Image, ImageOps, UnidentifiedImageError

        relative = Path(THUMB_DIR) / _file_name(item_id)
        target = self.out_dir / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            with Image.open(source) as image:
                picture = ImageOps.exif_transpose(image).convert("RGB")
                picture.thumbnail((self.size, self.size))
                picture.save(target, format="JPEG", quality=85)
        except (OSError, UnidentifiedImageError, ValueError):
            return None  # an unreadable picture: the report shows a placeholder instead
        return relative.as_posix()

    def audio_for_item(self, metadata: Mapping[str, Any]) -> str | None:
        """Path of the item's audio file relative to the report folder, for an <audio> player."""
        source = find_media(metadata, self.roots, AUDIO_SUFFIXES)
        if source is None:
            return None
        return Path(os.path.relpath(source, self.out_dir.resolve())).as_posix()
