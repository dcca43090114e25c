"""Files uploaded for items through the API (``PUT /items/{id}/files/{field}``).

A client of the API cannot name the server's files freely (:mod:`.item_files`): it names files
inside the media directories, or sends the bytes. Sent bytes are kept in a directory the server
owns (``upload_dir``, by default ``uploads/`` in the store's state folder), named by their
SHA-256 and a suffix taken from the upload's name or content type, so the same bytes sent twice
are one file and no client chooses a path. The directory is one of the media directories, so the
item's file is then read (ingest) and served (``GET /items/{id}/media/{field}``) like any other.
"""

from __future__ import annotations

import hashlib
import mimetypes
import os
import re
import tempfile
from pathlib import Path
from typing import Any

from polyrec.engine.server.limits import ServerLimits

__all__ = ["UPLOADS", "keep_upload", "with_upload_dir"]

UPLOADS = "uploads"  # the folder in the store's state folder
_SUFFIX = re.compile(r"\.[a-z0-9]{1,8}")


def with_upload_dir(limits: ServerLimits, state_dir: Path | None) -> ServerLimits:
    """``limits`` with ``upload_dir`` defaulted (``<state_dir>/uploads``) and among the media
    directories; unchanged where there is neither (uploads are then refused)."""
    directory = limits.upload_dir or (Path(state_dir) / UPLOADS if state_dir is not None else None)
    if directory is None:
        return limits
    directory = Path(directory).resolve()
    media = limits.media_dirs if directory in limits.media_dirs else (*limits.media_dirs, directory)
    return limits.model_copy(update={"upload_dir": directory, "media_dirs": media})


def upload_suffix(filename: str | None, content_type: str | None) -> str:
    """A safe suffix for an upload: its name's (``.png``), else its content type's, else none."""
    suffix = Path(filename or "").suffix.lower()
    if _SUFFIX.fullmatch(suffix):
        return suffix
    guessed = (mimetypes.guess_extension((content_type or "").split(";")[0].strip().lower()) or "").lower()
    return guessed if _SUFFIX.fullmatch(guessed) else ""


def keep_upload(data: bytes, suffix: str, directory: Path) -> Path:
    """Write ``data`` as ``<sha256><suffix>`` in ``directory`` (atomically; kept if already there)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / (hashlib.sha256(data).hexdigest() + suffix)
    if path.is_file() and path.stat().st_size == len(data):
        return path
    handle, temporary = tempfile.mkstemp(dir=directory, prefix=".upload-")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        os.replace(temporary, path)  # a reader never sees half a file
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def state_dir_of(engine: Any) -> Path | None:
    """The engine's state folder (where its manifest lives), if it has one."""
    directory = getattr(getattr(engine, "assembly", None), "manifest", None)
    found = getattr(directory, "directory", None)
    return Path(found) if found is not None else None
