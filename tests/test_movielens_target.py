"""The quality target: the shipped MovieLens config beats RecBole's SASRec by 10%.

``polyrec evaluate`` with ``examples/movielens/polyrec.toml`` (MiniLM text + behavior
vectors, weighted-concat fusion, ``self-attention`` scorer) on MovieLens-100k under
``loo-full`` must reach test NDCG@10 >= 0.114 = 1.10 x 0.1035, RecBole SASRec's test
NDCG@10 on the same split (Hit@10 0.2057, MRR@10 0.0727). Early stopping only sees the
scorer's own hold-out inside the training events; the validation and test cases are
never seen during fit.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from polyrec.engine.evaluate.runner import evaluate

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "ml-100k"
CONFIG = REPO / "examples" / "movielens" / "polyrec.toml"

RECBOLE_SASREC_NDCG10 = 0.1035
TARGET_NDCG10 = round(1.10 * RECBOLE_SASREC_NDCG10, 3)  # 0.114


@pytest.mark.slow
@pytest.mark.data
def test_shipped_config_beats_recbole_sasrec_by_ten_percent(
    monkeypatch: pytest.MonkeyPatch, measured: Callable[[str], None]
) -> None:
    if not (DATA / "ml-100k.inter").is_file():
        pytest.skip(f"MovieLens-100k not found at {DATA} (expected beside the repository, in shared/data)")
    pytest.importorskip("torch", reason="the self-attention scorer needs torch (polyrec[train])")
    pytest.importorskip("sentence_transformers", reason="the text encoder needs polyrec[text]")
    monkeypatch.setenv("HF_HUB_OFFLINE", os.environ.get("HF_HUB_OFFLINE", "1"))

    result = evaluate(CONFIG, DATA, "loo-full", k=(10,))

    test, valid, pop = result["test"], result["valid"], result["baselines"]["pop"]["test"]
    assert test["cases"] == valid["cases"] == 943
    assert result["ingest_failures"] == 0
    summary = (
        f"test Hit@10 {test['hit@10']:.4f} NDCG@10 {test['ndcg@10']:.4f} MRR@10 {test['mrr@10']:.4f}; "
        f"valid NDCG@10 {valid['ndcg@10']:.4f}; timings {result['timings']}"
    )
    measured(f"fit {result['timings']['fit']:.1f} s; {summary}")  # the fit time (issue 12), in the run's summary
    assert test["ndcg@10"] >= TARGET_NDCG10, f"below the target {TARGET_NDCG10}: {summary}"
    assert valid["ndcg@10"] >= TARGET_NDCG10, f"the validation cases should clear it too: {summary}"
    assert test["ndcg@10"] > 2 * pop["ndcg@10"], f"not far above popularity ({pop['ndcg@10']:.4f}): {summary}"
