"""The shipped MovieLens configs read ml-100k the same from RecBole, u.data/u.item and ratings/movies.csv."""

from __future__ import annotations

from pathlib import Path

import pytest
from movielens_formats import ML100K, write_grouplens_100k, write_grouplens_latest

from polyrec.engine.evaluate.loaders import load_dataset
from polyrec.engine.evaluate.runner import read_evaluation_config
from polyrec.engine.evaluate.splits import make_split

pytestmark = pytest.mark.data

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "examples" / "movielens").glob("*.toml"))


@pytest.fixture(scope="module")
def three_formats(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    if not (ML100K / "ml-100k.inter").is_file():
        pytest.skip(f"MovieLens-100k not found at {ML100K}")
    root = tmp_path_factory.mktemp("movielens")
    return {
        "recbole": load_dataset(ML100K),
        "u.data": load_dataset(write_grouplens_100k(root / "ml-100k-grouplens")),
        "ratings.csv": load_dataset(write_grouplens_latest(root / "ml-100k-latest")),
    }


def _pairs(dataset, rows) -> list[tuple[str, str]]:
    frame = dataset.events.iloc[rows]
    return list(zip(frame["user"], frame["item"]))


@pytest.mark.parametrize("config", CONFIGS, ids=lambda path: path.name)
def test_the_same_config_gives_the_same_item_texts(three_formats, config: Path) -> None:
    settings = read_evaluation_config(config).settings
    assert settings.derived, f"{config.name} has no derived text field"
    texts = {
        name: {item.id: settings.with_derived_fields(item.fields).get("text") for item in dataset.items}
        for name, dataset in three_formats.items()
    }
    assert texts["recbole"]["1"] == "title: Toy Story\nyear: 1995\ngenres: Animation, Children's, Comedy"
    assert sum(text is None for text in texts["recbole"].values()) == 0
    assert texts["u.data"] == texts["recbole"]
    assert texts["ratings.csv"] == texts["recbole"]


def test_the_same_split_and_users(three_formats) -> None:
    splits = {name: make_split(dataset, "loo-full") for name, dataset in three_formats.items()}
    reference, data = splits["recbole"], three_formats["recbole"]
    for name in ("u.data", "ratings.csv"):
        split, dataset = splits[name], three_formats[name]
        assert _pairs(dataset, split.train) == _pairs(data, reference.train)
        assert _pairs(dataset, split.test.targets) == _pairs(data, reference.test.targets)
        assert _pairs(dataset, split.valid.targets) == _pairs(data, reference.valid.targets)
    users = three_formats["recbole"].users
    assert users is not None and len(users) == 943
    assert three_formats["u.data"].users.equals(users)  # u.user reads like the .user file
    assert three_formats["ratings.csv"].users is None  # the latest releases have no users file
