"""Config against data: a slot no item can fill stops ingest at once; many failures end in one line."""

from __future__ import annotations

import pytest
from test_engine_errors import fake_engine

from polyrec.contracts import ConfigError

MOVIES = [
    {"id": "1", "title": "Toy Story", "year": 1995, "genres": ["Animation", "Comedy"]},
    {"id": "2", "title": "Heat", "year": 1995, "genres": ["Action"]},
    {"id": "3", "title": "Fargo", "genres": ["Crime"]},
]


def test_a_config_for_another_schema_stops_before_encoding_naming_the_slot_and_the_fields() -> None:
    engine = fake_engine(
        encoders={"text": {"plugin": "bag-of-words"}, "taste": {"plugin": "behavior"}},
        derived={"text": ["movie_title", "release_year", "class_tokens"]},
    )
    with pytest.raises(ConfigError) as caught:
        engine.ingest(
            MOVIES, chunk_size=2, check_fields=True
        )  # the check reads past the first chunk before it gives up
    assert caught.value.problems == [
        (
            "encoders.text",
            "derived field 'text' draws on movie_title, release_year, class_tokens; none of 3 items has any "
            "of them; item fields: genres, title, year",
        )
    ]
    assert engine.count() == 0


def test_a_plain_field_missing_everywhere_is_named_too() -> None:
    engine = fake_engine(encoders={"plot": {"plugin": "bag-of-words"}})
    with pytest.raises(ConfigError, match=r"encoders.plot: reads field 'plot'; none of 3 items has any of them"):
        engine.ingest(MOVIES, check_fields=True)


def test_a_catalog_file_is_checked_and_a_batch_of_updates_is_not(tmp_path) -> None:
    catalog = tmp_path / "movies.jsonl"
    catalog.write_text("".join(f'{{"id": "{m["id"]}", "title": "{m["title"]}"}}\n' for m in MOVIES))
    engine = fake_engine(
        encoders={"plot": {"plugin": "bag-of-words"}, "text": {"plugin": "bag-of-words", "field": "title"}}
    )
    with pytest.raises(ConfigError, match=r"encoders.plot: reads field 'plot'"):
        engine.ingest(catalog)  # a catalog read from a file: checked by default
    report = engine.ingest(MOVIES[:2])  # a batch of items (as the API posts): an empty slot is normal
    assert report.stored == 2 and engine.count() == 2


def test_fields_on_some_items_run_and_end_with_a_one_line_summary() -> None:
    engine = fake_engine(encoders={"title": {"plugin": "bag-of-words"}})
    items = [{"id": f"t{n}", "title": f"space rocket {n}"} for n in range(6)] + [{"id": f"x{n}"} for n in range(4)]
    report = engine.ingest(items, chunk_size=3)
    assert report.stored == 6 and len(report.failures) == 4
    last = report.summary().splitlines()[-1]
    assert last == (
        "4 of 10 items failed (40%, above 5%): no encodable field: none of the fields […] has a usable value (4)"
    )
    quiet = fake_engine(encoders={"title": {"plugin": "bag-of-words"}}, ingest={"warn_failure_share": 0.5})
    assert quiet.ingest(items).failure_line() is None  # 40% is below the configured 50%
