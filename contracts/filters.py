"""The metadata filter language every store understands.

A filter is a mapping of metadata key to a condition, all of which must hold:

- a plain value: equality (for list-valued metadata: the list contains the value);
- ``{"$eq": v}``, ``{"$ne": v}``, ``{"$gt": v}``, ``{"$gte": v}``, ``{"$lt": v}``, ``{"$lte": v}``;
- ``{"$in": [v, ...]}`` (for list-valued metadata: any element is in the list).

A key missing from an item's metadata fails every condition. :func:`matches` is the
reference semantics; stores may translate filters to their own query language.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["OPERATORS", "validate_filter", "matches"]

OPERATORS: dict[str, Callable[[Any, Any], bool]] = {
    "$eq": operator.eq,
    "$ne": operator.ne,
    "$gt": operator.gt,
    "$gte": operator.ge,
    "$lt": operator.lt,
    "$lte": operator.le,
    "$in": lambda value, allowed: value in allowed,
}


def validate_filter(filter: Mapping[str, Any] | None) -> dict[str, dict[str, Any]]:
    """Normalise a filter to ``{key: {op: value}}``; raise ValueError naming a bad key."""
    normalised: dict[str, dict[str, Any]] = {}
    for key, condition in (filter or {}).items():
        if not isinstance(condition, Mapping):
            condition = {"$eq": condition}
        for op, value in condition.items():
            if op not in OPERATORS:
                raise ValueError(f"filter.{key}: unknown operator {op!r}; known: {', '.join(OPERATORS)}")
            if op == "$in" and not isinstance(value, list | tuple | set):
                raise ValueError(f"filter.{key}: $in needs a list, got {type(value).__name__}")
        normalised[str(key)] = dict(condition)
    return normalised


def _holds(value: Any, op: str, expected: Any) -> bool:
    if isinstance(value, list | tuple):
        if op == "$ne":
            return expected not in value
        return any(_holds(element, op, expected) for element in value)
    try:
        return bool(OPERATORS[op](value, expected))
    except TypeError:
        return False


def matches(metadata: Mapping[str, Any], filter: Mapping[str, Any] | None) -> bool:
    """True when ``metadata`` satisfies every condition of ``filter``."""
    for key, condition in validate_filter(filter).items():
        if key not in metadata or metadata[key] is None:
            return False
        if not all(_holds(metadata[key], op, expected) for op, expected in condition.items()):
            return False
    return True
