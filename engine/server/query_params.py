"""Query-string parameters shared by the query routes: ``k`` against its limit and ``filter`` as JSON."""

from __future__ import annotations

import json
from typing import Any

from polyrec.contracts import validate_filter
from polyrec.engine.server.errors import ApiError
from polyrec.engine.server.limits import ServerLimits

__all__ = ["check_k", "parse_filter", "check_filter"]


def check_k(k: int, limits: ServerLimits) -> int:
    if k > limits.max_k:
        raise ApiError(422, f"k: must be at most {limits.max_k} (server option max_k), got {k}", field="k")
    return k


def check_filter(value: Any, field: str = "filter") -> dict[str, Any] | None:
    """A filter mapping checked against the filter language (operators, ``$in`` lists)."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ApiError(400, f"{field}: must be a JSON object, got {type(value).__name__}", field=field)
    try:
        validate_filter(value)
    except ValueError as exc:
        raise ApiError(400, f"{field}: {exc}", field=field) from None
    return value


def parse_filter(text: str | None, field: str = "filter") -> dict[str, Any] | None:
    """``?filter={"genre": "Comedy"}`` as a mapping; 400 naming ``filter`` when it is not one."""
    if text is None or not text.strip():
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ApiError(400, f"{field}: not valid JSON ({exc.msg} at column {exc.colno})", field=field) from None
    except RecursionError:
        raise ApiError(400, f"{field}: the JSON nests too deep", field=field) from None
    return check_filter(value, field)
