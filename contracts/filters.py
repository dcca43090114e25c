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

from polyrec.contracts.limits import (
    MAX_FILTER_KEYS,
    MAX_FILTER_STRING_CHARS,
    MAX_IN_VALUES,
    MAX_KEY_CHARS,
    text_problem,
)

__all__ = ["OPERATORS", "validate_filter", "matcher", "matches"]

OPERATORS: dict[str, Callable[[Any, Any], bool]] = {
    "$eq": operator.eq,
    "$ne": operator.ne,
    "$gt": operator.gt,
    "$gte": operator.ge,
    "$lt": operator.lt,
    "$lte": operator.le,
    "$in": lambda value, allowed: value in allowed,
}


def _check_value(value: Any, where: str, nested: bool = False) -> None:
    """A filter value is a scalar or (to compare with list metadata) a list of scalars: no
    deeper nesting, bounded lists, bounded and valid text."""
    if value is None or isinstance(value, bool | int | float):
        return
    if isinstance(value, list | tuple) and not nested:
        if len(value) > MAX_IN_VALUES:
            raise ValueError(f"{where}: a list of {len(value)} values exceeds the limit of {MAX_IN_VALUES}")
        for element in value:
            _check_value(element, where, nested=True)
        return
    if not isinstance(value, str):
        raise ValueError(f"{where}: values must be strings, numbers, booleans or null, got {type(value).__name__}")
    if len(value) > MAX_FILTER_STRING_CHARS:
        raise ValueError(f"{where}: a string of {len(value)} characters exceeds the limit of {MAX_FILTER_STRING_CHARS}")
    if (problem := text_problem(value)) is not None:
        raise ValueError(f"{where}: the value {problem}")


def _check_key(key: Any) -> str:
    text = str(key)
    shown = text[:40].encode("utf-8", "backslashreplace").decode()
    if len(text) > MAX_KEY_CHARS:
        raise ValueError(f"filter key {shown!r}...: {len(text)} characters exceed the limit of {MAX_KEY_CHARS}")
    if (problem := text_problem(text)) is not None:
        raise ValueError(f"filter key {shown!r} {problem}")
    return text


def validate_filter(filter: Mapping[str, Any] | None) -> dict[str, dict[str, Any]]:
    """Normalise a filter to ``{key: {op: value}}``; raise ValueError naming a bad key.

    Bounded (:mod:`polyrec.contracts.limits`): at most ``MAX_FILTER_KEYS`` keys, values are
    scalars (a ``$in`` list of at most ``MAX_IN_VALUES`` of them), strings are valid text of
    bounded length, so no filter can reach a store in a form that hurts it.
    """
    if filter is None:
        return {}
    if not isinstance(filter, Mapping):
        raise ValueError(f"a filter is a mapping of metadata key to condition, got {type(filter).__name__}")
    if len(filter) > MAX_FILTER_KEYS:
        raise ValueError(f"filter: {len(filter)} keys exceed the limit of {MAX_FILTER_KEYS}")
    normalised: dict[str, dict[str, Any]] = {}
    for key, condition in filter.items():
        text = _check_key(key)
        if not isinstance(condition, Mapping):
            condition = {"$eq": condition}
        for op, value in condition.items():
            where = f"filter.{text}"
            if op not in OPERATORS:
                raise ValueError(f"{where}: unknown operator {str(op)[:40]!r}; known: {', '.join(OPERATORS)}")
            if op != "$in":
                _check_value(value, where)
                continue
            if not isinstance(value, list | tuple | set):
                raise ValueError(f"{where}: $in needs a list, got {type(value).__name__}")
            if len(value) > MAX_IN_VALUES:
                raise ValueError(f"{where}: $in lists {len(value)} values, more than the limit of {MAX_IN_VALUES}")
            for element in value:
                _check_value(element, where + ".$in", nested=True)
        normalised[text] = dict(condition)
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
    return matcher(filter)(metadata)


def matcher(filter: Mapping[str, Any] | None) -> Callable[[Mapping[str, Any]], bool]:
    """:func:`matches` with ``filter`` validated once, for testing many items against it
    (validating costs more than testing one item: it checks every key and string)."""
    conditions = [(key, list(condition.items())) for key, condition in validate_filter(filter).items()]

    def holds(metadata: Mapping[str, Any]) -> bool:
        for key, condition in conditions:
            value = metadata.get(key)
            if value is None:  # missing or null: fails every condition
                return False
            if not all(_holds(value, op, expected) for op, expected in condition):
                return False
        return True

    return holds
