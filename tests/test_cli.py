"""The polyrec CLI: plugins listing, config check, version, subcommand wiring, light imports."""

from __future__ import annotations

import argparse
import importlib
import json
import os
import subprocess
import sys
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path

import pytest

from polyrec.engine.cli import SUBCOMMANDS, build_parser, main

HEAVY_MODULES = (
    "torch",
    "torchvision",
    "lancedb",
    "lance",
    "ray",
    "open_clip",
    "librosa",
    "sentence_transformers",
    "transformers",
)

# A real plugin distribution with one component of each kind, so these tests do not
# depend on which built-ins are installed.
CLI_PLUGIN = """
from typing import ClassVar
from pathlib import Path

import numpy as np

from polyrec.contracts import ComponentConfig, Encoder, Fusion, Scored, Scorer, VectorStore, hookimpl


class VowelConfig(ComponentConfig):
    dim: int = 5


class VowelEncoder(Encoder):
    name: ClassVar[str] = "vowels"
    modality: ClassVar[str] = "text"
    Config = VowelConfig

    @property
    def dim(self):
        return self.config.dim

    def encode(self, batch):
        return np.array([[text.count(v) for v in "aeiou"[: self.dim]] for text in batch], dtype=np.float32)


class FirstFusion(Fusion):
    name: ClassVar[str] = "first"

    @property
    def dim(self):
        return next(iter(self.field_dims.values()))

    def fuse(self, fields, present):
        return next(iter(fields.values()))


class LastScorer(Scorer):
    name: ClassVar[str] = "last"

    def score(self, history, candidate_ids, candidates):
        weights = np.zeros((len(candidate_ids), len(history)), dtype=np.float32)
        weights[:, -1] = 1
        return Scored(candidates @ history.vectors[-1], weights)


class ShelfConfig(ComponentConfig):
    path: Path = Path("shelf")


class ShelfStore(VectorStore):
    name: ClassVar[str] = "shelf"
    Config = ShelfConfig

    def open(self, collection, *, dim, provenance):
        raise NotImplementedError

    def events(self):
        raise NotImplementedError


@hookimpl
def register_encoders(register):
    register(VowelEncoder)


@hookimpl
def register_fusions(register):
    register(FirstFusion)


@hookimpl
def register_scorers(register):
    register(LastScorer)


@hookimpl
def register_stores(register):
    register(ShelfStore)
"""

VALID_CONFIG = """
[store]
plugin = "shelf"

[encoders.title]
plugin = "vowels"
dim = 3

[fusion]
plugin = "first"

[scorer]
plugin = "last"
"""


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("POLYREC_STRICT_PLUGINS", "POLYREC_DISABLE_PLUGINS", "POLYREC_NO_ENTRY_POINTS"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def cli_plugin(fake_distribution: Callable[..., Path]) -> Path:
    return fake_distribution("cli-test-plugin", {"cli_test": "cli_test_plugin"}, {"cli_test_plugin": CLI_PLUGIN}, "3.1")


@pytest.fixture
def broken_plugin(fake_distribution: Callable[..., Path]) -> Path:
    source = "import polyrec_missing_dependency  # not installed anywhere\n"
    return fake_distribution("cli-broken-plugin", {"cli_broken": "cli_broken_plugin"}, {"cli_broken_plugin": source})


def test_version_option(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["--version"])
    assert caught.value.code == 0
    assert capsys.readouterr().out == f"polyrec {version('polyrec')}\n"


def test_no_command_prints_usage_and_fails(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "usage: polyrec" in capsys.readouterr().err


def test_unknown_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["recomend"])
    assert caught.value.code == 2
    assert "invalid choice: 'recomend'" in capsys.readouterr().err


@pytest.mark.usefixtures("cli_plugin", "broken_plugin")
def test_plugins_table_lists_components_and_failures(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plugins"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].split() == ["NAME", "KIND", "MODALITY", "PLUGIN", "DISTRIBUTION", "VERSION"]
    assert ["vowels", "encoder", "text", "cli_test", "cli-test-plugin", "3.1"] in [line.split() for line in lines]
    assert ["shelf", "store", "cli_test", "cli-test-plugin", "3.1"] in [line.split() for line in lines]
    failures = out[out.index("failed to load and were skipped") :]
    reason = "ModuleNotFoundError: No module named 'polyrec_missing_dependency'"
    assert ["cli_broken", "cli-broken-plugin", *reason.split()] in [line.split() for line in failures.splitlines()]


@pytest.mark.usefixtures("cli_plugin", "broken_plugin")
def test_plugins_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plugins", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert {
        "name": "first",
        "kind": "fusion",
        "modality": "",
        "plugin": "cli_test",
        "distribution": "cli-test-plugin",
        "version": "3.1",
    } in report["components"]
    assert {
        "plugin": "cli_broken",
        "distribution": "cli-broken-plugin",
        "error": "ModuleNotFoundError: No module named 'polyrec_missing_dependency'",
    } in report["failures"]


def test_plugins_reports_a_name_clash_as_an_error(
    fake_distribution: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    fake_distribution("clash-a", {"clash_a": "cli_clash_a"}, {"cli_clash_a": CLI_PLUGIN})
    fake_distribution("clash-b", {"clash_b": "cli_clash_b"}, {"cli_clash_b": CLI_PLUGIN})
    assert main(["plugins"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("polyrec: error: ")
    assert "is registered by both" in err and "'clash_a'" in err and "'clash_b'" in err


@pytest.mark.usefixtures("cli_plugin")
def test_config_check_ok_prints_the_slots(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "polyrec.toml"
    path.write_text(VALID_CONFIG)
    assert main(["config", "check", str(path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"OK {path}"
    assert [line.split() for line in lines[1:]] == [
        ["store", "shelf", f"path={tmp_path / 'shelf'}"],  # anchored at the config's directory
        ["encoders.title", "vowels", "field=title", "modality=text", "dim=3"],
        ["fusion", "first"],
        ["scorer", "last"],
    ]


@pytest.mark.usefixtures("cli_plugin", "broken_plugin")
def test_config_check_invalid_prints_each_problem_and_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "polyrec.yaml"
    path.write_text("encoders:\n  title: {plugin: vowel, dims: 3}\nstore: {plugin: shelf, paht: x}\n")
    assert main(["config", "check", str(path)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert lines[:2] == [
        f"invalid config {path}: 2 problems",
        "  store.paht: unknown parameter 'paht' for store plugin 'shelf'; did you mean 'path'? known: path",
    ]
    unknown_plugin = "  encoders.title.plugin: unknown encoder plugin 'vowel'; did you mean 'vowels'? known: "
    assert lines[2].startswith(unknown_plugin)
    assert "vowels" in lines[2].removeprefix(unknown_plugin).split(", ")
    # the plugin that failed to load may be the reason a name is unknown: say so
    assert any(line.startswith("  (note: plugin 'cli_broken'") for line in lines[3:])


@pytest.mark.usefixtures("cli_plugin")
def test_config_check_reports_every_problem_in_one_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A wrong top-level key, a wrong parameter, an unknown plugin and a fusion weight naming no
    slot: all four at once (each used to hide the ones after it), in text and in JSON."""
    path = tmp_path / "polyrec.toml"
    path.write_text(
        '[store]\nplugin = "shelf"\npaht = "x"\n'
        '[encoders.title]\nplugin = "vowels"\n[encoders.body]\nplugin = "vowel"\n'
        '[fusion]\nplugin = "weighted-concat"\nweights = { titel = 1.0 }\n'
        "[retrieval]\ncandidate = 5\n"
    )
    assert main(["config", "check", str(path)]) == 2
    err = capsys.readouterr().err
    keys = ["retrieval.candidate", "store.paht", "encoders.body.plugin", "fusion.weights.titel"]
    assert err.splitlines()[0] == f"invalid config {path}: 4 problems", err
    assert [line.split(":")[0].strip() for line in err.splitlines()[1:5]] == keys
    assert "did you mean 'title'?" in err
    assert main(["config", "check", "--config", str(path), "--json"]) == 2
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is False and [p["key"] for p in report["problems"]] == keys
    path.write_text(VALID_CONFIG)
    assert main(["config", "check", "--json", "-c", str(path)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is True and report["problems"] == [] and report["slots"]["fusion"]["plugin"] == "first"


def test_config_check_reports_a_missing_checkpoint_where_the_run_would_look(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "conf" / "polyrec.toml"
    path.parent.mkdir()
    path.write_text(
        '[store]\nplugin = "memory"\n[encoders.photo]\nplugin = "timm"\ncheckpoint = "weights/lite0.pth"\n'
        '[fusion]\nplugin = "weighted-concat"\n[scorer]\nplugin = "dot"\n'
    )
    assert main(["config", "check", str(path)]) == 2
    problems = capsys.readouterr().err.splitlines()[1:]
    missing = tmp_path / "conf" / "weights" / "lite0.pth"  # beside the config file, not in the cwd
    assert problems == [f"  encoders.photo.checkpoint: plugin 'timm': file not found: {missing}"]
    missing.parent.mkdir()
    missing.write_bytes(b"weights")
    assert main(["config", "check", str(path)]) == 0


def test_config_check_missing_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "check", str(tmp_path / "nope.toml")]) == 2
    assert "cannot read" in capsys.readouterr().err


def test_config_without_action_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["config"])
    assert caught.value.code == 2


@pytest.mark.parametrize("module_name", SUBCOMMANDS)
def test_every_subcommand_module_adds_a_command_with_a_func(module_name: str) -> None:
    module = importlib.import_module(f"polyrec.engine.cli.{module_name}")
    parser = argparse.ArgumentParser()
    subparsers = parser.add_subparsers()
    module.add_parser(subparsers)
    assert subparsers.choices, f"{module_name}.add_parser added no command"
    for name, subparser in subparsers.choices.items():
        assert subparser.description or subparser.format_help(), name
        assert _has_func(subparser), f"command {name!r} of {module_name} sets no func"


def _has_func(parser: argparse.ArgumentParser) -> bool:
    if parser.get_default("func") is not None:
        return True
    nested = [action for action in parser._actions if isinstance(action, argparse._SubParsersAction)]
    return bool(nested) and all(_has_func(child) for action in nested for child in action.choices.values())


def test_help_lists_every_command() -> None:
    text = build_parser().format_help()
    for command in ("plugins", "config"):
        assert command in text


@pytest.mark.parametrize("argv", [["--help"], ["plugins"], ["plugins", "--json"]], ids=" ".join)
def test_light_commands_import_no_heavy_library(argv: list[str]) -> None:
    script = f"""
import contextlib, io, json, sys
from polyrec.engine.cli import main
with contextlib.redirect_stdout(io.StringIO()):
    try:
        code = main({argv!r})
    except SystemExit as exit:
        code = exit.code
heavy = sorted(name for name in sys.modules if name.split(".")[0] in {HEAVY_MODULES!r})
print(json.dumps({{"code": code, "heavy": heavy}}))
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    outcome = json.loads(result.stdout.splitlines()[-1])
    assert outcome == {"code": 0, "heavy": []}


def test_module_entry_point_runs_the_cli() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "polyrec.engine.cli", "--version"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"polyrec {version('polyrec')}"


# the same components over a real LanceDB store
LANCEDB_CONFIG = VALID_CONFIG.replace(
    'plugin = "shelf"', 'plugin = "lancedb"\nuri = "data"\nread_snapshot = {snapshot}'
)

ONE_SHOT = """
import contextlib, io, json, sys
from polyrec.engine.cli import main
outputs = []
for argv in json.loads(sys.argv[1]):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(argv)
    assert code == 0, (argv, code)
    outputs.append(out.getvalue())
heavy = sorted(name for name in sys.modules if name.split(".")[0] in {heavy!r})
faiss = "faiss" in sys.modules  # faiss's Python layer (the snapshot loads only its extension)
print(json.dumps({{"heavy": heavy, "faiss": faiss, "outputs": outputs}}))
"""


def test_one_shot_recommend_reads_the_snapshot_without_lancedb_and_answers_as_lancedb(
    tmp_path: Path, fake_distribution: Callable[..., Path]
) -> None:
    """A store's read snapshot (plugins/stores/lancedb/snapshot.py) serves one-shot queries:
    the same output as through LanceDB (ties included), no LanceDB import, stale once events change."""
    site = fake_distribution(
        "cli-test-plugin", {"cli_test": "cli_test_plugin"}, {"cli_test_plugin": CLI_PLUGIN}, "3.1", on_sys_path=False
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
    (tmp_path / "fast.toml").write_text(LANCEDB_CONFIG.format(snapshot="true"))
    (tmp_path / "full.toml").write_text(LANCEDB_CONFIG.format(snapshot="false"))
    titles = ["aaa", "eee", "iii", "ooo", "aei", "aao", "eio", "oui", "ae", "io"]  # vowel counts: many ties
    rows = [{"id": f"b{n}", "title": title, "shelf": n % 2} for n, title in enumerate(titles)]
    (tmp_path / "items.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    (tmp_path / "events.csv").write_text("user,item,timestamp\nada,b0,1\nada,b4,2\nbo,b3,1\n")
    (tmp_path / "more.csv").write_text("user,item,timestamp\nada,b7,3\n")

    def polyrec(config: str, *commands: list[str]) -> dict:
        """The commands one after another in one process (each opens and closes the store)."""
        argvs = [[*argv, "--config", config] for argv in commands]
        done = subprocess.run(
            [sys.executable, "-c", ONE_SHOT.format(heavy=HEAVY_MODULES), json.dumps(argvs)],
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout.splitlines()[-1])

    polyrec("fast.toml", ["ingest", "items.jsonl"], ["events", "events.csv"])  # writes: they leave the snapshot
    queries = [
        ["recommend", "--user", "ada", "-k", "4", "--explain", "--json"],
        ["recommend", "--user", "ada", "-k", "3", "--filter", '{"shelf": 1}', "--json"],
        ["recommend", "--user", "nobody", "-k", "3", "--json"],
        ["similar", "--item", "b2", "-k", "3", "--json"],
    ]
    fast, full = polyrec("fast.toml", *queries), polyrec("full.toml", *queries)
    assert fast["heavy"] == [], f"the snapshot path imported {fast['heavy']}"
    # faiss's Python layer stays out of both: exact scans (small stores) go through flat_scan's kernel
    assert fast["faiss"] is False
    assert "lancedb" in full["heavy"]  # the control: the full path does open LanceDB
    assert fast["outputs"] == full["outputs"]
    assert json.loads(fast["outputs"][0])["results"][0]["explanation"]
    # another process appends events (and, reading with read_snapshot = false, writes no snapshot)
    polyrec("full.toml", ["events", "more.csv"])
    recommend = ["recommend", "--user", "ada", "-k", "4", "--json"]
    after, want = polyrec("fast.toml", recommend)["outputs"][0], polyrec("full.toml", recommend)["outputs"][0]
    assert "b7" not in {r["item"] for r in json.loads(after)["results"]}, "b7 is seen now"
    assert after == want


def test_events_twice_adds_nothing_and_bad_rows_are_named_by_line_and_left_out(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "polyrec.toml"
    config.write_text('[store]\nplugin = "lancedb"\nuri = "db"\n\n[encoders.title]\nplugin = "sentence-transformers"\n')
    events = tmp_path / "events.csv"
    # line 4: an empty user; line 5: a time in no known format; line 6: blank (skipped, lines still count)
    events.write_text("user,item,timestamp\nada,b1,1\nada,b2,2\n,b3,3\nbob,b1,yesterday\n\nbob,b2,5\n")
    argv = ["events", str(events), "--config", str(config)]

    assert main(argv) == 0
    captured = capsys.readouterr()
    assert captured.out.strip() == "appended 3 events; 2 invalid rows left out; 3 in the log"
    assert f"{events}, line 4: empty user" in captured.err
    assert f"{events}, line 5: timestamp 'yesterday' is not a time: expected seconds since the epoch" in captured.err

    assert main([*argv, "--json"]) == 0  # the same file again
    again = json.loads(capsys.readouterr().out)
    assert (again["appended"], again["already_stored"], again["read"], again["total"]) == (0, 3, 3, 3)
    assert [failure["where"] for failure in again["failed"]] == ["line 4", "line 5"]
    assert main(argv) == 0
    assert capsys.readouterr().out.startswith("appended nothing: all 3 events were already in the log")

    jsonl = tmp_path / "more.jsonl"
    jsonl.write_text('{"user": "cy", "item": "b1", "timestamp": 7}\n{"user": " ", "item": "b2"}\n')
    assert main(["events", str(jsonl), "--config", str(config)]) == 0
    captured = capsys.readouterr()
    assert "appended 1 events; 1 invalid rows left out; 4 in the log" in captured.out
    assert f"{jsonl}, line 2: empty user" in captured.err
    only_bad = tmp_path / "bad.jsonl"
    only_bad.write_text('{"item": "b2"}\n')
    assert main(["events", str(only_bad), "--config", str(config)]) == 1  # nothing valid at all
    assert "line 1: missing column 'user'" in capsys.readouterr().err
