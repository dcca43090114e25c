"""Server limits (batch sizes, body and upload bytes, page sizes, media directories) and
the ASGI middleware that rejects oversized request bodies with 413 before they are parsed.

A body is measured twice: by its ``Content-Length`` header (rejected before a byte is read)
and while it streams in (a chunked body without a length is cut off at the limit). Multipart
bodies (file uploads) may be ``max_upload_bytes`` plus a little room for the form's other
fields (an item's file, ``PUT /items/{id}/files/{field}``: ``max_media_bytes``); every other
body may be ``max_body_bytes``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["MIB", "FORM_OVERHEAD_BYTES", "ServerLimits", "BodySizeLimit", "too_large_message"]

MIB = 1024 * 1024
#: room for the non-file fields of a multipart search form (k, user, filter, ...)
FORM_OVERHEAD_BYTES = 64 * 1024
#: the route that takes an item's file (an image, a sound) as uploaded bytes
ITEM_FILE_PATH = re.compile(r"/items/.+/files/[^/]+")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class ServerLimits(BaseModel):
    """What one request may ask for. Every limit is stated in the 413/422 error that enforces it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_batch_items: int = Field(default=1000, gt=0, description="items or events per POST")
    max_body_bytes: int = Field(default=32 * MIB, gt=0, description="bytes of a JSON request body")
    max_upload_bytes: int = Field(default=10 * MIB, gt=0, description="bytes of an uploaded query file")
    max_k: int = Field(default=1000, gt=0, description="results per query")
    max_page: int = Field(default=1000, gt=0, description="users or events per page")
    max_media_bytes: int = Field(
        default=64 * MIB, gt=0, description="bytes of a media file an item posted to the API may name"
    )
    media_dirs: tuple[Path, ...] = Field(
        default=(),
        description="directories item images are served from (GET /items/{id}/media/{field}) and the only "
        "places media files of items posted to the API may be read from",
    )
    upload_dir: Path | None = Field(
        default=None,
        description="where files uploaded for items (PUT /items/{id}/files/{field}) are kept, by content hash "
        "(default: uploads/ in the store's state folder); one of the media directories",
    )

    def body_limit(self, content_type: str, method: str = "POST", path: str = "") -> tuple[int, str]:
        """The byte limit for a body of ``content_type`` and the name of the setting behind it."""
        if content_type.lower().startswith("multipart/form-data"):
            if method.upper() == "PUT" and ITEM_FILE_PATH.fullmatch(path):
                return self.max_media_bytes + FORM_OVERHEAD_BYTES, "max_media_bytes"
            return self.max_upload_bytes + FORM_OVERHEAD_BYTES, "max_upload_bytes"
        return self.max_body_bytes, "max_body_bytes"


def too_large_message(limit: int, setting: str, what: str = "request body") -> str:
    return f"{what} exceeds the limit of {limit} bytes (server option {setting})"


class _BodyTooLarge(Exception):
    """Raised from ``receive`` once the streamed body passes its limit."""


class BodySizeLimit:
    """Pure ASGI middleware: 413 for bodies over :meth:`ServerLimits.body_limit`."""

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]], limits: ServerLimits) -> None:
        self.app = app
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {key.decode("latin-1").lower(): value.decode("latin-1") for key, value in scope["headers"]}
        limit, setting = self.limits.body_limit(
            headers.get("content-type", ""), scope.get("method", "GET"), scope.get("path", "")
        )
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            await _send_413(send, limit, setting)
            return
        await _Guard(self.app, limit, setting).run(scope, receive, send)


class _Guard:
    """One request: counts received bytes; once over the limit, whatever the app answers becomes a 413."""

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]], limit: int, setting: str) -> None:
        self.app, self.limit, self.setting = app, limit, setting
        self.received = 0
        self.exceeded = False
        self.started = False

    async def run(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def limited_receive() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                self.received += len(message.get("body", b""))
                if self.received > self.limit:
                    self.exceeded = True
                    raise _BodyTooLarge
            return message

        async def guarded_send(message: Message) -> None:
            if self.exceeded:  # the app turned the cut-off body into some error: answer 413 instead
                if message["type"] == "http.response.start" and not self.started:
                    self.started = True
                    await _send_413(send, self.limit, self.setting)
                return
            self.started = self.started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except _BodyTooLarge:
            if not self.started:
                self.started = True
                await _send_413(send, self.limit, self.setting)


async def _send_413(send: Send, limit: int, setting: str) -> None:
    body = json.dumps({"error": "payload_too_large", "detail": too_large_message(limit, setting)}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 413, "headers": headers})
    await send({"type": "http.response.body", "body": body})
