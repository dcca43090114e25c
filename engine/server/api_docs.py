"""The API docs at ``/docs`` (Swagger UI) and ``/redoc`` (ReDoc), served from the app itself.

FastAPI's default pages load their scripts from a CDN, so offline they are blank. The same
pages here load Swagger UI's and ReDoc's files from the ``fastapi-offline`` package (a PyPI
package that ships those two projects' release files; we use only its files, not its code),
mounted at ``/static/docs-assets``. The OpenAPI schema documents the error body every 4xx answer
really has (:class:`ErrorOut`), instead of FastAPI's default 422 shape.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field

__all__ = ["ASSETS_URL", "ErrorOut", "FieldErrorOut", "assets_dir", "install_api_docs"]

#: under /static/, which needs no API key (see auth.py); mounted before /static itself
ASSETS_URL = "/static/docs-assets"
_ASSET_FILES = ("swagger-ui-bundle.js", "swagger-ui.css", "redoc.standalone.js")


class FieldErrorOut(BaseModel):
    field: str = Field(description="the request part to blame, as a path: items[3].id, k, body")
    message: str


class ErrorOut(BaseModel):
    """The body of every 4xx and 5xx answer."""

    error: str = Field(description="a code: bad_request, not_found, payload_too_large, invalid_request, ...")
    detail: str = Field(description="a message for people")
    errors: list[FieldErrorOut] | None = Field(default=None, description="one entry per field to blame, if any")


#: status -> when an operation documents it
_ERRORS = {
    400: "invalid input the schema cannot catch (unknown filter field, unknown slot, bad item)",
    404: "the user, item or field does not exist",
    413: "the body or the uploaded file is larger than the server allows",
    422: "the request does not match the schema; `errors` names each field",
}


def assets_dir() -> Path | None:
    """The folder with Swagger UI's and ReDoc's files, or None when fastapi-offline is not installed."""
    spec = importlib.util.find_spec("fastapi_offline")
    if spec is None or spec.origin is None:
        return None
    folder = Path(spec.origin).parent / "static"
    return folder if all((folder / name).is_file() for name in _ASSET_FILES) else None


def install_api_docs(app: FastAPI) -> None:
    """Add ``/docs`` and ``/redoc`` (create the app with ``docs_url=None, redoc_url=None``)
    and the documented error responses. Without the asset package the pages say how to get it."""
    folder = assets_dir()
    if folder is not None:
        app.mount(ASSETS_URL, StaticFiles(directory=folder), name="docs-assets")
    openapi_url = app.openapi_url or "/openapi.json"

    @app.get("/docs", include_in_schema=False)
    def swagger_ui() -> HTMLResponse:
        if folder is None:
            return _missing_assets()
        return get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{app.title} - API docs",
            swagger_js_url=f"{ASSETS_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS_URL}/swagger-ui.css",
            swagger_favicon_url="/static/favicon.svg",
        )

    @app.get("/redoc", include_in_schema=False)
    def redoc() -> HTMLResponse:
        if folder is None:
            return _missing_assets()
        return get_redoc_html(
            openapi_url=openapi_url,
            title=f"{app.title} - API reference",
            redoc_js_url=f"{ASSETS_URL}/redoc.standalone.js",
            redoc_favicon_url="/static/favicon.svg",
            with_google_fonts=False,
        )

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
            app.openapi_schema = document_errors(schema)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _missing_assets() -> HTMLResponse:
    text = (
        "<!doctype html><title>API docs</title><p>The API docs need the <code>fastapi-offline</code> package "
        "(part of <code>polyrec[serve]</code>): <code>pip install fastapi-offline</code>. "
        'The schema itself is at <a href="/openapi.json">/openapi.json</a>.</p>'
    )
    return HTMLResponse(text, status_code=503)


def document_errors(schema: dict[str, Any]) -> dict[str, Any]:
    """Every operation answers errors as :class:`ErrorOut`: 422 and 400 always, 404 with a path
    parameter, 413 with a request body. FastAPI's own 422 models are dropped."""
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    for model in (FieldErrorOut, ErrorOut):
        model_schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        model_schema.pop("$defs", None)  # FieldErrorOut is a component of its own
        components[model.__name__] = model_schema
    for name in ("HTTPValidationError", "ValidationError"):
        components.pop(name, None)
    reference = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorOut"}}}
    for path, operations in schema.get("paths", {}).items():
        for operation in operations.values():
            statuses = [400, 422]
            if "{" in path:
                statuses.append(404)
            if "requestBody" in operation:
                statuses.append(413)
            responses = operation.setdefault("responses", {})
            for status in sorted(statuses):
                existing = responses.get(str(status), {})
                description = existing.get("description") or _ERRORS[status]
                if status == 422:
                    description = _ERRORS[422]
                responses[str(status)] = {"description": description, "content": reference}
    return schema
