"""``/items``: batch upsert, look-up, delete, similar items and item images.

Item ids may contain ``/`` (sent as is or as ``%2F``): the id is a ``path`` parameter, and the
routes with a suffix (``/similar``, ``/media/{field}``) are matched before the bare one. So
an id that itself ends in ``/similar`` cannot be looked up by ``GET /items/{id}``.

A file-valued field (an image, a sound) is either a path inside the media directories in a
``POST /items`` item, or uploaded bytes: ``PUT /items/{id}/files/{field}`` (:mod:`.item_uploads`)."""

from __future__ import annotations

import mimetypes
from typing import Annotated

from fastapi import APIRouter, File, Query, UploadFile
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field, ValidationError
from starlette.concurrency import run_in_threadpool

from polyrec.contracts import Item, ItemFailure
from polyrec.engine.server.catalog import filtered_ids, item_info, item_metadata
from polyrec.engine.server.context import Context, ServerContext
from polyrec.engine.server.errors import ApiError
from polyrec.engine.server.item_files import confine_files
from polyrec.engine.server.item_uploads import keep_upload, upload_suffix
from polyrec.engine.server.limits import ServerLimits, too_large_message
from polyrec.engine.server.query_params import check_k, parse_filter
from polyrec.engine.server.results import to_results
from polyrec.engine.server.schemas import (
    CatalogItemOut,
    CatalogPageOut,
    DeletedOut,
    IngestOut,
    ItemOut,
    ItemsIn,
    SimilarOut,
)

__all__ = ["router", "check_batch"]

router = APIRouter(tags=["items"])


def check_batch(size: int, what: str, limits: ServerLimits) -> None:
    if size > limits.max_batch_items:
        raise ApiError(
            413,
            f"{what}: a batch of {size} exceeds the limit of {limits.max_batch_items} per request "
            "(server option max_batch_items); split it",
            field=what,
        )


@router.post("/items", response_model=IngestOut, summary="Add or update items (batch)")
def upsert_items(body: ItemsIn, ctx: Context) -> IngestOut:
    """Encode, fuse and store the items. Items that fail (bad value, failing encoder) are listed
    in ``failures`` with the item id, field, plugin and reason; the rest are stored."""
    check_batch(len(body.items), "items", ctx.limits)
    items = [Item(id=item.id, fields=item.fields) for item in body.items]
    encoders = ctx.engine.components()["encoders"]
    items, refused = confine_files(items, encoders, ctx.limits.media_dirs, ctx.limits.max_media_bytes)
    with ctx.writes.lock:
        report = ctx.engine.ingest(items) if items else None
    ctx.catalog.forget()
    if report is None:
        return IngestOut(stored=0, unchanged=0, pending=0, failures=refused)
    failures = refused + report.failures
    return IngestOut(stored=report.stored, unchanged=report.unchanged, pending=report.pending, failures=failures)


class ItemFileOut(BaseModel):
    item: str
    field: str
    file: str = Field(description="the stored file's name in the server's upload directory: <sha256><suffix>")
    bytes: int
    stored: int = Field(description="1 if the item was written (new or changed), else 0")
    unchanged: int = Field(description="1 if the item was already stored with the same content")
    pending: int = Field(description="1 if its field vectors wait for a fit of the fusion")
    failures: list[ItemFailure] = Field(description="the item, if it was not stored: field, plugin, reason")


@router.put(
    "/items/{item_id:path}/files/{field}",
    response_model=ItemFileOut,
    summary="Set an item's image or sound from uploaded bytes",
    responses={
        400: {"description": "the field takes no files, or the upload is empty"},
        413: {"description": "the file exceeds max_media_bytes"},
    },
)
async def put_item_file(
    item_id: str,
    field: str,
    ctx: Context,
    file: Annotated[UploadFile, File(description="the file's bytes (multipart form field 'file')")],
) -> ItemFileOut:
    """Store the uploaded file under the server's upload directory (named by its SHA-256), set the
    item's ``field`` to it (its other fields stay as stored; a new item gets this field alone)
    and ingest the item, as ``POST /items`` would. Write scope; at most ``max_media_bytes``."""
    plugin = _file_field_plugin(ctx, field)
    directory = ctx.limits.upload_dir
    if directory is None:
        raise ApiError(409, "this server keeps no uploads (no store state folder; server option upload_dir)")
    limit = ctx.limits.max_media_bytes
    data = await file.read(limit + 1)
    if len(data) > limit:
        raise ApiError(413, too_large_message(limit, "max_media_bytes", "file"), field="file")
    if not data:
        raise ApiError(400, "file: the uploaded file is empty", field="file")
    path = await run_in_threadpool(keep_upload, data, upload_suffix(file.filename, file.content_type), directory)
    return await run_in_threadpool(_ingest_file, ctx, item_id, field, plugin, str(path), len(data))


def _file_field_plugin(ctx: ServerContext, field: str) -> str:
    """The plugin of the usable encoder that reads files from ``field``; 400 if there is none."""
    encoders = ctx.engine.components()["encoders"].values()
    takes = {info["field"]: info["plugin"] for info in encoders if info.get("takes_files") and info["usable"]}
    if field not in takes:
        known = ", ".join(sorted(takes)) or "none"
        raise ApiError(
            400, f"field {field!r}: no configured encoder reads files from it (file fields: {known})", field="field"
        )
    return takes[field]


def _ingest_file(ctx: ServerContext, item_id: str, field: str, plugin: str, path: str, size: int) -> ItemFileOut:
    with ctx.writes.lock:
        fields = dict(item_metadata(ctx.engine, item_id) or {})
        fields[field] = path
        try:
            item = Item(id=item_id, fields=fields)
        except ValidationError as exc:
            raise ApiError(422, f"item_id: {exc.errors()[0]['msg']}", field="item_id") from None
        report = ctx.engine.ingest([item])
    ctx.catalog.forget()
    name = path.rsplit("/", 1)[-1]
    return ItemFileOut(
        item=item_id,
        field=field,
        file=name,
        bytes=size,
        stored=report.stored,
        unchanged=report.unchanged,
        pending=report.pending,
        failures=report.failures,
    )


@router.get("/items", response_model=CatalogPageOut, summary="The catalog, page by page (sorted by id)")
def list_items(
    ctx: Context,
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, description="items per page")] = 24,
    filter: Annotated[str | None, Query(description='metadata filter as JSON, e.g. {"year": {"$gte": 1990}}')] = None,
) -> CatalogPageOut:
    """Items with a fused vector, with their metadata and media URLs (those passing ``filter``)."""
    limit = min(limit, ctx.limits.max_page)
    parsed = parse_filter(filter)
    ids = filtered_ids(ctx.engine, ctx.catalog.ids(ctx.engine), parsed)
    if not ids and parsed:
        ctx.engine.check_filter_fields(parsed)  # a misspelled key: 400 naming the known fields
    page = ids[offset : offset + limit]
    metadata = ctx.engine.item_metadata(page)
    items = [
        CatalogItemOut(item=item, metadata=metadata[item], media=ctx.media.links(item, metadata[item]))
        for item in page
        if item in metadata
    ]
    return CatalogPageOut(items=items, total=len(ids), offset=offset, limit=limit)


@router.get("/items/{item_id:path}/similar", response_model=SimilarOut, summary="Items nearest an item")
def similar_items(
    item_id: str,
    ctx: Context,
    k: Annotated[int, Query(ge=1, description="how many results")] = 10,
    filter: Annotated[str | None, Query(description='metadata filter as JSON, e.g. {"year": {"$gte": 1990}}')] = None,
    diversity: Annotated[float, Query(ge=0.0, le=1.0)] = 0.0,
) -> SimilarOut:
    check_k(k, ctx.limits)
    parsed = parse_filter(filter)
    if not ctx.engine.get_items([item_id]):
        raise ApiError(404, f"item {item_id!r} has no fused vector in the store (ingest it first)", field="item_id")
    results = ctx.engine.similar(item_id, k=k, filter=parsed, diversity=diversity)
    if not results and parsed:
        ctx.engine.check_filter_fields(parsed)  # a misspelled key: 400 naming the known fields
    return SimilarOut(item=item_id, results=to_results(results, ctx.media, explain=False))


@router.get(
    "/items/{item_id:path}/media/{field}",
    response_class=FileResponse,
    summary="An item's image or sound",
    responses={200: {"content": {"image/*": {}, "audio/*": {}}}, 404: {"description": "no servable file"}},
)
def item_media(item_id: str, field: str, ctx: Context) -> FileResponse:
    """The image or audio file an item's ``field`` names, when it lies inside an allowed media directory."""
    metadata = item_metadata(ctx.engine, item_id)
    if metadata is None:
        raise ApiError(404, f"item {item_id!r} is not in the store", field="item_id")
    if field not in metadata:
        raise ApiError(404, f"item {item_id!r} has no field {field!r}", field="field")
    path = ctx.media.resolve(metadata[field])
    if path is None:
        raise ApiError(
            404,
            f"field {field!r} of item {item_id!r} is not an image or audio file inside the allowed media directories",
            field="field",
        )
    media_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    return FileResponse(path, media_type=media_type, headers={"Cache-Control": "max-age=300"})


@router.get("/items/{item_id:path}", response_model=ItemOut, summary="An item's metadata and which fields have vectors")
def get_item(item_id: str, ctx: Context) -> ItemOut:
    info = item_info(ctx.engine, item_id, ctx.media)
    if info is None:
        raise ApiError(404, f"item {item_id!r} is not in the store", field="item_id")
    return info


@router.delete("/items/{item_id:path}", response_model=DeletedOut, summary="Delete an item (its events stay)")
def remove_item(item_id: str, ctx: Context) -> DeletedOut:
    with ctx.writes.lock:
        removed = ctx.engine.delete_items([item_id])
    ctx.catalog.forget()
    if removed == 0:
        raise ApiError(404, f"item {item_id!r} is not in the store", field="item_id")
    return DeletedOut(deleted=item_id, records=removed)
