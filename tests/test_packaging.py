"""A real, non-editable install: build the wheel, check its contents, import it away from the source tree."""

from __future__ import annotations

import json
import subprocess
import sys
import sysconfig
import warnings
import zipfile
from pathlib import Path

import pytest

from polyrec.engine.plugins import build_plugin_manager
from polyrec.engine.registry import build_registry

ROOT = Path(__file__).resolve().parents[1]
#: source folder -> the package it installs as
SOURCE_PACKAGES = {"contracts": "polyrec/contracts", "engine": "polyrec/engine", "plugins": "polyrec/plugins"}
SKIPPED_PARTS = {"__pycache__", ".pytest_cache", ".ruff_cache"}


def run(*args: str | Path, cwd: Path = ROOT, timeout: int = 300) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([str(arg) for arg in args], cwd=cwd, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"{' '.join(map(str, args))} failed:\n{result.stdout}\n{result.stderr}"
    return result


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", out, ".")
    [built] = out.glob("polyrec-*.whl")
    return built


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("target")
    run(sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", target, wheel)
    return target


def wheel_names(wheel: Path) -> set[str]:
    with zipfile.ZipFile(wheel) as archive:
        return set(archive.namelist())


def source_files() -> dict[str, str]:
    """Every file of the source packages -> where the wheel must hold it."""
    expected = {}
    for folder, package in SOURCE_PACKAGES.items():
        for path in (ROOT / folder).rglob("*"):
            relative = path.relative_to(ROOT / folder)
            if path.is_file() and not SKIPPED_PARTS & set(relative.parts) and path.suffix != ".pyc":
                expected[f"{folder}/{relative.as_posix()}"] = f"{package}/{relative.as_posix()}"
    return expected


def test_wheel_holds_only_the_polyrec_namespace(wheel: Path) -> None:
    top_level = {name.split("/")[0] for name in wheel_names(wheel)}
    assert top_level == {"polyrec", wheel.name.split("-py3")[0] + ".dist-info"}
    assert "polyrec/__init__.py" not in wheel_names(wheel)  # polyrec is a namespace package


def test_wheel_holds_every_source_file(wheel: Path) -> None:
    names = wheel_names(wheel)
    for package in ("polyrec/contracts/testing", "polyrec/engine/cli", "polyrec/plugins"):
        assert f"{package}/__init__.py" in names
    missing = sorted(source for source, packaged in source_files().items() if packaged not in names)
    assert not missing, (
        f"not in the wheel: {missing}; add the folder to [tool.setuptools] packages in pyproject.toml "
        "(and non-Python files to package-data)"
    )


def test_wheel_declares_the_console_script(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        [entry_points] = [name for name in archive.namelist() if name.endswith(".dist-info/entry_points.txt")]
        text = archive.read(entry_points).decode()
    assert "[console_scripts]" in text
    assert "polyrec = polyrec.engine.cli:main" in text


def test_installed_wheel_imports_and_runs_without_the_source_tree(installed: Path, tmp_path: Path) -> None:
    # -I -S: no cwd, no PYTHONPATH, no .pth files (so the editable install's finder is off);
    # dependencies come from the venv's site-packages, appended after the installed wheel.
    script = f"""
import contextlib, io, json, sys
sys.path[:0] = [{str(installed)!r}]
sys.path.append({sysconfig.get_paths()["purelib"]!r})
import polyrec.contracts, polyrec.engine.registry, polyrec.engine.cli
from polyrec.engine.cli import main
out = io.StringIO()
with contextlib.redirect_stdout(out):
    code = main(["plugins", "--json"])
files = [polyrec.contracts.__file__, polyrec.engine.registry.__file__, polyrec.engine.cli.__file__]
print(json.dumps({{"code": code, "files": files, "report": json.loads(out.getvalue())}}))
"""
    result = run(sys.executable, "-I", "-S", "-c", script, cwd=tmp_path)
    outcome = json.loads(result.stdout.splitlines()[-1])
    assert outcome["code"] == 0
    for file in outcome["files"]:
        assert Path(file).is_relative_to(installed), f"{file} was imported from outside the installed wheel"
    from_wheel = {(c["kind"], c["name"]) for c in outcome["report"]["components"] if c["distribution"] == "polyrec"}
    assert from_wheel == builtin_components_of_the_source_tree()


def builtin_components_of_the_source_tree() -> set[tuple[str, str]]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        registry = build_registry(build_plugin_manager(load_entry_points=False))
    return {(entry.kind, entry.name) for entry in registry.entries()}
