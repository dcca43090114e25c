"""``POST /search``: a JSON text query, or an uploaded image/audio file (multipart form).

The query goes to the first configured encoder whose ``query_modalities`` take it (or the
slot named by ``field``) and is searched in that encoder's own vector space. An upload is
written to a temporary file with its suffix, so every encoder reads it the way it reads
item files; its modality comes from its content type or file name, never from guessing at
text (a text query that names a file on the server is still text).
"""

from __future__ import annotations

import json
import mimetypes
import tempfile
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData, UploadFile

from polyrec.engine.retrieval import AUDIO_SUFFIXES, IMAGE_SUFFIXES, QueryError
from polyrec.engine.server.context import Context, ServerContext
from polyrec.engine.server.errors import ApiError, validation_errors
from polyrec.engine.server.limits import FORM_OVERHEAD_BYTES, too_large_message
from polyrec.engine.server.query_params import check_filter, check_k, parse_filter
from polyrec.engine.server.results import to_results
from polyrec.engine.server.schemas import SearchIn, SearchOut

__all__ = ["router", "upload_modality"]

router = APIRouter(tags=["search"])
FIELD_FLAG = "field:"

_REQUEST_BODY = {
    "required": True,
    "content": {
        "application/json": {"schema": SearchIn.model_json_schema()},
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "properties": {
                    "file": {"type": "string", "format": "binary", "description": "image or audio query file"},
                    "query": {"type": "string", "description": "text query (instead of a file)"},
                    "k": {"type": "integer", "default": 10},
                    "user": {"type": "string"},
                    "field": {"type": "string"},
                    "filter": {"type": "string", "description": "metadata filter as JSON"},
                    "user_weight": {"type": "number", "default": 0.3},
                    "exclude_seen": {"type": "boolean", "default": True},
                },
            }
        },
    },
}


def upload_modality(upload: UploadFile) -> tuple[str, str]:
    """``(modality, suffix)`` of an uploaded file, from its content type or its name; 415 if neither says."""
    content_type = (upload.content_type or "").split(";")[0].strip().lower()
    suffix = Path(upload.filename or "").suffix.lower()
    if suffix not in IMAGE_SUFFIXES | AUDIO_SUFFIXES:
        suffix = (mimetypes.guess_extension(content_type) or "").lower()
    if content_type.startswith("image/") or suffix in IMAGE_SUFFIXES:
        return "image", suffix if suffix in IMAGE_SUFFIXES else ".img"
    if content_type.startswith("audio/") or suffix in AUDIO_SUFFIXES:
        return "audio", suffix if suffix in AUDIO_SUFFIXES else ".audio"
    raise ApiError(
        415,
        f"file: cannot tell whether {upload.filename or 'the upload'!r} ({content_type or 'no content type'}) "
        "is an image or audio; send an image/* or audio/* content type or a known file suffix",
        field="file",
    )


def _search_in(data: dict[str, Any]) -> SearchIn:
    try:
        return SearchIn.model_validate(data)
    except ValidationError as exc:
        errors = validation_errors(exc.errors(), ("body",))
        detail = "; ".join(f"{error['field']}: {error['message']}" for error in errors)
        raise ApiError(422, detail, field=errors[0]["field"], code="invalid_request", errors=errors) from None


def _form_fields(form: FormData) -> dict[str, Any]:
    """The form's text fields as SearchIn input (``filter`` parsed from JSON)."""
    data: dict[str, Any] = {key: value for key, value in form.items() if isinstance(value, str) and value != ""}
    if "filter" in data:
        data["filter"] = parse_filter(data["filter"])
    return data


async def _upload_bytes(upload: UploadFile, limit: int) -> bytes:
    data = await upload.read(limit + 1)
    if len(data) > limit:
        raise ApiError(413, too_large_message(limit, "max_upload_bytes", "file"), field="file")
    if not data:
        raise ApiError(400, "file: the uploaded file is empty", field="file")
    return data


def _run_search(ctx: ServerContext, query: Any, params: SearchIn, modality: str) -> list[Any]:
    try:
        results = ctx.engine.search(
            query,
            k=params.k,
            user=params.user,
            field=params.field,
            filter=params.filter,
            user_weight=params.user_weight,
            modality=modality,
            exclude_seen=params.exclude_seen,
        )
    except QueryError as exc:  # includes a named slot that does not take this modality
        raise ApiError(400, str(exc), field="field" if params.field else "query") from None
    except ValueError as exc:  # the encoder could not read the query (empty text, undecodable file)
        raise ApiError(400, f"query: {exc}", field="query") from None
    if not results and params.filter:
        ctx.engine.check_filter_fields(params.filter)  # a misspelled key: 400 naming the known fields
    return results


@router.post(
    "/search",
    response_model=SearchOut,
    summary="Search by text, or by an uploaded image/audio file",
    openapi_extra={"requestBody": _REQUEST_BODY},
)
async def search(request: Request, ctx: Context) -> SearchOut:
    """JSON ``{"query": "...", "k": 10}``, or a multipart form with ``file`` (image/audio) or
    ``query`` plus the same optional fields. ``user`` leaves out the items that user has seen
    (unless ``exclude_seen`` is false) and blends in their taste by ``user_weight`` (0: the
    query alone). A filter whose keys no item has is a 400 naming the known fields."""
    content_type = request.headers.get("content-type", "").lower()
    upload: UploadFile | None = None
    if content_type.startswith(("multipart/form-data", "application/x-www-form-urlencoded")):
        form = await request.form(max_files=1, max_fields=16, max_part_size=FORM_OVERHEAD_BYTES)
        file = form.get("file")
        upload = file if isinstance(file, UploadFile) else None
        data = _form_fields(form)
        if upload is not None:
            data.setdefault("query", upload.filename or "upload")
        elif "query" not in data:
            raise ApiError(422, "file: send a file (image or audio) or a text query", field="file")
    elif content_type.startswith("application/json") or not content_type:
        try:
            data = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise ApiError(422, "body: not valid JSON", field="body") from None
        except RecursionError:  # json's parser recurses per level: refuse, do not crash
            raise ApiError(400, "body: the JSON nests too deep", field="body") from None
        if not isinstance(data, dict):
            raise ApiError(422, "body: must be a JSON object with a query", field="body")
    else:
        raise ApiError(
            415, f"body: send application/json or a form (multipart/form-data), not {content_type}", field="body"
        )
    params = _search_in(data)
    check_k(params.k, ctx.limits)
    check_filter(params.filter)
    if upload is None:
        results = await run_in_threadpool(_run_search, ctx, params.query, params, "text")
        return _search_out(ctx, params.query, "text", results)
    modality, suffix = upload_modality(upload)
    payload = await _upload_bytes(upload, ctx.limits.max_upload_bytes)
    results = await run_in_threadpool(_search_file, ctx, payload, suffix, params, modality)
    return _search_out(ctx, params.query, modality, results)


def _search_file(ctx: ServerContext, payload: bytes, suffix: str, params: SearchIn, modality: str) -> list[Any]:
    with tempfile.TemporaryDirectory(prefix="polyrec-query-") as directory:
        path = Path(directory) / f"query{suffix}"
        path.write_bytes(payload)
        return _run_search(ctx, path, params, modality)


def _search_out(ctx: ServerContext, query: str, modality: str, results: list[Any]) -> SearchOut:
    flags = results[0].flags if results else []
    slot = next((flag.removeprefix(FIELD_FLAG) for flag in flags if flag.startswith(FIELD_FLAG)), None)
    return SearchOut(query=query, modality=modality, slot=slot, results=to_results(results, ctx.media, False))
