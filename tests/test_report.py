"""``polyrec report`` and the report package, on a small engine the tests build.

The engine is real (LanceDB store, target-attention scorer) with the ``bag-of-words`` test
encoder from :mod:`engine_fakes`, registered as an installed plugin so the CLI finds it.
Items carry picture paths relative to the config file: drawn PNGs, one missing file and
one corrupt file.
"""

from __future__ import annotations

import html
import importlib.util
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from polyrec.engine.report.embedding_map import OTHER_COLOUR, PALETTE, group_colours, project, sample_for_map
from polyrec.engine.report.media import IMAGE_SUFFIXES, find_media

for _module in ("lancedb", "matplotlib", "sklearn", "PIL"):
    if importlib.util.find_spec(_module) is None:
        pytest.skip(f"{_module} is not installed", allow_module_level=True)

TOPICS = {
    "space": ("rocket orbit galaxy nebula", (20, 30, 90)),
    "jazz": ("saxophone trumpet swing", (200, 120, 20)),
    "cook": ("pasta sauce kitchen", (30, 150, 60)),
}


def _catalog() -> list[dict[str, Any]]:
    rows = [
        {"id": f"{topic}-{i}", "title": f"{words} {topic}{i}", "topic": topic, "picture": f"pics/{topic}-{i}.png"}
        for topic, (words, _) in TOPICS.items()
        for i in range(6)
    ]
    rows[1]["picture"] = "pics/missing.png"  # space-1: no such file
    rows[2]["picture"] = "pics/corrupt.png"  # space-2: not an image
    rows[3]["title"] = "rocket <script>alert(1)</script> & orbit"  # space-3: must be escaped
    return rows


def _events() -> list[str]:
    alice = [f"alice,space-{i},{10 + i}" for i in range(4)]
    bob = [f"bob,jazz-{i},{20 + i}" for i in range(3)] + [f"bob,cook-{i},{30 + i}" for i in range(2)]
    carol = ["carol,cook-3,40"]
    return alice + bob + carol


@pytest.fixture
def project_dir(tmp_path: Path, fake_distribution: Callable[..., Path]) -> Path:
    from PIL import Image

    fake_distribution("polyrec-engine-fakes", {"engine-fakes": "engine_fakes"}, {})
    root = tmp_path / "project"
    (root / "pics").mkdir(parents=True)
    for row in _catalog():
        topic = row["topic"]
        Image.new("RGB", (300, 200), TOPICS[topic][1]).save(root / "pics" / f"{row['id']}.png")
    (root / "pics" / "corrupt.png").write_bytes(b"this is not a PNG")
    (root / "polyrec.toml").write_text(
        '[store]\nplugin = "lancedb"\nuri = "data"\n\n[encoders.title]\nplugin = "bag-of-words"\n\n'
        '[scorer]\nplugin = "target-attention"\n'
    )
    with (root / "items.jsonl").open("w") as handle:
        handle.writelines(json.dumps(row) + "\n" for row in _catalog())
    (root / "events.csv").write_text("user,item,timestamp\n" + "\n".join(_events()) + "\n")
    from polyrec.engine.engine import Engine

    with Engine.from_config(root / "polyrec.toml") as engine:
        assert engine.ingest(root / "items.jsonl").stored == 18
        engine.add_events(root / "events.csv")
    return root


def _section(page: str, user: str) -> str:
    section = page[page.index(f'id="user-{user}"') :]
    return section[: section.index("</section>")]


def _expected(config: Path, users: list[str], k: int) -> dict[str, tuple[list[str], list[Any]]]:
    from polyrec.engine.engine import Engine

    with Engine.from_config(config) as engine:
        return {user: (engine.retriever.history(user)[0].item_ids, engine.recommend(user, k=k)) for user in users}


def test_report_for_named_users(
    project_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from PIL import Image

    from polyrec.engine.cli import main

    monkeypatch.chdir(tmp_path)  # picture paths resolve against the config's folder, not the cwd
    config = project_dir / "polyrec.toml"
    args = ["report", "--config", str(config), "--users", "alice,bob", "--out", "rep", "--color-by", "topic", "-k", "4"]
    assert main(args) == 0
    assert "report: rep/report.html" in capsys.readouterr().out
    out = tmp_path / "rep"
    page = (out / "report.html").read_text()
    expected = _expected(config, ["alice", "bob"], 4)
    for user, (history, recommendations) in expected.items():
        section = _section(page, user)
        assert re.findall(r'class="card" data-item="([^"]+)"', section) == history
        assert re.findall(r'<tr data-item="([^"]+)">', section) == [rec.item for rec in recommendations]
        weights = [float(w) for w in re.findall(r'data-weight="([0-9.]+)"', section)]
        assert weights == pytest.approx([w.weight for rec in recommendations for w in rec.explanation], abs=1e-4)
        assert f'href="map-{user}.png"' in section and (out / f"map-{user}.png").is_file()
        _check_user_map(section, page, history, recommendations)
    assert {rec.item for rec in expected["alice"][1][:2]} == {"space-4", "space-5"}  # her unseen space items
    alice = _section(page, "alice")
    for item_id in ("space-0", "space-3"):  # pictured items: a thumbnail no larger than 128 px
        card = alice[alice.index(f'data-item="{item_id}"') :]
        thumbnail = re.search(r'<img src="(thumbs/[^"]+\.jpg)"', card[:400])
        assert thumbnail is not None
        with Image.open(out / thumbnail.group(1)) as image:
            assert image.format == "JPEG" and max(image.size) <= 128
    for item_id in ("space-1", "space-2"):  # missing and corrupt pictures: a placeholder, no failure
        card = alice[alice.index(f'data-item="{item_id}"') :]
        assert card[: card.index("</figure>")].count('class="noimg"') == 1
    assert "<script>" not in page and "rocket &lt;script&gt;alert(1)&lt;/script&gt; &amp; orbit" in page
    for topic in TOPICS:
        assert f">{topic}</span>" in page[: page.index('id="user-alice"')]  # the legend
    with Image.open(out / "embedding_map.png") as image:
        assert image.format == "PNG" and image.width >= 600
    # the interactive map: a dot per item with its label as the hover text, nothing fetched
    svg = page[page.index("<svg") : page.index("</svg>")]
    titles = re.findall(r"<title>([^<]+)</title>", svg)
    assert len(titles) == 18 and "pasta sauce kitchen cook0 (cook)" in titles
    assert "http" not in svg.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "score: how well the item matches this history" in page and "largest attention weights" in page
    # the placeholder's initials stay centred: no rule more specific than .noimg sets its display
    css = page[page.index("<style>") : page.index("</style>")]
    assert not re.search(r"\.card \.noimg[^{]*\{[^}]*display", css)


def _check_user_map(section: str, page: str, history: list[str], recommendations: list[Any]) -> None:
    """The user's map is inline SVG, readable as shown: every history item and recommendation
    named by a label beside its mark, in text at least 12 px high, never drawn smaller."""
    from polyrec.engine.report.embedding_map import USER_MAP_WIDTH

    assert '<div class="usermap"><svg' in section
    svg = section[section.index('<div class="usermap"><svg') : section.index("</svg>")]
    width = float(re.search(r'viewBox="0 0 ([0-9.]+) [0-9.]+"', svg).group(1))
    css = page[page.index("<style>") : page.index("</style>")]
    shown = float(re.search(r"\.usermap svg \{[^}]*max-width: ([0-9.]+)px", css).group(1))
    assert width == USER_MAP_WIDTH and shown >= width, "shown at its drawn size or larger: labels not shrunk"
    sizes = [float(size) for size in re.findall(r'<text[^>]*font-size="([0-9.]+)"', svg)]
    assert sizes and min(sizes) >= 12
    tips = re.findall(r"<title>([^<]+)</title>", svg)
    assert len([tip for tip in tips if tip.startswith("history: ")]) == len(history)
    ranked = [tip.split(":")[0] for tip in tips if tip.startswith("recommended #")]
    assert ranked == [f"recommended #{rank}" for rank in range(1, len(recommendations) + 1)]
    history_labels = re.findall(r'<text class="history-label"[^>]*>([^<]+)</text>', svg)
    recommended_labels = re.findall(r'<text class="recommended-label"[^>]*>([^<]+)</text>', svg)
    assert len(history_labels) == len(history) and all(history_labels)
    assert [label.split(".")[0] for label in recommended_labels] == [str(r) for r in range(1, len(recommendations) + 1)]
    for label in history_labels + recommended_labels:
        assert len(html.unescape(label)) <= 32, label  # short enough to sit beside its mark


def test_report_json_names_the_files_and_users(
    project_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from polyrec.engine.cli import main

    out = tmp_path / "rep"
    config = str(project_dir / "polyrec.toml")
    assert main(["report", "-c", config, "--out", str(out), "--map-method", "pca", "-k", "2", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload == {
        "html": str(out / "report.html"),
        "map": str(out / "embedding_map.png"),
        "users": payload["users"],
    }
    assert payload["users"] == ["bob", "alice", "carol"]  # the most active first
    page = Path(payload["html"]).read_text()
    assert [f'id="user-{user}"' in page for user in payload["users"]] == [True] * 3
    assert Path(payload["map"]).is_file()
    assert main(["report", "-c", config, "--out", str(out), "--users", "nobody,alice", "--json", "-k", "1"]) == 0
    assert json.loads(capsys.readouterr().out)["users"] == ["nobody", "alice"]


def test_default_users_are_the_most_active(
    project_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from polyrec.engine.cli import main

    out = tmp_path / "rep"
    assert main(["report", "-c", str(project_dir / "polyrec.toml"), "--out", str(out), "--map-method", "pca"]) == 0
    page = (out / "report.html").read_text()
    assert re.findall(r'<section class="user" id="user-([^"]+)">', page) == ["bob", "alice", "carol"]
    # no --color-by: the category-like field is picked, and the page says which
    assert "coloured by &#x27;topic&#x27;, picked as the catalog&#x27;s category field" in page
    assert 'class="chip"' in _section(page, "bob")
    assert "embedding_map.png" in page


def test_unknown_user_gets_a_labelled_fallback(project_dir: Path, tmp_path: Path) -> None:
    from polyrec.engine.cli import main

    out = tmp_path / "rep"
    assert main(["report", "-c", str(project_dir / "polyrec.toml"), "--users", "nobody", "--out", str(out)]) == 0
    section = _section((out / "report.html").read_text(), "nobody")
    assert "no history in the store" in section and "History, oldest first (0 items)" in section
    assert "fallback:popularity" in section and section.count("<tr data-item=") == 5


def test_bad_arguments_are_usage_errors(project_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from polyrec.engine.cli import main

    config = str(project_dir / "polyrec.toml")
    assert main(["report", "-c", config, "--users", " , "]) == 2
    assert "--users: no user id given" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main(["report", "-c", config, "--users", "alice", "-k", "0"])
    assert exit_info.value.code == 2 and "-k: must be at least 1, got 0" in capsys.readouterr().err


# -- the pieces -------------------------------------------------------------------------------


def _clusters(per_cluster: int = 20, dim: int = 64, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(3, dim))
    labels = np.repeat(np.arange(3), per_cluster)
    return centres[labels] + 0.3 * rng.normal(size=(len(labels), dim)), labels


@pytest.mark.parametrize("method", ["tsne", "pca"])
def test_projection_keeps_clusters_apart(method: str) -> None:
    vectors, labels = _clusters()
    coords = project(vectors, method, seed=1)
    assert coords.shape == (60, 2) and np.isfinite(coords).all()
    distances = np.linalg.norm(coords[:, None] - coords[None], axis=2)
    np.fill_diagonal(distances, np.inf)
    assert (labels[distances.argmin(axis=1)] == labels).mean() == 1.0
    np.testing.assert_allclose(project(vectors, method, seed=1), coords)


def test_projection_of_tiny_and_invalid_inputs() -> None:
    assert project(np.ones((2, 8))).shape == (2, 2)
    assert project(np.random.default_rng(0).normal(size=(5, 8))).shape == (5, 2)  # few points: PCA
    with pytest.raises(ValueError, match="unknown map method 'umap'"):
        project(np.ones((20, 4)), "umap")


def test_map_sample_keeps_the_reported_items() -> None:
    ids = [f"i{n}" for n in range(100)]
    rows = sample_for_map(ids, 10, keep={"i3", "i97"}, seed=2)
    assert len(rows) == 10 and {3, 97} <= set(rows.tolist()) and list(rows) == sorted(rows)
    assert list(sample_for_map(ids, 500)) == list(range(100))


def test_group_colours_by_frequency_then_name() -> None:
    colours = group_colours(["b", "a", "b", None, "c", "a", "b"])
    assert list(colours) == ["b", "a", "c"] and colours["b"] == PALETTE[0]
    many = group_colours([f"g{n:02d}" for n in range(len(PALETTE) + 2)])
    assert list(many.values())[-1] == OTHER_COLOUR


def test_missing_packages_are_named_with_their_extras(monkeypatch: pytest.MonkeyPatch) -> None:
    from polyrec.contracts import PolyrecError
    from polyrec.engine.report.requirements import require

    require("x", {"json": ("json", "core")})  # present: no error
    packages = {"no_such_module_a": ("dist-a", "report"), "json": ("json", "core"), "no_such_b": ("dist-b", "audio")}
    with pytest.raises(PolyrecError, match=r"^x needs dist-a, dist-b: pip install 'polyrec\[audio,report\]'$"):
        require("x", packages)


def test_find_media(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    picture = tmp_path / "a" / "p.JPG"
    picture.write_bytes(b"x")
    roots = [tmp_path / "elsewhere", tmp_path]
    assert find_media({"title": "p.JPG", "img": "a/p.JPG"}, roots, IMAGE_SUFFIXES) == picture.resolve()
    assert find_media({"img": str(picture)}, [], IMAGE_SUFFIXES) == picture.resolve()
    assert find_media({"img": "https://example.com/a/p.JPG", "n": 3}, roots, IMAGE_SUFFIXES) is None
    assert find_media({"img": "a/missing.png"}, roots, IMAGE_SUFFIXES) is None
