"""The catalog of a distributed ingest: local files, or objects on object storage, and the
config-vs-data check an in-process ingest runs first.

A catalog is a file, a directory (every tabular file in it), a list of those, or an object
storage URI of a file or a prefix (``s3://bucket/catalog.jsonl``, ``s3://bucket/catalogs/``).
Objects are listed on the driver and read by the workers through pyarrow's filesystems with
the store's ``storage_options`` (LanceDB's keys, see :func:`object_filesystem`): each is copied
to a temporary file beside the worker and read by polyrec's own readers (same parsing, same row
failures), then removed. Relative media paths of an object catalog are not resolved (there is
no folder to resolve them in): use absolute paths or URLs there.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from polyrec.contracts import PolyrecError, is_object_uri

if TYPE_CHECKING:
    from polyrec.engine.assembly import Assembly
    from polyrec.engine.readers import ItemChunk

__all__ = [
    "catalog_files",
    "check_catalog_fields",
    "check_chunks",
    "object_filesystem",
    "opened_catalog_file",
]

_S3_KEYS = {
    "access_key": ("aws_access_key_id", "access_key_id"),
    "secret_key": ("aws_secret_access_key", "secret_access_key"),
    "session_token": ("aws_session_token", "session_token", "token"),
    "region": ("region", "aws_region", "aws_default_region"),
    "endpoint_override": ("endpoint", "aws_endpoint", "endpoint_url", "aws_endpoint_url"),
}


def object_filesystem(uri: str, storage_options: Mapping[str, str] | None = None) -> tuple[Any, str]:
    """pyarrow's filesystem for ``uri`` and the path inside it.

    For ``s3://`` the store's ``storage_options`` are taken as LanceDB takes them:
    ``aws_access_key_id``, ``aws_secret_access_key``, ``aws_session_token``, ``region``,
    ``endpoint`` (a local S3-compatible server) and ``allow_http``; without them pyarrow looks
    in the environment, as it does for ``gs://`` and ``az://``.
    """
    import pyarrow.fs as pafs

    scheme, _, path = uri.partition("://")
    options = {key.lower(): str(value) for key, value in (storage_options or {}).items()}
    if scheme.lower() not in {"s3", "s3a"} or not options:
        filesystem, inner = pafs.FileSystem.from_uri(uri)
        return filesystem, inner
    settings: dict[str, Any] = {}
    for name, keys in _S3_KEYS.items():
        value = next((options[key] for key in keys if key in options), None)
        if value is not None:
            settings[name] = value
    endpoint = settings.get("endpoint_override")
    if endpoint is not None and "://" in endpoint:
        settings["scheme"], _, settings["endpoint_override"] = endpoint.partition("://")
    elif options.get("allow_http", "").lower() == "true":
        settings["scheme"] = "http"
    return pafs.S3FileSystem(**settings), path


def _listed(uri: str, storage_options: Mapping[str, str] | None, suffixes: Iterable[str]) -> list[str]:
    """The file ``uri`` names, or every tabular file under the prefix it names (sorted)."""
    import pyarrow.fs as pafs

    filesystem, path = object_filesystem(uri, storage_options)
    scheme = uri.partition("://")[0]
    info = filesystem.get_file_info(path.rstrip("/"))
    if info.type == pafs.FileType.File:
        return [uri]
    if info.type == pafs.FileType.NotFound:
        raise PolyrecError(f"no such object or prefix: {uri} (check the URI and the store's storage_options)")
    selector = pafs.FileSelector(path.rstrip("/"), recursive=True)
    found = sorted(
        f"{scheme}://{entry.path}"
        for entry in filesystem.get_file_info(selector)
        if entry.type == pafs.FileType.File and PurePosixPath(entry.path).suffix.lower() in set(suffixes)
    )
    if not found:
        raise PolyrecError(f"{uri}: no catalog files ({', '.join(sorted(suffixes))}) under it")
    return found


def catalog_files(items: Any, storage_options: Mapping[str, str] | None = None) -> list[str] | None:
    """The catalog files of a path, a directory (every tabular file in it), an object storage
    URI (a file or a prefix) or a list of those; None for in-memory sources (a DataFrame, an
    iterable of items)."""
    from polyrec.engine.readers import TABULAR_SUFFIXES

    if isinstance(items, str | Path):
        items = [items]
    if not isinstance(items, list | tuple) or not all(isinstance(entry, str | Path) for entry in items):
        return None
    files: list[str] = []
    for entry in items:
        if is_object_uri(entry):
            files += _listed(str(entry), storage_options, TABULAR_SUFFIXES)
            continue
        entry = Path(entry)
        if entry.is_dir():
            found = sorted(p for p in entry.rglob("*") if p.is_file() and p.suffix.lower() in TABULAR_SUFFIXES)
            if not found:
                raise PolyrecError(f"{entry}: no catalog files ({', '.join(sorted(TABULAR_SUFFIXES))}) in it")
            files += [str(p.resolve()) for p in found]
        elif entry.exists():
            files.append(str(entry.resolve()))
        else:
            raise PolyrecError(f"no such file or directory: {entry}")
    return files


@contextmanager
def opened_catalog_file(
    path: str, storage_options: Mapping[str, str] | None = None
) -> Iterator[tuple[Path, Path | None]]:
    """A local file to read catalog file ``path`` from, and the folder its relative media paths
    are found in (None for an object: a temporary copy, removed afterwards)."""
    from polyrec.engine.readers import source_dir

    if not is_object_uri(path):
        yield Path(path), source_dir(path)
        return
    filesystem, inner = object_filesystem(path, storage_options)
    with tempfile.TemporaryDirectory(prefix="polyrec-catalog-") as folder:
        local = Path(folder) / PurePosixPath(inner).name  # the suffix tells the reader the format
        with filesystem.open_input_stream(inner) as source, local.open("wb") as target:
            shutil.copyfileobj(source, target, length=1 << 20)
        yield local, None


def check_chunks(assembly: Assembly, chunks: Iterable[ItemChunk]) -> None:
    """The in-process ingest's config-vs-data check (:mod:`polyrec.engine.data_check`) over
    ``chunks``: stops at the first chunk that gives every slot a field, else raises
    :class:`~polyrec.contracts.ConfigError` naming the slot no item fills."""
    from polyrec.engine.data_check import FieldCheck

    check = FieldCheck(assembly.settings, assembly.encoders)
    for chunk in chunks:
        if check.add(chunk.items):
            return
    check.check()


def check_catalog_fields(
    assembly: Assembly, files: list[str], *, block_rows: int, id_column: str, storage_options: Mapping[str, str] | None
) -> None:
    """:func:`check_chunks` on the driver, over the catalog files in order: it reads only until
    every slot found a field (usually the first block); only a catalog where some slot finds
    none is read to its end (as in-process), which costs reading, never encoding."""
    from polyrec.engine.readers import read_items

    def chunks() -> Iterator[ItemChunk]:
        for path in files:
            with opened_catalog_file(path, storage_options) as (local, _):
                yield from read_items(local, chunk_size=block_rows, id_column=id_column)

    reading = chunks()
    try:
        check_chunks(assembly, reading)
    finally:
        reading.close()  # removes the temporary copy of an object it stopped in
