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

from polyrec.contracts import ComponentConfig, ConfigError, Encoder, Event, hookimpl
from polyrec.engine.cli import main
from polyrec.engine.config_check import check_config
from polyrec.engine.engine import Engine
from polyrec.engine.plugins import build_plugin_manager
from polyrec.engine.registry import Registry


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
    assert main(["events", str(events), "--config", str(config)]) == 0  # the valid row went in
    err = capsys.readouterr().err
    assert "events.csv, line 3: " in err and reason in err, err
    with Engine.from_config(config) as engine:
        assert [event.user for event in engine.events()] == ["ana"]  # the bad row is left out, alone


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


class DeclaredDimConfig(ComponentConfig):
    dim: int = 8  # no lower bound: the config itself lets 0 through


class DeclaredDimEncoder(ZeroDimEncoder):
    name: ClassVar[str] = "declared-dim"
    Config = DeclaredDimConfig


def check(tmp_path: Path, encoder: str, load: bool, store: str = "") -> list[tuple[str, str]]:
    manager = build_plugin_manager(
        builtins=BUILTINS_USED, extra=[("zero-dim", sys.modules[__name__])], load_entry_points=False
    )
    manager.register(DeclaredDimPlugin, "declared-dim")
    path = tmp_path / "polyrec.toml"
    path.write_text(f'[store]\nplugin = "lancedb"\nuri = "db"\n{store}\n[encoders.title]\n{encoder}\n')
    return check_config(path, Registry.from_plugin_manager(manager), load=load).problems


class DeclaredDimPlugin:
    @staticmethod
    @hookimpl
    def register_encoders(register: Any) -> None:
        register(DeclaredDimEncoder)


def test_config_check_sees_a_dim_0_encoder_declared_or_built(tmp_path: Path) -> None:
    assert check(tmp_path, 'plugin = "zero-dim"', load=False) == []  # nothing loaded: it cannot know
    assert check(tmp_path, 'plugin = "zero-dim"', load=True) == [
        ("encoders.title", "plugin 'zero-dim' reports dim 0: its vectors need at least one dimension")
    ]
    problems = check(tmp_path, 'plugin = "declared-dim"\ndim = 0', load=False)  # a declared width: no load
    assert problems == [("encoders.title.dim", "plugin 'declared-dim': dim is 0; vectors need at least one dimension")]
    assert check(tmp_path, 'plugin = "declared-dim"\ndim = 4', load=True) == [
        ("encoders.title", "plugin 'declared-dim' reports dim 0: its vectors need at least one dimension")
    ]
    store = check(tmp_path, 'plugin = "declared-dim"', load=False, store="max_filter_keys = -1")
    assert [key for key, _ in store] == ["store.max_filter_keys"]


def test_config_check_load_from_the_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "polyrec.toml"
    path.write_text('[store]\nplugin = "lancedb"\nuri = "db"\n[encoders.sound]\nplugin = "librosa"\n')
    assert main(["config", "check", "--load", str(path)]) == 0
    assert capsys.readouterr().out.startswith(f"OK {path}")
    assert not (tmp_path / "db").exists()  # the store is not opened
