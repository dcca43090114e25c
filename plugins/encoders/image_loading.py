"""Moved: image decoding is public now, in :mod:`polyrec.contracts.media` (``load_image``).

Kept for one release so that ``from polyrec.plugins.encoders.image_loading import load_image``
still works; new code imports from ``polyrec.contracts.media``.
"""

from __future__ import annotations

from typing import Any

from polyrec.contracts.media import file_content_bytes, load_image

__all__ = ["image_content_bytes", "load_image"]


def image_content_bytes(value: Any) -> bytes | None:
    """The bytes of an image file named by a path, or None for other values."""
    return file_content_bytes(value)
