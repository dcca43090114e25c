"""``matcher``: a filter validated once, then tested against many items, as ``matches`` does."""

from __future__ import annotations

from typing import Any

import pytest

from polyrec.contracts import matcher, matches

ITEMS: list[dict[str, Any]] = [
    {"genre": "jazz", "year": 1999, "tags": ["live", "rare"], "hot": True},
    {"genre": "rock", "year": 2005, "tags": [], "hot": False},
    {"genre": None, "year": 2010},
    {"year": "n/a", "tags": ["live"]},
    {},
]
FILTERS: list[dict[str, Any] | None] = [
    None,
    {},
    {"genre": "jazz"},
    {"genre": {"$ne": "jazz"}},
    {"year": {"$gte": 2000, "$lt": 2010}},
    {"tags": "live"},
    {"tags": {"$ne": "rare"}},
    {"tags": {"$in": ["rare", "x"]}},
    {"hot": True, "year": {"$gt": 1990}},
    {"year": {"$in": [1999, 2010]}},
]


@pytest.mark.parametrize("flt", FILTERS)
def test_a_matcher_agrees_with_matches_on_every_item(flt: dict[str, Any] | None) -> None:
    passes = matcher(flt)
    assert [passes(item) for item in ITEMS] == [matches(item, flt) for item in ITEMS]


def test_a_matcher_selects_what_the_filter_says() -> None:
    assert [passes for passes in map(matcher({"tags": "live"}), ITEMS)] == [True, False, False, True, False]
    assert [passes for passes in map(matcher({"genre": {"$ne": "jazz"}}), ITEMS)] == [False, True, False, False, False]


def test_a_bad_filter_is_refused_when_the_matcher_is_made() -> None:
    with pytest.raises(ValueError, match="unknown operator"):
        matcher({"year": {"$near": 3}})
