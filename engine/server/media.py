"""Serving item images and sounds safely: only a value that was ingested as an item's field,
names an image or audio file, exists, and lies (after resolving links and ``..``) inside an allowed directory.

Relative values are looked up under each allowed directory in turn; absolute ones must be
inside one. Nothing else on disk can be reached through ``GET /items/{id}/media/{field}``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote

from polyrec.engine.retrieval import AUDIO_SUFFIXES, IMAGE_SUFFIXES

MEDIA_SUFFIXES = IMAGE_SUFFIXES | AUDIO_SUFFIXES

__all__ = ["MediaResolver", "media_url"]


def media_url(item_id: str, field: str) -> str:
    return f"/items/{quote(item_id, safe='')}/media/{quote(field, safe='')}"


class MediaResolver:
    """Maps field values to servable image and audio files under the allowed directories."""

    def __init__(self, directories: Iterable[Path]) -> None:
        self.directories = [Path(directory).resolve() for directory in directories]

    def resolve(self, value: Any) -> Path | None:
        """The image or audio file ``value`` names, if it may be served; None otherwise."""
        if not self.directories or not isinstance(value, str) or not value or "\x00" in value or "://" in value:
            return None
        path = Path(value)
        if path.suffix.lower() not in MEDIA_SUFFIXES:
            return None
        candidates = [path] if path.is_absolute() else [directory / path for directory in self.directories]
        for candidate in candidates:
            try:
                real = candidate.resolve()
            except (OSError, RuntimeError):  # a link loop, an unreadable parent
                continue
            if real.is_file() and any(real.is_relative_to(directory) for directory in self.directories):
                return real
        return None

    def links(self, item_id: str, metadata: Mapping[str, Any]) -> dict[str, str]:
        """``{field: url}`` for every metadata field that is a servable image or audio file."""
        return {field: media_url(item_id, field) for field, value in metadata.items() if self.resolve(value)}
