"""What every entry point (HTTP API, CLI, Python) accepts as ids, metadata and filters.

The bounds keep one request from hurting everyone else: a 40,000-value ``$in`` list crashed
LanceDB's SQL planner, a 5 MB title held the write lock for 14 s, and every new metadata key
becomes a column of every collection. Ids must be addressable through every route and
printable by the CLI, so control characters are refused; lone surrogates (``"\\ud800"``)
are not Unicode text at all and no store can encode them.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = [
    "MAX_ID_CHARS",
    "MAX_FILTER_KEYS",
    "MAX_IN_VALUES",
    "MAX_FILTER_STRING_CHARS",
    "MAX_FIELDS",
    "MAX_KEY_CHARS",
    "MAX_STRING_CHARS",
    "MAX_LIST_VALUES",
    "MAX_DEPTH",
    "text_problem",
    "id_problem",
    "value_problem",
    "fields_problem",
    "printable",
]

MAX_ID_CHARS = 1024
#: keys per filter, values per ``$in`` list and characters per string in a filter
MAX_FILTER_KEYS = 64
MAX_IN_VALUES = 10_000
MAX_FILTER_STRING_CHARS = 4096
#: fields per item, characters per field name, characters per string value, strings per list value
MAX_FIELDS = 256
MAX_KEY_CHARS = 128
MAX_STRING_CHARS = 65_536
MAX_LIST_VALUES = 1000
MAX_DEPTH = 16

_SURROGATE = re.compile("[\ud800-\udfff]")
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")


def text_problem(text: str) -> str | None:
    """Why ``text`` cannot be stored (a lone surrogate); None when it can."""
    found = _SURROGATE.search(text)
    if found is None:
        return None
    return f"contains a lone surrogate (U+{ord(found.group()):04X} at {found.start()}): not valid Unicode text"


def id_problem(text: str, max_chars: int = MAX_ID_CHARS) -> str | None:
    """Why ``text`` cannot be an id (user or item); None when it can."""
    if not text:
        return "must be a non-empty string"
    if len(text) > max_chars:
        return f"is {len(text)} characters long, more than the limit of {max_chars}"
    if (problem := text_problem(text)) is not None:
        return problem
    found = _CONTROL.search(text)
    if found is not None:
        return f"contains the control character U+{ord(found.group()):04X} at {found.start()}"
    return None


def value_problem(value: Any, depth: int = 0) -> str | None:
    """Why a field value cannot be stored (too large, too deep, not valid text); None when it can."""
    if depth > MAX_DEPTH:
        return f"nests deeper than the limit of {MAX_DEPTH} levels"
    if isinstance(value, str):
        if len(value) > MAX_STRING_CHARS:
            return f"is {len(value)} characters long, more than the limit of {MAX_STRING_CHARS}"
        return text_problem(value)
    if isinstance(value, list | tuple):
        if len(value) > MAX_LIST_VALUES:
            return f"has {len(value)} values, more than the limit of {MAX_LIST_VALUES}"
        for element in value:
            if (problem := value_problem(element, depth + 1)) is not None:
                return problem
    if isinstance(value, dict):
        if len(value) > MAX_FIELDS:
            return f"has {len(value)} keys, more than the limit of {MAX_FIELDS}"
        for key, element in value.items():
            if (problem := value_problem(key, depth + 1) or value_problem(element, depth + 1)) is not None:
                return problem
    return None


def printable(text: str) -> str:
    """``text`` with lone surrogates as ``\\udxxx`` escapes, so an error naming it can be encoded."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def fields_problem(fields: dict[str, Any]) -> tuple[str | None, str] | None:
    """``(field, reason)`` for an item's fields that cannot be stored (too many, a bad name, a
    value too large or not valid text); None when they can."""
    if len(fields) > MAX_FIELDS:
        return None, f"has {len(fields)} fields, more than the limit of {MAX_FIELDS}"
    for key, value in fields.items():
        name = str(key)
        if len(name) > MAX_KEY_CHARS:
            return printable(name), f"a field name of {len(name)} characters exceeds the limit of {MAX_KEY_CHARS}"
        if (problem := text_problem(name)) is not None:
            return printable(name), f"the field name {problem}"
        if (problem := value_problem(value)) is not None:
            return printable(name), f"the value {problem}"
    return None
