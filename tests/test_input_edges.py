"""Issue 13, defect 11: inputs the CLI and Python API took that the HTTP API refuses, and an
encoder whose dim is 0. Each is a clear error naming the row or the slot, not a silent 0.0 or a
traceback from deep inside the store."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
from engine_fakes import BUILTINS_USED

from polyrec.contracts import ConfigError, Encoder, Event, hookimpl
from polyrec.engine.cli import main
from polyrec.engine.engine import Engine
from polyrec.engine.plugins import build_plugin_manager


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "polyrec.toml"
    path.write_text('[store]\nplugin = "lancedb"\nuri = "db"\n\n[encoders.title]\nplugin = "sentence-transformers"\n')
    return path


@pytest.mark.parametrize(
    ("cell", "reason"),
    [("inf", "finite"), ("-inf", "finite"), ("nan", "missing or not a number"), ("", "missing or not a number")],
)
def test_polyrec_events_refuses_timestamps_the_api_refuses(
    config: Path, cell: str, reason: str, capsys: pytest.CaptureFixture[str]
) -> None:
    events = config.parent / "events.csv"
    events.write_text(f"user,item,timestamp\nana,a,1.0\nben,b,{cell}\n")
    assert main(["events", str(events), "--config", str(config)]) != 0
    err = capsys.readouterr().err
    assert "row 2" in err and reason in err, err
    with Engine.from_config(config) as engine:
        assert engine.event_count() == 0  # the bad row's chunk went in nowhere


def test_events_from_python_must_be_finite() -> None:
    with pytest.raises(ValueError, match="finite"):
        Event(user="ana", item="a", timestamp=float("inf"))
    with pytest.raises(ValueError, match="finite"):
        Event(user="ana", item="a", value=float("nan"))


class ZeroDimEncoder(Encoder):
    name: ClassVar[str] = "zero-dim"
    modality: ClassVar[str] = "text"

    @property
    def dim(self) -> int:
        return 0

    def encode(self, batch: Sequence[Any]) -> np.ndarray:
        return np.zeros((len(batch), 0), np.float32)


@hookimpl
def register_encoders(register: Any) -> None:
    register(ZeroDimEncoder)


def test_an_encoder_of_dim_0_is_a_config_error_naming_the_slot(tmp_path: Path) -> None:
    manager = build_plugin_manager(
        builtins=BUILTINS_USED, extra=[("zero-dim", sys.modules[__name__])], load_entry_points=False
    )
    config = {
        "store": {"plugin": "lancedb", "uri": str(tmp_path / "db")},
        "encoders": {"title": {"plugin": "zero-dim"}},
    }
    engine = Engine.from_config(config, plugin_manager=manager)
    try:
        with pytest.raises(ConfigError, match=r"encoders\.title.*dim 0"):
            engine.ingest([{"id": "a", "title": "a title"}])
    finally:
        engine.close()
