"""Synthetic users with clear tastes, and the events that show them.

Each user likes one or two categories. A user's events are visits to items of the liked
categories, spread over a few weeks; with probability ``noise`` a visit goes to an item
of another category instead (people do click on other things). The tastes are kept, so
the demo can check its recommendations against the truth that generated the data.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["SyntheticUser", "make_users", "make_events", "taste_precision", "START_TIME"]

#: 2024-01-01T00:00:00Z: event timestamps start here
START_TIME = 1_704_067_200.0
_DAY = 86_400.0


@dataclass(frozen=True)
class SyntheticUser:
    id: str
    likes: tuple[str, ...]


def make_users(categories: Sequence[str], count: int, seed: int = 0) -> list[SyntheticUser]:
    """``count`` users; every category is liked alone by at least one user when count allows,
    and the rest like a random single category or pair."""
    if count < 1:
        raise ValueError(f"users must be at least 1, got {count}")
    rng = np.random.default_rng([seed, 7])
    users = []
    for number in range(count):
        if number < len(categories):
            likes: tuple[str, ...] = (categories[number],)
        elif len(categories) > 1 and rng.random() < 0.5:
            pair = rng.choice(len(categories), size=2, replace=False)
            likes = tuple(categories[int(i)] for i in sorted(pair))
        else:
            likes = (categories[int(rng.integers(len(categories)))],)
        users.append(SyntheticUser(f"user-{number + 1:02d}", likes))
    return users


def make_events(
    users: Sequence[SyntheticUser],
    items_by_category: Mapping[str, Sequence[str]],
    *,
    events_per_user: tuple[int, int] = (8, 12),
    noise: float = 0.05,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """Events ``{user, item, timestamp}``, oldest first per user; no item twice per user."""
    rng = np.random.default_rng([seed, 11])
    everything = [item for items in items_by_category.values() for item in items]
    events = []
    for user in users:
        liked = [item for category in user.likes for item in items_by_category[category]]
        others = [item for item in everything if item not in set(liked)]
        low, high = events_per_user
        wanted = min(int(rng.integers(low, high + 1)), len(liked))
        visits = list(rng.choice(liked, size=wanted, replace=False))
        for position in range(len(visits)):
            if others and rng.random() < noise:
                visits[position] = others[int(rng.integers(len(others)))]
        stamp = START_TIME + rng.uniform(0, 7 * _DAY)
        for item in dict.fromkeys(visits):  # a noisy visit may repeat a liked one: keep the first
            stamp += rng.uniform(0.1, 2.0) * _DAY
            events.append({"user": user.id, "item": str(item), "timestamp": round(stamp, 3)})
    return events


def taste_precision(
    recommended: Mapping[str, Sequence[str]], users: Sequence[SyntheticUser], category_of: Mapping[str, str]
) -> dict[str, float]:
    """Per user: the share of recommended items in a category the user likes (0 for none)."""
    scores = {}
    for user in users:
        items = recommended.get(user.id, [])
        hits = sum(category_of.get(item) in user.likes for item in items)
        scores[user.id] = hits / len(items) if items else 0.0
    return scores
