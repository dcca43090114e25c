"""Dataset loaders on small files the tests write."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from polyrec.contracts import ColumnMapping, PolyrecConfig
from polyrec.engine.evaluate.loaders import load_dataset, load_generic, load_grouplens, load_recbole

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "ml-100k"


def _write_recbole(directory: Path, name: str = "toy") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{name}.inter").write_text(
        "user_id:token\titem_id:token\trating:float\ttimestamp:float\nu1\t10\t4\t300\nu2\t20\t5\t100\nu1\t20\t3\t200\n",
        encoding="utf-8",
    )
    (directory / f"{name}.item").write_text(
        "item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\tscore:float\n"
        "10\tLe Café\t1995\tComedy Film-Noir\t0.5\n"
        "20\tQuiet Night\t\tDrama\t1.5\n",
        encoding="utf-8",
    )
    (directory / f"{name}.user").write_text("user_id:token\tage:token\nu1\t24\nu2\t53\n", encoding="utf-8")
    return directory


def test_recbole_atomic_files(tmp_path: Path) -> None:
    dataset = load_recbole(_write_recbole(tmp_path / "toy"))
    assert dataset.name == "toy"
    assert dataset.item_ids == ["10", "20"]
    first, second = dataset.items
    # MovieLens columns read into the fields every MovieLens reader gives
    assert first.fields == {"title": "Le Café", "year": 1995, "genres": ["Comedy", "Film-Noir"], "score": 0.5}
    assert "year" not in second.fields  # empty value: the field is missing
    # file order, raw timestamps, rating as the value
    assert dataset.events["user"].tolist() == ["u1", "u2", "u1"]
    assert dataset.events["timestamp"].tolist() == [300.0, 100.0, 200.0]
    assert dataset.events["value"].tolist() == [4.0, 5.0, 3.0]
    assert dataset.users is not None and dataset.users["age"].tolist() == ["24", "53"]
    assert dataset.notes == []


def test_other_recbole_datasets_keep_their_column_names(tmp_path: Path) -> None:
    directory = tmp_path / "books"
    directory.mkdir()
    (directory / "books.inter").write_text("user_id:token\titem_id:token\nu1\tb1\n", encoding="utf-8")
    (directory / "books.item").write_text(
        "item_id:token\tbook_title:token_seq\ttags:token_seq\tyear:token\nb1\tA Tale\tsea ships\t1850\n",
        encoding="utf-8",
    )
    (item,) = load_recbole(directory).items
    # token_seq: the text for text encoders and the token list for tag filters; token: kept as written
    assert item.fields == {
        "book_title": "A Tale",
        "book_title_tokens": ["A", "Tale"],
        "tags": "sea ships",
        "tags_tokens": ["sea", "ships"],
        "year": "1850",
    }


def test_recbole_paths_dir_stem_or_inter_file(tmp_path: Path) -> None:
    directory = _write_recbole(tmp_path / "data", name="movies")  # the name differs from the directory
    for path in (directory, directory / "movies", directory / "movies.inter"):
        assert load_dataset(path).name == "movies"


def test_recbole_rejects_a_header_without_types(tmp_path: Path) -> None:
    (tmp_path / "bad.inter").write_text("user_id\titem_id\nu\ti\n", encoding="utf-8")
    with pytest.raises(ValueError, match="user_id"):
        load_recbole(tmp_path / "bad")


def test_events_with_unknown_items_are_noted(tmp_path: Path) -> None:
    directory = _write_recbole(tmp_path / "toy")
    with (directory / "toy.inter").open("a", encoding="utf-8") as handle:
        handle.write("u2\t99\t1\t400\n")
    dataset = load_recbole(directory)
    assert len(dataset.notes) == 1 and "1 events" in dataset.notes[0]


def test_grouplens_100k_files(tmp_path: Path) -> None:
    (tmp_path / "u.data").write_text("1\t2\t5\t881250949\n3\t1\t3\t881250940\n", encoding="latin-1")
    flags_toy = "|".join(["0", "0", "0", "1", "1", "1"] + ["0"] * 13)
    flags_two = "|".join(["0"] * 18 + ["1"])
    (tmp_path / "u.item").write_text(
        f"1|Toy Story (1995)|01-Jan-1995||http://x/toy|{flags_toy}\n2|Cité des enfants (1995)|||http://x/c|{flags_two}\n",
        encoding="latin-1",
    )
    dataset = load_grouplens(tmp_path)
    toy, city = dataset.items
    assert toy.fields["genres"] == ["Animation", "Children's", "Comedy"]
    assert toy.fields["year"] == 1995 and toy.fields["release_date"] == "01-Jan-1995"
    assert toy.fields["title"] == "Toy Story"  # the year is split off, as RecBole's movie_title has it
    assert city.fields["title"] == "Cité des enfants"  # latin-1 decoded
    assert city.fields["genres"] == ["Western"] and city.fields["year"] == 1995  # from the title
    assert dataset.users is None  # no u.user
    assert dataset.events["item"].tolist() == ["2", "1"]
    assert load_dataset(tmp_path).item_ids == ["1", "2"]


def test_grouplens_latest_files(tmp_path: Path) -> None:
    (tmp_path / "ratings.csv").write_text("userId,movieId,rating,timestamp\n7,1,4.5,100\n7,2,3.0,90\n")
    (tmp_path / "movies.csv").write_text(
        'movieId,title,genres\n1,"Heat, The (1995)",Action|Crime\n2,Untitled,(no genres listed)\n'
    )
    dataset = load_dataset(tmp_path)
    heat, untitled = dataset.items
    assert heat.fields == {"title": "Heat, The", "genres": ["Action", "Crime"], "year": 1995}
    assert untitled.fields == {"title": "Untitled", "genres": []}
    assert dataset.events["value"].tolist() == [4.5, 3.0]


def _generic_frames() -> tuple[pd.DataFrame, pd.DataFrame]:
    items = pd.DataFrame({"sku": ["007", "010"], "name": ["Bond", "Ten"], "price": [9.5, None]})
    events = pd.DataFrame(
        {
            "customer": ["c2", "c1", "c1"],
            "sku": ["010", "007", "010"],
            "when": ["2024-01-02T00:00:00Z", "2024-01-01T00:00:00Z", "2024-01-01T00:00:00Z"],
            "qty": [2, 1, 3],
            "action": ["buy", "view", "buy"],
        }
    )
    return items, events


MAPPING = ColumnMapping(item_id="sku", user="customer", item="sku", timestamp="when", value="qty", kind="action")


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
def test_generic_tables_with_a_column_mapping(tmp_path: Path, suffix: str) -> None:
    items, events = _generic_frames()
    for frame, name in ((items, "items"), (events, "events")):
        path = tmp_path / f"{name}{suffix}"
        if suffix == ".csv":
            frame.to_csv(path, index=False)
        elif suffix == ".jsonl":
            path.write_text("".join(json.dumps(row) + "\n" for row in frame.to_dict("records")))
        else:
            frame.to_parquet(path)
    dataset = load_dataset(tmp_path, MAPPING)
    assert dataset.item_ids == ["007", "010"]  # leading zeros survive
    assert dataset.items[0].fields["name"] == "Bond"
    assert "price" not in dataset.items[1].fields  # empty cell: missing field
    assert dataset.events["user"].tolist() == ["c2", "c1", "c1"]
    assert dataset.events["timestamp"].tolist() == [1704153600.0, 1704067200.0, 1704067200.0]
    assert dataset.events["value"].tolist() == [2.0, 1.0, 3.0]
    assert dataset.events["kind"].tolist() == ["buy", "view", "buy"]


def test_generic_missing_column_names_the_mapping(tmp_path: Path) -> None:
    items, events = _generic_frames()
    items.to_csv(tmp_path / "items.csv", index=False)
    events.to_csv(tmp_path / "events.csv", index=False)
    with pytest.raises(ValueError, match=r"'user' \(columns.user\).*\[columns\]"):
        load_generic(tmp_path / "items.csv", tmp_path / "events.csv", ColumnMapping(item_id="sku", item="sku"))


def test_unknown_dataset_layout_says_what_it_looked_for(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="RecBole"):
        load_dataset(tmp_path)


def test_duplicate_item_ids_are_rejected(tmp_path: Path) -> None:
    pd.DataFrame({"id": ["a", "a"]}).to_csv(tmp_path / "items.csv", index=False)
    pd.DataFrame({"user": ["u"], "item": ["a"], "timestamp": [1]}).to_csv(tmp_path / "events.csv", index=False)
    with pytest.raises(ValueError, match="'a' appears more than once"):
        load_dataset(tmp_path)


def test_derived_text_field_from_the_config(tmp_path: Path) -> None:
    """RecBole fields feed a config's [derived] text field ("name: value" lines, tokens joined)."""
    dataset = load_recbole(_write_recbole(tmp_path / "toy"))
    config = PolyrecConfig.model_validate(
        {
            "encoders": {"text": {"plugin": "sentence-transformers"}},
            "derived": {"text": ["title", "year", "genres"]},
        }
    )
    first, second = (config.with_derived_fields(item.fields) for item in dataset.items)
    assert first["text"] == "title: Le Café\nyear: 1995\ngenres: Comedy, Film-Noir"
    assert second["text"] == "title: Quiet Night\ngenres: Drama"  # no year: that line is left out
    assert "text" not in dataset.items[0].fields  # the item itself is untouched


@pytest.mark.data
def test_movielens_100k_recbole_files() -> None:
    if not (DATA / "ml-100k.inter").is_file():
        pytest.skip(f"MovieLens-100k not found at {DATA}")
    dataset = load_dataset(DATA)
    assert dataset.summary() == {
        "name": "ml-100k",
        "items": 1682,
        "users": 943,
        "events": 100_000,
        "source": str(DATA),
    }
    assert dataset.items[0].fields == {
        "title": "Toy Story",
        "year": 1995,
        "genres": ["Animation", "Children's", "Comedy"],
    }
    assert dataset.notes == []
