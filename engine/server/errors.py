"""HTTP errors: one JSON shape for every 4xx/5xx, and the mapping of polyrec's errors to statuses.

Every error body is ``{"error": code, "detail": message, "errors": [{"field", "message"}]}``
(``errors`` only where fields are to blame), so a client can show ``detail`` and point at
each ``field``. Request validation names the field as a path: ``items[3].id``, ``k``.

Nothing internal reaches a client: a 5xx says what failed (the store, a plugin, the server)
and gives an error id; the full message, with store paths, Rust source paths and exception
names, goes to the log under that id. Absolute paths in 4xx messages become ``<path>``.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from polyrec.contracts import (
    ConfigError,
    ItemError,
    MissingDependencyError,
    NotFittedError,
    PluginError,
    PolyrecError,
    ProvenanceMismatchError,
    StoreError,
    UnknownComponentError,
)

__all__ = [
    "ApiError",
    "api_error_response",
    "polyrec_error_response",
    "field_path",
    "install_error_handlers",
    "public_detail",
    "status_of",
    "validation_errors",
    "without_paths",
]

log = logging.getLogger("polyrec.engine.server")


class ApiError(Exception):
    """An error answered as JSON with ``status``; ``field`` names the request part to blame."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        field: str | None = None,
        code: str | None = None,
        errors: list[dict[str, str]] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.field = status, message, field
        self.code = code or _CODES.get(status, "error")
        self.errors = errors or ([{"field": field, "message": message}] if field else None)


_CODES = {
    400: "bad_request",
    404: "not_found",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid_request",
    500: "internal_error",
    503: "unavailable",
}


def field_path(loc: Sequence[Any]) -> str:
    """``("body", "items", 3, "id")`` -> ``items[3].id``; ``("query", "k")`` -> ``k``."""
    parts = list(loc[1:]) if loc and loc[0] in {"body", "query", "path", "header", "form"} else list(loc)
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "body"


def validation_errors(errors: Sequence[Any], prefix: tuple[str, ...] = ()) -> list[dict[str, str]]:
    """Pydantic errors as ``[{"field": "items[3].id", "message": ...}]``; a body that is not JSON is ``body``."""
    return [
        {"field": "body", "message": f"not valid JSON ({error.get('ctx', {}).get('error', error['msg'])})"}
        if error.get("type") == "json_invalid"
        else {"field": field_path((*prefix, *error["loc"])), "message": error["msg"]}
        for error in errors
    ]


def _body(code: str, detail: str, errors: list[dict[str, str]] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"error": code, "detail": detail}
    if errors:
        body["errors"] = errors
    return body


def status_of(exc: PolyrecError) -> int:
    """The HTTP status for a polyrec error: the client's fault (4xx) or the server's state (409/503)."""
    if isinstance(exc, ProvenanceMismatchError | NotFittedError):
        return 409  # the store or the model state conflicts with the config: an operator must act
    if isinstance(exc, StoreError | MissingDependencyError):
        return 503
    if isinstance(exc, UnknownComponentError | ConfigError | ItemError):
        return 400
    if isinstance(exc, PluginError):
        return 500
    return 400


_ABSOLUTE_PATH = re.compile(r"""(?<![\w.:/])/(?:[^\s'"`,;()]+)""")
_WHAT_FAILED = {StoreError: "the store", MissingDependencyError: "a dependency", PluginError: "a plugin"}


def without_paths(text: str) -> str:
    """``text`` with absolute file paths replaced by ``<path>``."""
    return _ABSOLUTE_PATH.sub("<path>", text)


def _logged(exc: BaseException, what: str) -> str:
    error_id = uuid.uuid4().hex[:12]
    log.error("polyrec server: %s failed (error id %s): %s: %s", what, error_id, type(exc).__name__, exc, exc_info=exc)
    return f"{what} could not complete the request (error id {error_id}; the server log has the details)"


def public_detail(exc: PolyrecError, status: int) -> str:
    """What a client is told about ``exc``: a 5xx names only what failed (details go to the log)."""
    if status >= 500:
        what = next((name for kind, name in _WHAT_FAILED.items() if isinstance(exc, kind)), "the server")
        return _logged(exc, what)
    return without_paths(str(exc))


def _polyrec_errors(exc: PolyrecError) -> list[dict[str, str]] | None:
    if isinstance(exc, ConfigError):
        return [{"field": key or "config", "message": message} for key, message in exc.problems]
    if isinstance(exc, ItemError):
        return [{"field": exc.field or "item", "message": str(exc), "item_id": exc.item_id, "plugin": exc.plugin or ""}]
    if isinstance(exc, UnknownComponentError):
        return [{"field": exc.kind, "message": str(exc)}]
    return None


def api_error_response(exc: ApiError) -> JSONResponse:
    return JSONResponse(_body(exc.code, exc.message, exc.errors), status_code=exc.status)


def polyrec_error_response(exc: PolyrecError) -> JSONResponse:
    status = status_of(exc)
    errors = _polyrec_errors(exc) if status < 500 else None
    return JSONResponse(_body(_CODES.get(status, "error"), public_detail(exc, status), errors), status_code=status)


def install_error_handlers(app: FastAPI) -> None:
    """The handlers answer with :func:`api_error_response` and :func:`polyrec_error_response`,
    which the lean recommend path (:mod:`.fast_recommend`) answers with too."""

    @app.exception_handler(ApiError)
    async def api_error(_: Request, exc: ApiError) -> JSONResponse:
        return api_error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = validation_errors(exc.errors())
        detail = "; ".join(f"{error['field']}: {error['message']}" for error in errors)
        return JSONResponse(_body("invalid_request", detail, errors), status_code=422)

    @app.exception_handler(PolyrecError)
    async def polyrec_error(_: Request, exc: PolyrecError) -> JSONResponse:
        return polyrec_error_response(exc)

    @app.exception_handler(Exception)
    async def unexpected_error(_: Request, exc: Exception) -> JSONResponse:
        # every 500 is the JSON shape too; Starlette still re-raises it to the server's log
        return JSONResponse(_body("internal_error", _logged(exc, "the server")), status_code=500)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        return JSONResponse(
            _body(_CODES.get(exc.status_code, "error"), detail), status_code=exc.status_code, headers=exc.headers
        )
