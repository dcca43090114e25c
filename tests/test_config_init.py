"""``polyrec init``: configs inferred from catalogs made here, checked and run end to end."""

from __future__ import annotations

import json
import wave
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from polyrec.engine.cli import main
from polyrec.engine.config_init import infer_config, profile_column

WORDS = ["red", "quiet", "fast", "garden", "river", "coffee", "wooden", "ancient", "bright", "soft", "metal", "glass"]


def _odd_catalog(count: int = 40, seed: int = 0) -> pd.DataFrame:
    """Odd column names, missing values, mixed types."""
    rng = np.random.default_rng(seed)
    rows = []
    for number in range(count):
        rows.append(
            {
                "Product Code": f"P-{number:04d}",
                "Name (EN)": " ".join(rng.choice(WORDS, size=2)).title() + f" {number}",
                "long desc": " ".join(rng.choice(WORDS, size=8)) if number % 7 else None,
                "Price €": round(float(rng.uniform(1, 90)), 2) if number % 5 else None,
                "colour": rng.choice(["red", "blue", 3]) if number % 4 else None,  # mixed: strings and a number
                "added": f"2024-0{1 + number % 9}-1{number % 10}",
                "shop_link": f"https://example.com/p/{number}",
            }
        )
    return pd.DataFrame(rows)


def _odd_events(catalog: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    codes = catalog["Product Code"].tolist()
    rows = []
    for user in range(30):
        taste = rng.choice(len(codes), size=6, replace=False)
        for step, index in enumerate(taste):
            rows.append({"Customer Nr": f"c{user}", "sku": codes[index], "When": 1_700_000_000 + 3600 * (user + step)})
            rows.append({"Customer Nr": f"c{user}", "sku": codes[(index + 1) % len(codes)], "When": 1_700_000_100})
    frame = pd.DataFrame(rows)
    frame["Stars"] = rng.integers(1, 6, size=len(frame))
    return frame


def test_columns_are_profiled_by_their_values(tmp_path: Path) -> None:
    assert profile_column("t", ["Toy Story", "GoldenEye", "Heat"]).kind == "text"
    assert profile_column("d", ["a long description of a thing", "another one of those here"]).kind == "text"
    assert profile_column("g", [["Comedy", "Drama"], ["Action"], []]).kind == "tags"
    assert profile_column("n", [1, 2.5, "3", None]).kind == "number"
    assert profile_column("c", ["red", "blue", "red", "red", "blue", "red"]).kind == "category"
    assert profile_column("u", ["https://a.org/x", "https://a.org/y"]).kind == "link"
    assert profile_column("e", [None, float("nan"), ""]).kind == "empty"
    assert profile_column("p", ["img/a.JPG", "img/b.png"]).kind == "image"
    # no extension: the files' first bytes decide
    (tmp_path / "one").write_bytes(b"RIFF\x00\x00\x00\x00WAVEfmt ")
    (tmp_path / "two").write_bytes(b"RIFF\x00\x00\x00\x00WAVEfmt ")
    assert profile_column("s", ["one", "two"], tmp_path).kind == "audio"


def test_an_odd_catalog_with_events_gets_a_config_that_runs(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    catalog, events = tmp_path / "catalog.csv", tmp_path / "clicks.csv"
    frame = _odd_catalog()
    frame.to_csv(catalog, index=False)
    _odd_events(frame).to_csv(events, index=False)
    config = tmp_path / "conf" / "polyrec.toml"
    assert main(["init", str(catalog), "--events", str(events), "-o", str(config)]) == 0
    printed = capsys.readouterr().out
    assert "columns.item_id = 'Product Code'" in printed and "columns.user = 'Customer Nr'" in printed
    text = config.read_text()
    assert 'item_id = "Product Code"' in text and 'item = "sku"' in text and 'timestamp = "When"' in text
    assert 'value = "Stars"' in text
    result = infer_config(catalog, events, config_dir=config.parent)
    assert result.config["derived"]["text"] == ["Name (EN)", "long desc"]
    assert set(result.config["encoders"]) == {"text", "behavior"}
    assert result.config["scorer"]["plugin"] == "mlp"
    kinds = {p.name: p.kind for p in result.profiles}
    assert kinds["Price €"] == "number" and kinds["added"] == "date" and kinds["shop_link"] == "link"
    answer = _run_end_to_end(config, catalog, events, None, "c1", capsys)
    assert answer["fallback"] is None and len(answer["results"]) == 10


def test_without_o_the_config_goes_to_stdout(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    catalog = tmp_path / "items.jsonl"
    rows = [{"id": str(i), "title": f"{WORDS[i % 12]} thing {i}", "kind": "x" if i % 2 else "y"} for i in range(20)]
    catalog.write_text("".join(json.dumps(row) + "\n" for row in rows))
    assert main(["init", str(catalog)]) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith("# Written by `polyrec init") and "[encoders.text]" in captured.out
    assert 'plugin = "target-attention"' in captured.out
    assert "kind: metadata for filters" in captured.err


def _write_png(path: Path, value: int) -> None:
    from PIL import Image

    Image.fromarray(np.full((16, 16, 3), value, dtype=np.uint8)).save(path, format="PNG")


def _write_wav(path: Path, frequency: float) -> None:
    samples = (0.3 * np.sin(2 * np.pi * frequency * np.arange(8000) / 16000) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(16000)
        handle.writeframes(samples.tobytes())


def test_media_columns_get_their_encoders_even_without_extensions(tmp_path: Path) -> None:
    (tmp_path / "media").mkdir()
    rows = []
    for number in range(6):
        _write_png(tmp_path / "media" / f"pic{number}", 40 * number)
        _write_wav(tmp_path / "media" / f"snd{number}.wav", 200.0 + 50 * number)
        rows.append(
            {
                "id": f"i{number}",
                "title": f"thing {number}",
                "pic": f"media/pic{number}",
                "snd": f"media/snd{number}.wav",
            }
        )
    catalog = tmp_path / "c.jsonl"
    catalog.write_text("".join(json.dumps(row) + "\n" for row in rows))
    result = infer_config(catalog, config_dir=tmp_path)
    kinds = {p.name: p.kind for p in result.profiles}
    assert kinds == {"title": "text", "pic": "image", "snd": "audio"}
    assert result.config["encoders"]["snd"] == {"plugin": "librosa", "field": "snd"}
    # an image encoder only with pretrained weights on this machine; otherwise the decision says why not
    assert "pic" in result.config["encoders"] or any(
        line.startswith("pic: images, not encoded") for line in result.decisions
    )


def _run_end_to_end(
    config: Path, data: Path, events: Path | None, users: Path | None, user: str, capsys: pytest.CaptureFixture
) -> dict:
    """config check, ingest, events, users, fit and recommend through the CLI; the recommendation JSON."""
    assert main(["config", "check", str(config)]) == 0
    assert main(["ingest", str(data), "-c", str(config)]) == 0
    if events is not None:
        assert main(["events", str(events), "-c", str(config)]) == 0
    if users is not None:
        assert main(["users", str(users), "-c", str(config)]) == 0
    assert main(["fit", "-c", str(config)]) == 0
    capsys.readouterr()
    assert main(["recommend", "--user", user, "-c", str(config), "--json"]) == 0
    return json.loads(capsys.readouterr().out)


@pytest.mark.data
@pytest.mark.parametrize("layout", ["recbole", "u.data", "ratings.csv"])
def test_movielens_in_every_format(tmp_path: Path, layout: str, capsys: pytest.CaptureFixture) -> None:
    from movielens_formats import ML100K, subset_recbole, write_grouplens_100k, write_grouplens_latest

    if not (ML100K / "ml-100k.inter").is_file():
        pytest.skip(f"MovieLens-100k not found at {ML100K}")
    data = subset_recbole(tmp_path / "ml-small", users=6)  # a few users and their movies: seconds, not minutes
    if layout == "u.data":
        data = write_grouplens_100k(tmp_path / "grouplens", source=data)
    elif layout == "ratings.csv":
        data = write_grouplens_latest(tmp_path / "latest", source=data)
    config = tmp_path / "polyrec.toml"
    assert main(["init", str(data), "-o", str(config)]) == 0
    result = infer_config(data, config_dir=tmp_path)
    assert result.config["derived"] == {"text": ["title", "genres"]}  # the same fields in every format
    assert {p.name: p.kind for p in result.profiles}["year"] == "number"
    assert set(result.config["encoders"]) == {"text", "behavior"} and result.config["scorer"]["plugin"] == "mlp"
    users = data if layout != "ratings.csv" else None  # the latest releases have no users file
    first_user = (tmp_path / "ml-small" / "ml-small.inter").read_text().splitlines()[1].split("\t")[0]
    answer = _run_end_to_end(config, data, data, users, first_user, capsys)
    assert answer["known_user"] and answer["fallback"] is None and len(answer["results"]) == 10


@pytest.mark.slow  # librosa and MiniLM on the quickstart's generated catalog
def test_the_quickstart_catalog_text_images_and_audio(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from polyrec.engine.quickstart.catalog import build_catalog, write_jsonl
    from polyrec.engine.quickstart.categories import select_categories
    from polyrec.engine.quickstart.users import make_events, make_users

    categories = select_categories(3)
    rows = build_catalog(tmp_path, categories, 6, 0, lambda _n: None)
    write_jsonl(tmp_path / "catalog.jsonl", rows)
    names = [c.name for c in categories]
    by_category = {name: [row["id"] for row in rows if row["category"] == name] for name in names}
    events = pd.DataFrame(make_events(make_users(names, 8), by_category))
    events.to_csv(tmp_path / "events.csv", index=False)
    config = tmp_path / "polyrec.toml"
    assert (
        main(["init", str(tmp_path / "catalog.jsonl"), "--events", str(tmp_path / "events.csv"), "-o", str(config)])
        == 0
    )
    result = infer_config(tmp_path / "catalog.jsonl", tmp_path / "events.csv", config_dir=tmp_path)
    kinds = {p.name: p.kind for p in result.profiles}
    assert kinds["image"] == "image" and kinds["audio"] == "audio" and kinds["category"] == "category"
    assert result.config["derived"] == {"text": ["title", "description"]}
    assert {"text", "audio", "behavior"} <= set(result.config["encoders"])
    user = str(events["user"].iloc[0])
    answer = _run_end_to_end(config, tmp_path / "catalog.jsonl", tmp_path / "events.csv", None, user, capsys)
    assert answer["fallback"] is None and len(answer["results"]) == 10
