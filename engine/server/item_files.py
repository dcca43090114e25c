"""Which files an item posted to the API may make the server read: only regular files inside
the media directories (``--media-dir``), at most ``max_media_bytes`` each.

The CLI and the Python API read whatever files their caller (the operator) names. A client of
the API is not the operator: a field value naming ``/etc/shadow``, a file outside the media
directories, a link out of them, a device (``/dev/zero`` reads for ever) or a huge file fails
its item, with one message whatever the reason, so errors tell nothing about what exists
outside. An accepted value is passed on as the resolved file inside a media directory.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from polyrec.contracts import Item, ItemFailure, is_missing

__all__ = ["REFUSED", "confine_files"]

REFUSED = "not a regular file inside the server's media directories (server option --media-dir)"


def _file_fields(encoders: Mapping[str, Mapping[str, Any]]) -> dict[str, str]:
    """Field -> plugin, for every usable encoder whose string values name files."""
    return {info["field"]: info["plugin"] for info in encoders.values() if info.get("takes_files") and info["usable"]}


def _inside(value: Any, directories: Sequence[Path], max_bytes: int) -> tuple[str | None, str | None]:
    """``(resolved path, None)`` for a servable file, else ``(None, reason)``."""
    if not isinstance(value, str):
        return None, f"send a file path relative to a media directory, not a {type(value).__name__}"
    if not value or "\x00" in value or "://" in value:
        return None, REFUSED
    path = Path(value)
    for candidate in [path] if path.is_absolute() else [directory / path for directory in directories]:
        try:
            real = candidate.resolve(strict=True)  # links and ".." resolved before the check
            info = os.stat(real)
        except (OSError, RuntimeError):
            continue
        if not stat.S_ISREG(info.st_mode) or not any(real.is_relative_to(d) for d in directories):
            continue
        if info.st_size > max_bytes:
            return None, f"the file has {info.st_size} bytes, more than the limit of {max_bytes} (max_media_bytes)"
        return str(real), None
    return None, REFUSED


def confine_files(
    items: Iterable[Item], encoders: Mapping[str, Mapping[str, Any]], directories: Iterable[Path], max_bytes: int
) -> tuple[list[Item], list[ItemFailure]]:
    """The items with their file fields resolved inside ``directories``; a failure for each other item."""
    fields = _file_fields(encoders)
    roots = [Path(directory).resolve() for directory in directories]
    kept: list[Item] = []
    failures: list[ItemFailure] = []
    for item in items:
        values = dict(item.fields)
        failure = None
        for field, plugin in fields.items():
            if field not in values or is_missing(values[field]):
                continue
            resolved, reason = _inside(values[field], roots, max_bytes)
            if reason is not None:
                failure = ItemFailure(item_id=item.id, field=field, plugin=plugin, reason=reason)
                break
            values[field] = resolved
        if failure is None:
            kept.append(Item(id=item.id, fields=values))
        else:
            failures.append(failure)
    return kept, failures
