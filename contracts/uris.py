"""Where a location points: object storage or this machine's files."""

from __future__ import annotations

__all__ = ["is_object_uri"]


def is_object_uri(location: object) -> bool:
    """``s3://``, ``gs://``, ``az://``, ... (``file://`` URIs and plain paths are local).

    A :class:`~pathlib.Path` is never one: it folds ``//``, so a URI must stay a string."""
    text = str(location)
    return "://" in text and not text.startswith("file://")
