"""Translate the metadata filter language to a LanceDB SQL ``WHERE``.

The ``lancedb`` store keeps, beside each row's metadata JSON, one typed nullable column
per metadata key and value type (:func:`metadata_column`): ``__s`` string, ``__i`` int64,
``__f`` float64, ``__b`` bool, ``__l`` list of strings. :func:`where_clause` turns a
filter of :mod:`polyrec.contracts.filters` into a condition over those columns that
selects exactly the rows :func:`polyrec.contracts.filters.matches` accepts, including
Python's comparison rules across types (``True == 1``, ``3 > 2.5``, ``"7" != 7``) and
ints that float64 cannot hold. Pure string building: no LanceDB or pyarrow import.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

from polyrec.contracts import validate_filter

__all__ = [
    "METADATA_KINDS",
    "NO_MATCH",
    "metadata_column",
    "sql_string",
    "value_kind",
    "where_clause",
]

_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")

METADATA_KINDS = ("s", "i", "f", "b", "l")


def metadata_column(key: str, kind: str) -> str:
    """Name of the typed filter column of metadata ``key`` for values of ``kind``."""
    base = f"m_{key}" if _PLAIN_KEY.fullmatch(key) else "mx_" + key.encode("utf-8").hex()
    return f"{base}__{kind}"


def value_kind(value: Any) -> str | None:
    """The typed-column kind of a metadata value; None for None (stored in no typed column)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "b"
    if isinstance(value, int):
        return "i"
    if isinstance(value, float):
        return "f"
    return "s" if isinstance(value, str) else "l"


# -- filters -> SQL --------------------------------------------------------------------

TRUE, FALSE = "TRUE", "FALSE"
NO_MATCH = FALSE  # what where_clause returns when no row can match
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_SQL_OPS = {"$eq": "=", "$ne": "!=", "$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}
_FLIP_WHEN_ABOVE = {"$gt": ">=", "$gte": ">=", "$lt": "<", "$lte": "<"}  # float(x) > x
_FLIP_WHEN_BELOW = {"$gt": ">", "$gte": ">", "$lt": "<=", "$lte": "<="}  # float(x) < x


def _and(*parts: str) -> str:
    if FALSE in parts:
        return FALSE
    kept = [part for part in parts if part != TRUE]
    return TRUE if not kept else kept[0] if len(kept) == 1 else "(" + " AND ".join(kept) + ")"


def _or(parts: Sequence[str]) -> str:
    if TRUE in parts:
        return TRUE
    kept = [part for part in parts if part != FALSE]
    return FALSE if not kept else kept[0] if len(kept) == 1 else "(" + " OR ".join(kept) + ")"


def sql_string(value: str) -> str:
    """A SQL string literal."""
    return "'" + value.replace("'", "''") + "'"


def _sql_int(value: int) -> str:
    # -2**63 cannot be written as a literal: 2**63 overflows before the minus applies
    return "(-9223372036854775807 - 1)" if value == _INT64_MIN else str(value)


def _sql_float(value: float) -> str:
    if math.isinf(value):
        return "CAST('inf' AS DOUBLE)" if value > 0 else "CAST('-inf' AS DOUBLE)"
    return repr(value)


def _mismatch(op: str) -> str:
    """Python comparisons across incompatible types: ``!=`` holds, the rest do not."""
    return TRUE if op == "$ne" else FALSE


def _number(value: Any) -> int | float | None:
    if isinstance(value, bool):
        return int(value)
    return value if isinstance(value, int | float) else None


def _int_column(column: str, op: str, value: int | float) -> str:
    """``column op value`` for an int64 column, exact for float and out-of-range values."""
    if isinstance(value, float):
        if math.isnan(value):
            return _mismatch(op)
        if math.isinf(value):
            value = _INT64_MAX + 1 if value > 0 else _INT64_MIN - 1
        elif op in ("$eq", "$ne"):
            if not value.is_integer():
                return _mismatch(op)
            value = int(value)
        else:  # n > 2.5 <=> n > 2;  n >= 2.5 <=> n >= 3;  n < 2.5 <=> n < 3;  n <= 2.5 <=> n <= 2
            value = math.floor(value) if op in ("$gt", "$lte") else math.ceil(value)
    if value > _INT64_MAX:
        return TRUE if op in ("$lt", "$lte", "$ne") else FALSE
    if value < _INT64_MIN:
        return TRUE if op in ("$gt", "$gte", "$ne") else FALSE
    return f"{column} {_SQL_OPS[op]} {_sql_int(value)}"


def _float_column(column: str, op: str, value: int | float) -> str:
    """``column op value`` for a float64 column, exact for ints that floats cannot hold."""
    if isinstance(value, float):
        return _mismatch(op) if math.isnan(value) else f"{column} {_SQL_OPS[op]} {_sql_float(value)}"
    try:
        nearest = float(value)
    except OverflowError:
        nearest = math.inf if value > 0 else -math.inf
    if nearest == value:
        return f"{column} {_SQL_OPS[op]} {_sql_float(nearest)}"
    if op in ("$eq", "$ne"):  # no float equals an int it cannot represent
        return _mismatch(op)
    # no float lies strictly between value and its nearest float
    sql_op = (_FLIP_WHEN_ABOVE if nearest > value else _FLIP_WHEN_BELOW)[op]
    return f"{column} {sql_op} {_sql_float(nearest)}"


def _numbers_in(column: str, kind: str, allowed: Sequence[Any]) -> str:
    """The numbers of a ``$in`` list as one ``IN (...)`` (runs of consecutive ints as ranges).

    Not a chain of ``OR``s: LanceDB's planner recurses on one and crashed the process at
    40,000 values; an ``IN`` list is one node, and a range of any length costs one compare.
    """
    numbers = [number for number in map(_number, allowed) if number is not None]
    if kind == "f":
        literals = [
            clause.removeprefix(f"{column} = ") for n in numbers if (clause := _float_column(column, "$eq", n)) != FALSE
        ]
        unique = list(dict.fromkeys(literals))
        return f"{column} IN ({', '.join(unique)})" if unique else FALSE
    return _ints_in(column, sorted(_exact_ints(numbers)))


def _exact_ints(numbers: Sequence[int | float]) -> set[int]:
    """The numbers an int64 column can equal (2.0 is 2; 2.5, NaN and out-of-range ones none)."""
    ints: set[int] = set()
    for number in numbers:
        if isinstance(number, float):
            if not math.isfinite(number) or not number.is_integer():
                continue
            number = int(number)
        if _INT64_MIN <= number <= _INT64_MAX:
            ints.add(number)
    return ints


_MAX_RANGES = 32  # more runs than this: one IN list (each range is an OR branch)


def _ints_in(column: str, ordered: list[int]) -> str:
    runs: list[tuple[int, int]] = []
    for value in ordered:
        if runs and value == runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], value)
        else:
            runs.append((value, value))
    ranges = [(low, high) for low, high in runs if high - low >= 2]
    if len(ranges) > _MAX_RANGES:
        ranges = []
    kept = set(ranges)
    singles = [value for low, high in runs if (low, high) not in kept for value in range(low, high + 1)]
    parts = [f"({column} >= {_sql_int(low)} AND {column} <= {_sql_int(high)})" for low, high in ranges]
    if singles:
        parts.append(f"{column} IN ({', '.join(map(_sql_int, singles))})")
    return _or(parts)


def _typed_condition(column: str, kind: str, op: str, expected: Any) -> str:
    """The condition on one typed column, for rows whose value has that type."""
    if kind == "s":
        if op == "$in":
            strings = [value for value in expected if isinstance(value, str)]
            return f"{column} IN ({', '.join(map(sql_string, strings))})" if strings else FALSE
        return f"{column} {_SQL_OPS[op]} {sql_string(expected)}" if isinstance(expected, str) else _mismatch(op)
    if kind == "l":  # list-valued metadata: any element satisfies the condition, except $ne
        if op == "$in":
            strings = [value for value in expected if isinstance(value, str)]
            return f"array_has_any({column}, make_array({', '.join(map(sql_string, strings))}))" if strings else FALSE
        if not isinstance(expected, str):
            return _mismatch(op)
        literal = sql_string(expected)
        return {
            "$eq": f"array_has({column}, {literal})",
            "$ne": f"NOT array_has({column}, {literal})",
            "$gt": f"array_max({column}) > {literal}",
            "$gte": f"array_max({column}) >= {literal}",
            "$lt": f"array_min({column}) < {literal}",
            "$lte": f"array_min({column}) <= {literal}",
        }[op]
    value_expr = f"CAST({column} AS BIGINT)" if kind == "b" else column  # Python: True == 1
    if op == "$in":
        return _numbers_in(value_expr, kind, list(expected))
    number = _number(expected)
    if number is None:
        return _mismatch(op)
    return (_float_column if kind == "f" else _int_column)(value_expr, op, number)


def where_clause(filter: Mapping[str, Any] | None, columns: set[str]) -> str | None:
    """Translate a filter to a SQL ``WHERE`` over the typed metadata columns.

    ``columns`` are the table's column names. Returns None for no filter and ``"FALSE"``
    when nothing can match. Raises ValueError for an invalid filter.
    """
    conditions = validate_filter(filter)
    if not conditions:
        return None
    clauses = []
    for key, condition in conditions.items():
        typed = [(f"`{metadata_column(key, kind)}`", kind) for kind in METADATA_KINDS]
        typed = [(column, kind) for column, kind in typed if column.strip("`") in columns]
        for op, expected in condition.items():
            # a missing key (no column, or NULL in every typed column) fails every condition
            clauses.append(
                _or(
                    [
                        _and(f"{column} IS NOT NULL", _typed_condition(column, kind, op, expected))
                        for column, kind in typed
                    ]
                )
            )
    return _and(*clauses)
