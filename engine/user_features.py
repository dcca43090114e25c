"""User attributes as numbers: one small, sparse-ish feature row per user, for any columns.

A users table can hold anything: categories (gender, country), numbers (age, income),
codes (postal codes, phone prefixes), free text (a profile), lists (interests). Each
column is classified once, on the users the model is fitted on, from its values alone:

- ``tokens``: lists; each frequent element is a feature.
- ``number``: nearly all values parse as numbers and there are many distinct ones; the
  value falls into one of up to five quantile bins (a bin is a feature), so no scale or
  linearity is assumed.
- ``text``: strings of several words; each frequent word (lowercased) is a feature.
- ``code``: one-word strings of high cardinality, where few values repeat enough to learn
  from (postal codes, cities); the frequent values and their frequent prefixes (1 to 3
  characters) are features, since codes of that kind are usually hierarchical.
- ``category``: everything else; each frequent value is a feature.

"Frequent" means held by at least ``min_count`` users: a feature fewer users share cannot
be learnt from. A missing value sets no feature of its column. Nothing here knows about
any particular data set.
"""

from __future__ import annotations

import itertools
import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np

from polyrec.contracts import has_value

__all__ = ["ColumnFeatures", "AttributeFeaturizer"]

Kind = Literal["tokens", "number", "text", "code", "category"]

_WORD = re.compile(r"\w+", re.UNICODE)
#: a column is numeric when at least this share of its present values parse as numbers
_NUMERIC_SHARE = 0.9
#: ... and it has more distinct values than this (fewer: a category such as a rating level)
_NUMERIC_DISTINCT = 10
_NUMBER_BINS = 5
#: a string column is text when its values average at least this many words
_TEXT_WORDS = 3.0
#: a one-word column is a code when its frequent values cover less than this share of the users
_CODE_COVERAGE = 0.5
_PREFIXES = (1, 2, 3)
#: digit strings of one fixed length at least this long are codes, not quantities
_CODE_LENGTH = 4
#: features kept per column (the most frequent), so a free-text column cannot explode the model
_MAX_PER_COLUMN = 512


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float | np.integer | np.floating):
        return None if math.isnan(float(value)) else float(value)
    try:
        return float(str(value).strip())
    except ValueError:
        return None


@dataclass
class ColumnFeatures:
    """How one column becomes features: its kind and its vocabulary (or bin edges)."""

    name: str
    kind: Kind
    vocabulary: list[str] = field(default_factory=list)
    edges: list[float] = field(default_factory=list)

    @property
    def size(self) -> int:
        return len(self.edges) + 1 if self.kind == "number" else len(self.vocabulary)

    def labels(self) -> list[str]:
        """Feature names, for explaining a model (``age<24.0``, ``gender=F``, ``zip^85``)."""
        if self.kind == "number":
            bounds = [-math.inf, *self.edges, math.inf]
            return [f"{self.name} in [{low:g}, {high:g})" for low, high in itertools.pairwise(bounds)]
        return [f"{self.name}={token}" for token in self.vocabulary]

    def tokens(self, value: Any) -> list[str]:
        """The tokens of one value that this column's vocabulary is drawn from."""
        if not has_value(value):
            return []
        if self.kind == "tokens":
            items = value if isinstance(value, list | tuple | np.ndarray) else str(value).split()
            return sorted({str(item) for item in items})
        text = str(value).strip()
        if self.kind == "text":
            return sorted({word.lower() for word in _WORD.findall(text)})
        if self.kind == "code":
            return [text, *{f"{text[:length]}^" for length in _PREFIXES if len(text) > length}]
        return [text]

    def positions(self, value: Any, index: Mapping[str, int]) -> list[int]:
        """Column-local feature positions set by ``value``."""
        if self.kind == "number":
            number = _number(value) if has_value(value) else None
            return [] if number is None else [int(np.searchsorted(self.edges, number, side="right"))]
        return [index[token] for token in self.tokens(value) if token in index]


def _classify(name: str, values: Sequence[Any], min_count: int) -> Kind:
    present = [value for value in values if has_value(value)]
    if not present:
        return "category"
    if any(isinstance(value, list | tuple | np.ndarray) for value in present):
        return "tokens"
    texts = [str(value).strip() for value in present]
    numbers = [_number(value) for value in present]
    parsed = [number for number in numbers if number is not None]
    numeric = len(parsed) >= _NUMERIC_SHARE * len(present) and len(set(parsed)) > _NUMERIC_DISTINCT
    if numeric and not _digit_code(present, texts):
        return "number"
    if np.mean([len(_WORD.findall(text)) for text in texts]) >= _TEXT_WORDS:
        return "text"
    counts = Counter(texts)
    covered = sum(count for count in counts.values() if count >= min_count)
    return "code" if covered < _CODE_COVERAGE * len(texts) else "category"


def _digit_code(present: Sequence[Any], texts: Sequence[str]) -> bool:
    """Digits written as strings of one fixed length, or with leading zeros: a code (postal,
    area), whose leading digits mean something and whose size does not."""
    if not all(isinstance(value, str) for value in present):
        return False
    lengths = {len(text) for text in texts}
    leading_zero = any(len(text) > 1 and text.startswith("0") for text in texts)
    return leading_zero or (len(lengths) == 1 and min(lengths) >= _CODE_LENGTH)


def _edges(values: Sequence[Any]) -> list[float]:
    numbers = np.array([n for n in (_number(v) for v in values if has_value(v)) if n is not None], dtype=np.float64)
    quantiles = np.quantile(numbers, np.linspace(0, 1, _NUMBER_BINS + 1)[1:-1])
    return sorted({float(edge) for edge in quantiles})


def _vocabulary(column: ColumnFeatures, values: Iterable[Any], min_count: int) -> list[str]:
    counts: Counter[str] = Counter()
    for value in values:
        counts.update(column.tokens(value))
    frequent = [(token, count) for token, count in counts.items() if count >= min_count]
    frequent.sort(key=lambda pair: (-pair[1], pair[0]))
    return sorted(token for token, _ in frequent[:_MAX_PER_COLUMN])


class AttributeFeaturizer:
    """Turns attribute mappings into float32 feature rows; fitted once, saved as JSON."""

    def __init__(self, columns: Sequence[ColumnFeatures]) -> None:
        self.columns = list(columns)
        self._indices = [{token: i for i, token in enumerate(column.vocabulary)} for column in self.columns]
        self._offsets = np.cumsum([0, *(column.size for column in self.columns)]).tolist()

    @classmethod
    def fit(
        cls, rows: Sequence[Mapping[str, Any]], *, columns: Sequence[str] | None = None, min_count: int = 5
    ) -> AttributeFeaturizer:
        """Classify every column (or the given ones) on ``rows`` and collect their vocabularies."""
        names = list(columns) if columns is not None else sorted({name for row in rows for name in row})
        fitted = []
        for name in names:
            values = [row.get(name) for row in rows]
            column = ColumnFeatures(name, _classify(name, values, min_count))
            if column.kind == "number":
                column.edges = _edges(values)
            else:
                column.vocabulary = _vocabulary(column, values, min_count)
            if column.size:
                fitted.append(column)
        return cls(fitted)

    @property
    def size(self) -> int:
        return int(self._offsets[-1])

    def labels(self) -> list[str]:
        return [label for column in self.columns for label in column.labels()]

    def transform(self, rows: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """``(len(rows), size)`` float32 rows of 0/1 features (missing columns set nothing)."""
        matrix = np.zeros((len(rows), self.size), dtype=np.float32)
        for r, row in enumerate(rows):
            for column, index, offset in zip(self.columns, self._indices, self._offsets):
                for position in column.positions(row.get(column.name), index):
                    matrix[r, offset + position] = 1.0
        return matrix

    def to_json(self) -> list[dict[str, Any]]:
        return [asdict(column) for column in self.columns]

    @classmethod
    def from_json(cls, data: Sequence[Mapping[str, Any]]) -> AttributeFeaturizer:
        return cls([ColumnFeatures(**dict(column)) for column in data])
