"""End-to-end evaluation: a real engine (MiniLM, memory store) on a small synthetic catalog,
the CLI and its JSON file, and the harness on MovieLens-100k against RecBole's numbers."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from polyrec.engine.cli import main
from polyrec.engine.evaluate.loaders import load_dataset
from polyrec.engine.evaluate.runner import evaluate, evaluate_baseline

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "ml-100k"

GENRES = ("jazz saxophone", "heavy metal guitar", "baroque harpsichord", "reggae dub")
METRIC_KEYS = {f"{m}@{k}" for m in ("hit", "ndcg", "mrr", "coverage") for k in (10, 20)}


def _write_catalog(directory: Path, users: int = 24, per_user: int = 7, seed: int = 0) -> Path:
    """Items of four styles; every user sticks to one style, so content predicts the next item.

    A few items of *other* styles are made globally popular, so popularity is a poor guide.
    """
    rng = np.random.default_rng(seed)
    items = [
        {"id": f"{g}-{n}", "title": f"{style} piece number {n}", "style": style}
        for g, style in enumerate(GENRES)
        for n in range(12)
    ]
    rows = []
    for user in range(users):
        style = user % len(GENRES)
        own = [f"{style}-{n}" for n in rng.choice(12, size=per_user, replace=False)]
        popular = f"{(style + 1) % len(GENRES)}-0"  # everyone also plays a hit of another style, early on
        sequence = [popular, *own]
        rows += [{"user": f"u{user}", "item": item, "timestamp": 100 * t} for t, item in enumerate(sequence)]
    directory.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(items).to_json(directory / "items.jsonl", orient="records", lines=True)
    pd.DataFrame(rows).to_csv(directory / "events.csv", index=False)
    return directory


def _content_config(tmp_path: Path) -> dict:
    return {
        "store": {"plugin": "lancedb", "uri": str(tmp_path / "lancedb")},
        "derived": {"text": ["title", "style"]},
        "encoders": {"text": {"plugin": "sentence-transformers"}},
        "scorer": {"plugin": "target-attention"},
    }


@pytest.fixture(scope="module")
def catalog(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _write_catalog(tmp_path_factory.mktemp("catalog") / "styles")


def test_content_model_ranks_held_out_items_and_beats_pop(catalog: Path, tmp_path: Path) -> None:
    config = _content_config(tmp_path)
    result = evaluate(config, catalog, "loo-full")
    assert result["protocol"] == "loo-full"
    assert result["dataset"]["items"] == 48 and result["dataset"]["users"] == 24
    for split in ("valid", "test"):
        metrics = result[split]
        assert set(metrics) >= METRIC_KEYS and metrics["cases"] == 24 and metrics["unranked"] == 0
        # the held-out item is one of the 5-6 unseen items of the user's style: top 10 every time
        assert metrics["hit@10"] == 1.0
        assert metrics["ndcg@10"] > 0.3
        assert result["baselines"]["pop"][split]["hit@10"] < 0.7
        masked = 7 if split == "test" else 6  # the history: a popular item + 6 (valid) or 7 (test) own items
        assert result["baselines"]["random"][split]["hit@10"] == pytest.approx(10 / (48 - masked))
    assert set(result["timings"]) == {"split", "ingest", "fit", "evaluate"}
    assert result["ingest_failures"] == 0
    # evaluation used an in-memory store: nothing was written where the config's store lives
    assert result["settings"]["store"] == {"plugin": "memory"}
    assert not (tmp_path / "lancedb").exists()


def test_store_from_config_uses_the_configs_store(catalog: Path, tmp_path: Path) -> None:
    result = evaluate(_content_config(tmp_path), catalog, "loo-full", k=(5,), store_from_config=True)
    assert (tmp_path / "lancedb").exists()
    assert set(result["test"]) == {"hit@5", "ndcg@5", "mrr@5", "coverage@5", "cases", "unranked"}


def test_cold_items_content_model_ranks_items_it_never_saw_in_training(catalog: Path, tmp_path: Path) -> None:
    result = evaluate(_content_config(tmp_path), catalog, "cold-items")
    assert result["valid"] is None and result["held_out_items"] == 10  # 20% of the 48 items with events
    assert result["test"]["cases"] > 0
    assert result["baselines"]["pop"]["test"]["hit@10"] == 0.0  # no training events: pop cannot rank them
    assert result["test"]["hit@10"] > 3 * result["baselines"]["random"]["test"]["hit@10"]


def test_cli_writes_the_json_result(catalog: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out" / "pop.json"
    code = main(["evaluate", "--baseline", "pop", "--dataset", str(catalog), "--output", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "hit@10" in printed and "[test]" in printed and "timings:" in printed
    result = json.loads(out.read_text())
    assert {"valid", "test", "config", "protocol", "dataset", "timings"} <= set(result)
    assert result["config"] == "baseline:pop" and result["protocol"] == "loo-full"
    assert set(result["test"]) >= METRIC_KEYS and set(result["valid"]) >= METRIC_KEYS
    assert {"ingest", "fit", "evaluate"} <= set(result["timings"])
    # everyone played the same hit of another style; pop ranks it first but it is always masked
    assert 0.0 <= result["test"]["hit@10"] <= 1.0
    # --json prints the same result to stdout, like every other command's --json
    assert main(["evaluate", "--baseline", "pop", "--dataset", str(catalog), "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["test"] == result["test"] and printed["config"] == "baseline:pop"


def test_cli_evaluates_a_config_file(catalog: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "content.toml"
    config.write_text(
        '[derived]\ntext = ["title", "style"]\n\n'
        '[encoders.text]\nplugin = "sentence-transformers"\n\n'
        '[scorer]\nplugin = "target-attention"\n\n'
        f'[dataset]\npath = "{Path(os.path.relpath(catalog, tmp_path)).as_posix()}"\n'
    )
    out = tmp_path / "content.json"
    assert main(["evaluate", "--config", str(config), "--protocol", "loo-full", "--output", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["config"] == str(config)
    assert result["test"]["hit@10"] == 1.0
    captured = capsys.readouterr()
    assert "ingest:" in captured.err and "fit:" in captured.err and "evaluate:" in captured.err


def test_cli_reports_bad_input_with_exit_code_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["evaluate", "--baseline", "pop", "--dataset", str(tmp_path)]) == 2
    assert "no dataset found" in capsys.readouterr().err
    bad = tmp_path / "bad.toml"
    bad.write_text('[encoders.text]\nplugin = "sentence-transformer"\n')
    assert main(["evaluate", "--config", str(bad), "--dataset", str(tmp_path)]) == 2
    assert "encoders.text.plugin" in capsys.readouterr().err


def _movielens() -> Path:
    if not (DATA / "ml-100k.inter").is_file():
        pytest.skip(f"MovieLens-100k not found at {DATA}")
    return DATA


@pytest.mark.data
def test_pop_on_movielens_lands_on_recboles_pop_row() -> None:
    """RecBole 1.2.1 Pop on ml-100k, loo-full, test: Hit@10 0.0838, NDCG@10 0.0435, MRR@10 0.0313.

    The remaining gap comes from 5 users whose split differs (RecBole's reduced-precision
    timestamps) and from tie handling; both are worth at most a few held-out items.
    """
    result = evaluate_baseline("pop", load_dataset(_movielens()), "loo-full")
    test = result["test"]
    assert test["cases"] == 943
    assert test["hit@10"] == pytest.approx(0.0838, abs=0.004)
    assert test["ndcg@10"] == pytest.approx(0.0435, abs=0.002)
    assert test["mrr@10"] == pytest.approx(0.0313, abs=0.002)


@pytest.mark.slow
@pytest.mark.data
def test_content_only_config_ranks_cold_movies_that_pop_cannot(tmp_path: Path) -> None:
    """examples/movielens/content-only.toml (MiniLM on title + year + genres, target-attention,
    nothing trained) on ml-100k's cold-items protocol: 941 users' held-out movies never seen in
    training. Pop cannot rank them at all; content must do clearly better than chance."""
    data = load_dataset(_movielens())
    out = tmp_path / "content-cold.json"
    config = REPO / "examples" / "movielens" / "content-only.toml"
    assert main(["evaluate", "--config", str(config), "--protocol", "cold-items", "--output", str(out)]) == 0
    result = json.loads(out.read_text())
    test, pop, chance = result["test"], result["baselines"]["pop"]["test"], result["baselines"]["random"]["test"]
    assert test["cases"] == 941 and test["unranked"] == 0 and result["ingest_failures"] == 0
    assert result["dataset"]["items"] == len(data.items)
    assert pop["hit@10"] == 0.0
    assert test["hit@10"] >= 5 * chance["hit@10"]  # the bar: 5x random ranking
    assert test["ndcg@10"] > 3 * chance["ndcg@10"]
