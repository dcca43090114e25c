"""Every command and example in README.md is real: run, validated or checked against the repo."""

from __future__ import annotations

import importlib
import os
import re
import shlex
import subprocess
import sys
import tomllib
import types
from pathlib import Path

import numpy as np
import pytest

from polyrec.engine.plugins import build_plugin_manager
from polyrec.engine.registry import Registry

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
POLYREC_SCRIPT = Path(sys.executable).parent / "polyrec"


def code_blocks(text: str, language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", text, flags=re.MULTILINE | re.DOTALL)


def section(title: str) -> str:
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", README, flags=re.MULTILINE | re.DOTALL)
    assert match, f"README.md has no '## {title}' section"
    return match.group(1)


def shell_commands() -> list[str]:
    commands = []
    for block in code_blocks(README, "sh"):
        for line in block.splitlines():
            command = re.split(r"\s+#", line)[0].strip()
            if command:
                commands.append(command)
    return list(dict.fromkeys(commands))  # in order, each once


def makefile_targets() -> set[str]:
    text = (ROOT / "Makefile").read_text(encoding="utf-8")
    return set(re.findall(r"^([A-Za-z][\w-]*):", text, flags=re.MULTILINE))


@pytest.fixture(scope="module")
def config_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory holding the README's config example as polyrec.toml (commands run there)."""
    [example] = code_blocks(section("Configuration"), "toml")
    directory = tmp_path_factory.mktemp("readme")
    (directory / "polyrec.toml").write_text(example)
    return directory


def test_readme_starts_with_the_two_commands() -> None:
    assert shell_commands()[:2] == ["make demo", "make test"]


def test_every_readme_command_is_known() -> None:
    for command in shell_commands():
        program = command.split()[0]
        assert program in {"make", "polyrec", "pip"}, f"README command {command!r}: add a check for it here"


@pytest.mark.parametrize("command", [c for c in shell_commands() if c.startswith("make ")])
def test_make_commands_are_makefile_targets(command: str) -> None:
    target = command.split()[1]
    assert target in makefile_targets(), f"README shows `{command}` but the Makefile has no {target!r} target"
    for mentioned in re.findall(r"`make (\w+)`", README):
        assert mentioned in makefile_targets(), mentioned


@pytest.mark.parametrize("command", [c for c in shell_commands() if c.startswith("pip install ")])
def test_pip_install_paths_exist(command: str) -> None:
    path = ROOT / shlex.split(command)[-1]
    assert (path / "pyproject.toml").is_file(), f"{command}: {path} is not an installable project"


DEMO = "examples/demo"
DEMO_FILES = ("polyrec.toml", "items.jsonl", "events.csv")


def run_polyrec(command: str, cwd: Path) -> str:
    env = {key: value for key, value in os.environ.items() if not key.startswith("POLYREC_")}
    result = subprocess.run(
        [str(POLYREC_SCRIPT), *shlex.split(command)[1:]],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, f"`{command}` failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


@pytest.mark.parametrize("command", [c for c in shell_commands() if c.startswith("polyrec") and DEMO not in c])
def test_polyrec_commands_run(command: str, config_dir: Path) -> None:
    run_polyrec(command, config_dir)


@pytest.mark.slow
def test_demo_commands_run_in_order(tmp_path: Path) -> None:
    """The ingest -> events -> fit -> query walk-through, on a copy of examples/demo."""
    commands = [c for c in shell_commands() if c.startswith("polyrec") and DEMO in c]
    assert [c.split()[1] for c in commands[:3]] == ["ingest", "events", "fit"], "the walk-through must load data first"
    (tmp_path / DEMO).mkdir(parents=True)
    for name in DEMO_FILES:
        (tmp_path / DEMO / name).write_bytes((ROOT / DEMO / name).read_bytes())
    outputs = {command.split()[1]: run_polyrec(command, tmp_path) for command in commands}
    assert outputs["ingest"].startswith("stored 36 items") and "0 failures" in outputs["ingest"]
    assert "because:" in outputs["recommend"]
    assert all(outputs[name].strip() and "(no results)" not in outputs[name] for name in ("similar", "search"))
    if "report" in outputs:
        assert (tmp_path / "polyrec-report" / "report.html").is_file(), outputs["report"]


def test_config_example_is_checked_by_a_readme_command() -> None:
    assert "polyrec config check polyrec.toml" in shell_commands()


def test_plugin_example_registers_a_working_encoder() -> None:
    [example] = code_blocks(section("Writing a plugin"), "python")
    module = types.ModuleType("readme_plugin_example")
    exec(compile(example, "README.md:plugin-example", "exec"), module.__dict__)
    pm = build_plugin_manager(builtins=(), extra=[("readme_example", module)], load_entry_points=False, strict=True)
    registry = Registry.from_plugin_manager(pm)
    encoder = registry.get("encoder", "word-hash")(dim=16)
    vectors = encoder.encode([encoder.prepare(text) for text in ["Red Apple", "red apple", "green pear"]])
    assert vectors.shape == (3, 16) and vectors.dtype == np.float32
    np.testing.assert_allclose(vectors[0], vectors[1])
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-6)
    with pytest.raises(ValueError, match="expected non-empty text"):
        encoder.prepare("  ")


def test_entry_point_example_uses_the_polyrec_group() -> None:
    [example] = code_blocks(section("Writing a plugin"), "toml")
    assert "polyrec" in tomllib.loads(example)["project"]["entry-points"]


def test_named_contract_suites_exist() -> None:
    references = set(re.findall(r"polyrec\.contracts\.testing\.(\w+)\.(\w+)", README))
    assert references, "the README should point plugin authors at a contract suite"
    for module_name, attribute in references:
        module = importlib.import_module(f"polyrec.contracts.testing.{module_name}")
        assert hasattr(module, attribute), f"polyrec.contracts.testing.{module_name}.{attribute}"


@pytest.mark.slow
def test_demo_script_runs_end_to_end(tmp_path: Path) -> None:
    """`sh examples/demo/run.sh`, which the README points to, on a copy of examples/demo."""
    demo = tmp_path / "demo"
    demo.mkdir()
    for name in (*DEMO_FILES, "run.sh"):
        (demo / name).write_bytes((ROOT / DEMO / name).read_bytes())
    env = {key: value for key, value in os.environ.items() if not key.startswith("POLYREC_")}
    env["POLYREC"] = str(POLYREC_SCRIPT)
    result = subprocess.run(["sh", str(demo / "run.sh")], env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
    out = result.stdout
    assert out.count("\n== ") == 10, out  # every step ran
    assert "stored 36 items" in out and "36 unchanged" in out, out  # the second ingest encodes nothing
    assert "because:" in out and "fallback" in out.lower(), out


def test_first_screen_picture_exists() -> None:
    for path in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", README):
        assert (ROOT / path).is_file(), f"README shows {path}, which is not in the repository"


def test_pip_install_from_the_checkout_names_real_extras() -> None:
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    for extra in re.findall(r"pip install '\.\[(\w+)\]'", README):
        assert extra in extras, extra


def test_the_first_python_example_runs_on_a_copy_of_the_demo(tmp_path: Path) -> None:
    """The five lines under the first screen: ingest, events, fit, recommend."""
    example = code_blocks(README, "python")[0]
    assert all(call in example for call in ("ingest(", "add_events(", "fit(", "recommend("))
    (tmp_path / DEMO).mkdir(parents=True)
    for name in DEMO_FILES:
        (tmp_path / DEMO / name).write_bytes((ROOT / DEMO / name).read_bytes())
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("POLYREC_")}, "HF_HUB_OFFLINE": "1"}
    result = subprocess.run(
        [sys.executable, "-c", example], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("Recommendation(item='b") == 5 and "explanation=[HistoryWeight(" in result.stdout
