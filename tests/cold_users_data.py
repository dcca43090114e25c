"""A generated dataset for the cold-users protocol: users whose attributes drive their tastes.

Items belong to genres and carry text (title and genre). A user's taste is a mix of three
genre preferences: two genres set by their ``occupation``, one by their ``age`` band (both
attributes, so a model can learn them) and one personal genre no attribute reveals (only
their events do). Each event picks a genre from that mix and, within it, an item by a
Zipf-like popularity; events are chronological and no item repeats for a user.

``onboarding > 0`` gives every user's first ``onboarding`` events from the catalog's most
popular items instead, as a sign-up flow that asks new users to rate well-known titles
does (MovieLens' does): the first positions then follow a pattern of their own that has
nothing to do with the user's taste.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from polyrec.contracts import Item
from polyrec.engine.evaluate.dataset import Dataset, events_frame

GENRES = ("drama", "comedy", "horror", "western", "musical", "documentary", "romance", "thriller", "sci-fi", "war")
OCCUPATIONS = ("nurse", "teacher", "engineer", "artist", "farmer", "lawyer")
AGE_BANDS = ((15, 25), (25, 40), (40, 55), (55, 75))
_MIX = {"occupation": 0.45, "age": 0.2, "personal": 0.35}


def generated_dataset(
    users: int = 600,
    items_per_genre: int = 30,
    events_per_user: tuple[int, int] = (12, 40),
    onboarding: int = 0,
    seed: int = 0,
) -> Dataset:
    rng = np.random.default_rng([seed, 2026])
    genre_of = [genre for genre in GENRES for _ in range(items_per_genre)]
    item_ids = [f"item-{number:04d}" for number in range(len(genre_of))]
    items = [
        Item(id=i, fields={"title": f"{g} story {n}", "genres": [g]})
        for n, (i, g) in enumerate(zip(item_ids, genre_of))
    ]
    within = 1.0 / np.arange(1, items_per_genre + 1) ** 0.8  # Zipf-like popularity inside a genre
    within /= within.sum()
    by_genre = {g: np.array([i for i, genre in enumerate(genre_of) if genre == g]) for g in GENRES}
    # occupations and age bands each favour their own genres (a seeded assignment)
    occupation_genres = {o: rng.choice(len(GENRES), size=2, replace=False) for o in OCCUPATIONS}
    age_genre = {band: int(rng.integers(len(GENRES))) for band in AGE_BANDS}
    overall = np.concatenate([within / len(GENRES)] * len(GENRES))  # item shares of a uniform genre mix
    popular = np.argsort(-overall, kind="stable")[: 3 * len(GENRES)]
    rows_user, rows_item, rows_time, attribute_rows = [], [], [], []
    for number in range(users):
        user = f"user-{number:04d}"
        occupation = OCCUPATIONS[int(rng.integers(len(OCCUPATIONS)))]
        band = AGE_BANDS[int(rng.integers(len(AGE_BANDS)))]
        age = int(rng.integers(*band))
        attribute_rows.append({"user_id": user, "age": age, "occupation": occupation})
        taste = np.zeros(len(GENRES))
        taste[occupation_genres[occupation]] += _MIX["occupation"] / 2
        taste[age_genre[band]] += _MIX["age"]
        taste[int(rng.integers(len(GENRES)))] += _MIX["personal"]
        wanted = int(rng.integers(events_per_user[0], events_per_user[1] + 1))
        chosen: list[int] = []
        if onboarding:
            chosen += [int(i) for i in rng.choice(popular, size=onboarding, replace=False)]
        while len(chosen) < wanted:
            genre = GENRES[int(rng.choice(len(GENRES), p=taste))]
            item = int(rng.choice(by_genre[genre], p=within))
            if item not in chosen:
                chosen.append(item)
        stamps = 1_700_000_000 + np.cumsum(rng.uniform(60, 86_400, size=len(chosen)))
        rows_user += [user] * len(chosen)
        rows_item += [item_ids[i] for i in chosen]
        rows_time += stamps.tolist()
    events = events_frame(rows_user, rows_item, rows_time)
    name = f"generated-{users}u" + (f"-onboarding{onboarding}" if onboarding else "")
    return Dataset(name, items, events, users=pd.DataFrame(attribute_rows))
