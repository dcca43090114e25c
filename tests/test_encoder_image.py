"""The open-clip image encoder with real open_clip code and a tiny, randomly initialised model.

No CLIP weights are available offline, so the tests register a tiny architecture with
``open_clip.add_model_config``, save its random weights with ``torch.save`` and load them
back through the encoder's ``checkpoint`` path, the same path real checkpoints take.
"""

from __future__ import annotations

import io
import json
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from polyrec.contracts import ConfigError, Encoder
from polyrec.contracts.testing.encoders import EncoderContract, encode_with_failures
from polyrec.engine.plugins import build_plugin_manager
from polyrec.engine.registry import Registry

open_clip = pytest.importorskip("open_clip", reason="the 'image' extra is not installed")
torch = pytest.importorskip("torch")
skimage_data = pytest.importorskip("skimage.data")
from PIL import Image  # noqa: E402 - after the skips

from polyrec.contracts.media import load_image  # noqa: E402
from polyrec.plugins.encoders.image_open_clip import OpenClipEncoder  # noqa: E402

TINY = "polyrec-tiny-vit-test"
TINY_CONFIG = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 2, "width": 64, "patch_size": 8},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
}


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> str:
    config_file = tmp_path_factory.mktemp("open-clip-configs") / f"{TINY}.json"
    config_file.write_text(json.dumps(TINY_CONFIG))
    open_clip.add_model_config(config_file)
    assert TINY in open_clip.list_models()
    return TINY


def _random_model(name: str, seed: int) -> tuple[Any, Any]:
    torch.manual_seed(seed)
    model, _, preprocess = open_clip.create_model_and_transforms(name, pretrained=None)
    return model.eval(), preprocess


@pytest.fixture(scope="module")
def originals(tiny_model: str, tmp_path_factory: pytest.TempPathFactory) -> dict[int, tuple[Any, Any, Path]]:
    """seed -> (model, preprocess, checkpoint path) of two randomly initialised tiny models."""
    folder = tmp_path_factory.mktemp("checkpoints")
    made = {}
    for seed in (0, 1):
        model, preprocess = _random_model(tiny_model, seed)
        path = folder / f"tiny-seed{seed}.pt"
        torch.save(model.state_dict(), path)
        made[seed] = (model, preprocess, path)
    return made


@pytest.fixture(scope="module")
def encoder(originals: dict[int, tuple[Any, Any, Path]]) -> OpenClipEncoder:
    return OpenClipEncoder(model=TINY, pretrained=None, checkpoint=originals[0][2], device="cpu")


def _jpeg_bytes(array: np.ndarray, **save: Any) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="JPEG", quality=95, **save)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("images")
    coffee = folder / "coffee.png"
    Image.fromarray(skimage_data.coffee()).save(coffee)
    good_jpeg = _jpeg_bytes(skimage_data.chelsea())
    corrupt = folder / "corrupt.jpg"
    corrupt.write_bytes(good_jpeg[: len(good_jpeg) // 2])  # a truncated download
    return {"coffee": coffee, "corrupt": corrupt, "missing": folder / "no-such-image.png"}


class TestOpenClipContract(EncoderContract):
    @pytest.fixture(scope="class", autouse=True)
    @classmethod
    def _material(cls, originals: dict[int, tuple[Any, Any, Path]], files: dict[str, Path]) -> None:
        cls.checkpoint, cls.other_checkpoint = originals[0][2], originals[1][2]
        cls.files = files

    def make_encoder(self) -> Encoder:
        return OpenClipEncoder(model=TINY, pretrained=None, checkpoint=self.checkpoint)

    def make_other_encoder(self) -> Encoder:
        return OpenClipEncoder(model=TINY, pretrained=None, checkpoint=self.other_checkpoint)

    def sample_values(self) -> list[Any]:
        return [
            skimage_data.astronaut(),
            skimage_data.camera(),
            str(self.files["coffee"]),
            _jpeg_bytes(skimage_data.chelsea()),
            Image.fromarray(skimage_data.rocket()),
            skimage_data.logo(),  # RGBA
            skimage_data.astronaut()[::4, ::4].astype(np.float32) / 255.0,
        ]

    def bad_values(self) -> list[Any]:
        return [
            None,
            "",
            b"definitely not an image",
            str(self.files["missing"]),
            self.files["corrupt"],
            np.zeros((8, 8, 2), dtype=np.uint8),
            np.full((8, 8, 3), 2.0),
            {"url": "https://example.com/cat.jpg"},
        ]


def _original_vectors(model: Any, preprocess: Any, images: list[Image.Image]) -> np.ndarray:
    with torch.no_grad():
        pixels = torch.stack([preprocess(image) for image in images])
        return model.encode_image(pixels, normalize=True).numpy()


SKIMAGE_NAMES = ["astronaut", "camera", "coffee", "chelsea", "rocket", "logo", "horse", "immunohistochemistry"]


def test_reloaded_checkpoint_gives_the_original_vectors(
    encoder: OpenClipEncoder, originals: dict[int, tuple[Any, Any, Path]]
) -> None:
    images = [Image.fromarray(getattr(skimage_data, name)()).convert("RGB") for name in ("astronaut", "coffee")]
    ours = encoder.encode([encoder.prepare(image) for image in images])
    model, preprocess, _ = originals[0]
    np.testing.assert_allclose(ours, _original_vectors(model, preprocess, images), atol=1e-6)
    other_model, other_preprocess, _ = originals[1]
    assert not np.allclose(ours, _original_vectors(other_model, other_preprocess, images), atol=1e-3)


def test_skimage_images_round_trip(encoder: OpenClipEncoder) -> None:
    values = [getattr(skimage_data, name)() for name in SKIMAGE_NAMES]
    vectors = encoder.encode([encoder.prepare(value) for value in values])
    assert vectors.shape == (len(values), TINY_CONFIG["embed_dim"]) == (len(values), encoder.dim)
    assert vectors.dtype == np.float32 and np.isfinite(vectors).all()
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert len(np.unique(vectors.round(5), axis=0)) == len(values)


def test_sklearn_sample_images(encoder: OpenClipEncoder) -> None:
    datasets = pytest.importorskip("sklearn.datasets")
    images = datasets.load_sample_images().images
    vectors = encoder.encode([encoder.prepare(image) for image in images])
    assert vectors.shape == (len(images), encoder.dim) and np.isfinite(vectors).all()


def _encode_one(encoder: OpenClipEncoder, value: Any) -> np.ndarray:
    return encoder.encode([encoder.prepare(value)])[0]


def test_colour_modes_become_rgb(encoder: OpenClipEncoder) -> None:
    rgb = skimage_data.chelsea()[::3, ::3]  # smaller copies keep the test quick
    gray = skimage_data.camera()[::3, ::3]
    # opaque RGBA == RGB
    rgba = np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)])
    np.testing.assert_allclose(_encode_one(encoder, rgba), _encode_one(encoder, rgb), atol=1e-6)
    # fully transparent pixels are white, whatever colour they hide
    hidden = np.dstack([rgb, np.zeros(rgb.shape[:2], np.uint8)])
    white = np.full_like(rgb, 255)
    np.testing.assert_allclose(_encode_one(encoder, hidden), _encode_one(encoder, white), atol=1e-6)
    # palette, grayscale, LA, CMYK
    palette = Image.fromarray(rgb).convert("P")
    np.testing.assert_allclose(_encode_one(encoder, palette), _encode_one(encoder, palette.convert("RGB")), atol=1e-6)
    gray_rgb = np.dstack([gray] * 3)
    np.testing.assert_allclose(_encode_one(encoder, gray), _encode_one(encoder, gray_rgb), atol=1e-6)
    np.testing.assert_allclose(
        _encode_one(encoder, Image.fromarray(gray).convert("LA")), _encode_one(encoder, gray_rgb), atol=1e-6
    )
    cmyk = Image.fromarray(rgb).convert("CMYK")
    np.testing.assert_allclose(_encode_one(encoder, cmyk), _encode_one(encoder, cmyk.convert("RGB")), atol=1e-6)
    # float in [0, 1] and bool arrays
    np.testing.assert_allclose(_encode_one(encoder, rgb / 255.0), _encode_one(encoder, rgb), atol=1e-6)
    mask = skimage_data.horse()
    np.testing.assert_allclose(_encode_one(encoder, mask), _encode_one(encoder, mask.astype(np.uint8) * 255), atol=1e-6)


def test_sixteen_bit_grayscale_is_rescaled(encoder: OpenClipEncoder, tmp_path: Path) -> None:
    gray = skimage_data.camera()
    path = tmp_path / "camera16.png"
    Image.fromarray(gray.astype(np.uint16) * 257).save(path)  # 0..65535
    assert Image.open(path).mode.startswith("I")
    np.testing.assert_allclose(_encode_one(encoder, path), _encode_one(encoder, gray), atol=1e-6)


def test_exif_orientation_is_applied(encoder: OpenClipEncoder, tmp_path: Path) -> None:
    pixels = skimage_data.coffee()[::4, ::4]  # 100x150, not square
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 degrees clockwise to display
    path = tmp_path / "rotated.jpg"
    path.write_bytes(_jpeg_bytes(pixels, exif=exif))

    stored = Image.open(path)
    stored.load()
    assert stored.getexif().get(0x0112) == 6
    upright = np.asarray(stored.convert("RGB").transpose(Image.Transpose.ROTATE_270))
    assert load_image(path).size == (upright.shape[1], upright.shape[0])

    from_file = _encode_one(encoder, path)
    np.testing.assert_allclose(from_file, _encode_one(encoder, upright), atol=1e-6)
    np.testing.assert_allclose(from_file, _encode_one(encoder, path.read_bytes()), atol=1e-6)
    np.testing.assert_allclose(from_file, _encode_one(encoder, Image.open(path)), atol=1e-6)
    sideways = np.asarray(stored.convert("RGB"))
    assert not np.allclose(from_file, _encode_one(encoder, sideways), atol=1e-4)


def test_bad_images_fail_per_item_with_reason(encoder: OpenClipEncoder, files: dict[str, Path]) -> None:
    ids = ["good", "missing", "corrupt", "garbage", "also-good", "wrong-type"]
    values = [
        skimage_data.astronaut(),
        str(files["missing"]),
        files["corrupt"],
        b"\x89PNG but not really",
        files["coffee"],
        42,
    ]
    vectors, failures = encode_with_failures(encoder, ids, values)
    assert sorted(vectors) == ["also-good", "good"]
    reasons = {failure.item_id: failure.reason for failure in failures}
    assert reasons["missing"] == f"file not found: {files['missing']}"
    assert reasons["corrupt"].startswith("cannot decode image:") and "truncated" in reasons["corrupt"]
    assert reasons["garbage"].startswith("cannot decode image:")
    assert "got int" in reasons["wrong-type"]
    assert all(failure.plugin == "open-clip" for failure in failures)


def test_encode_query_uses_the_text_tower(
    encoder: OpenClipEncoder, originals: dict[int, tuple[Any, Any, Path]]
) -> None:
    query = encoder.encode_query("a photo of a cat")
    assert query.shape == (encoder.dim,) and query.dtype == np.float32
    assert abs(float(np.linalg.norm(query)) - 1.0) < 1e-5
    model = originals[0][0]
    tokens = open_clip.get_tokenizer(TINY)(["a photo of a cat"])
    with torch.no_grad():
        expected = model.encode_text(tokens, normalize=True)[0].numpy()
    np.testing.assert_allclose(query, expected, atol=1e-6)
    assert not np.allclose(query, encoder.encode_query("a rocket launch"), atol=1e-4)
    with pytest.raises(ValueError, match="must not be empty"):
        encoder.encode_query("   ")


def test_encode_query_with_an_image_matches_encoding_it_as_an_item(
    encoder: OpenClipEncoder, files: dict[str, Path]
) -> None:
    query = encoder.encode_query(files["coffee"])
    expected = encoder.encode([encoder.prepare(files["coffee"])])[0]
    np.testing.assert_array_equal(query, expected)
    np.testing.assert_array_equal(encoder.encode_query(files["coffee"].read_bytes()), expected)
    with pytest.raises(ValueError, match="cannot decode image"):
        encoder.encode_query(b"not an image")


def test_fingerprint_follows_checkpoint_content(
    encoder: OpenClipEncoder, originals: dict[int, tuple[Any, Any, Path]], tmp_path: Path
) -> None:
    fingerprint = encoder.fingerprint
    assert TINY in fingerprint and "checkpoint-sha256=" in fingerprint and "open_clip=" in fingerprint
    copy = tmp_path / "copied.pt"
    shutil.copy(originals[0][2], copy)
    assert OpenClipEncoder(model=TINY, pretrained=None, checkpoint=copy).fingerprint == fingerprint
    assert OpenClipEncoder(model=TINY, pretrained=None, checkpoint=originals[1][2]).fingerprint != fingerprint
    assert OpenClipEncoder(model=TINY, checkpoint=originals[0][2], normalize=False).fingerprint != fingerprint
    assert OpenClipEncoder(model=TINY, checkpoint=originals[0][2], batch_size=2).fingerprint == fingerprint


def test_normalize_false_keeps_direction(encoder: OpenClipEncoder, originals: dict[int, tuple[Any, Any, Path]]) -> None:
    raw = OpenClipEncoder(model=TINY, pretrained=None, checkpoint=originals[0][2], normalize=False)
    images = [encoder.prepare(skimage_data.rocket()), encoder.prepare(skimage_data.coffee())]
    unnormalised = raw.encode(images)
    assert not np.allclose(np.linalg.norm(unnormalised, axis=1), 1.0, atol=1e-3)
    directions = unnormalised / np.linalg.norm(unnormalised, axis=1, keepdims=True)
    np.testing.assert_allclose(directions, encoder.encode(images), atol=1e-5)


def test_content_bytes_are_file_bytes(encoder: OpenClipEncoder, files: dict[str, Path], tmp_path: Path) -> None:
    copy = tmp_path / "same-coffee.png"
    shutil.copy(files["coffee"], copy)
    assert encoder.content_bytes(str(files["coffee"])) == files["coffee"].read_bytes()
    assert encoder.content_bytes(copy) == encoder.content_bytes(files["coffee"])


def test_weights_must_be_named(tiny_model: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="pretrained"):
        OpenClipEncoder(model=tiny_model, pretrained=None).encode([np.zeros((8, 8, 3), np.uint8)])
    with pytest.raises(ConfigError, match="checkpoint file not found"):
        OpenClipEncoder(model=tiny_model, checkpoint=tmp_path / "nope.pt").encode([np.zeros((8, 8, 3), np.uint8)])


def test_unknown_model_is_a_config_error(tiny_model: str) -> None:
    with pytest.raises(ConfigError, match="no-such-architecture"):
        OpenClipEncoder(model="no-such-architecture", pretrained="x").encode([np.zeros((8, 8, 3), np.uint8)])


def test_pretrained_tag_honours_hf_hub_offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    attempts: list[Any] = []

    def refuse(*args: Any, **kwargs: Any) -> None:
        attempts.append(args)
        raise OSError("network disabled by test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))  # an empty cache
    encoder = OpenClipEncoder()  # ViT-B-32 / laion2b_s34b_b79k from the hub
    assert "pretrained=laion2b_s34b_b79k" in encoder.fingerprint
    with pytest.raises(ConfigError, match="laion2b_s34b_b79k"):
        encoder.encode([np.zeros((8, 8, 3), np.uint8)])
    assert attempts == []


def test_registered_through_the_plugin_manager() -> None:
    pm = build_plugin_manager(builtins=["polyrec.plugins.encoders.image_open_clip"], load_entry_points=False)
    registry = Registry.from_plugin_manager(pm)
    assert registry.get("encoder", "open-clip") is OpenClipEncoder
    assert registry.entry("encoder", "open-clip").modality == "image"


def test_module_import_is_lazy() -> None:
    code = (
        "import sys, polyrec.plugins.encoders.image_open_clip as m; "
        "m.OpenClipEncoder(); "
        "heavy = {'torch', 'open_clip', 'PIL'} & set(sys.modules); "
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_a_tag_whose_weights_cannot_be_had_offline_fails_fast_naming_the_slot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The README's open-clip config on a machine without the hub: seconds, not a minute of
    retries, and the error names encoders.poster and the ways out."""
    from huggingface_hub import constants

    from polyrec.engine.engine import Engine

    with socket.socket() as sock:  # a loopback port nobody listens on stands for the unreachable hub
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setattr(constants, "ENDPOINT", f"http://127.0.0.1:{port}")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    Image.new("RGB", (32, 32), (200, 30, 30)).save(tmp_path / "p.png")
    config = {"store": {"plugin": "memory"}, "encoders": {"poster": {"plugin": "open-clip", "field": "poster_path"}}}
    with Engine.from_config(config, base_dir=tmp_path) as engine, pytest.raises(ConfigError) as caught:
        engine.ingest([{"id": "a", "poster_path": str(tmp_path / "p.png")}])
    (key, message), *_ = caught.value.problems
    assert key == "encoders.poster.pretrained"
    assert "not in the local cache and the model hub cannot be reached" in message
    assert "'checkpoint'" in message and "HF_HUB_OFFLINE" in message and 'plugin = "timm"' in message
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # offline by choice: the same advice
    with Engine.from_config(config, base_dir=tmp_path) as engine, pytest.raises(ConfigError) as caught:
        engine.ingest([{"id": "a", "poster_path": str(tmp_path / "p.png")}])
    assert "HF_HUB_OFFLINE is set" in caught.value.problems[0][1]
