"""The third-party plugin template, installed for real: found by entry point, usable from a config."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

import numpy as np
import pytest

from polyrec.engine.config import load_config
from polyrec.engine.plugins import PluginLoadWarning, build_plugin_manager
from polyrec.engine.registry import build_registry

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / "examples" / "plugin-template"
POLYREC_SCRIPT = Path(sys.executable).parent / "polyrec"
BROKEN_SOURCE = 'raise RuntimeError("import-time failure of a third-party plugin")\n'


@pytest.fixture(scope="module", autouse=True)
def template_installed() -> None:
    try:
        dist = distribution("polyrec-plugin-template")
    except PackageNotFoundError:
        pytest.fail("polyrec-plugin-template is not installed: run `make install`")
    direct_url = json.loads(dist.read_text("direct_url.json") or "{}")
    assert not direct_url.get("dir_info", {}).get("editable"), "install the template non-editable, like a user would"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("POLYREC_STRICT_PLUGINS", "POLYREC_DISABLE_PLUGINS", "POLYREC_NO_ENTRY_POINTS"):
        monkeypatch.delenv(name, raising=False)


def polyrec_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(POLYREC_SCRIPT), *args], capture_output=True, text=True, timeout=120, env={**os.environ, **(env or {})}
    )


def test_installed_template_is_not_imported_from_the_source_tree() -> None:
    import polyrec_plugin_template

    assert not Path(polyrec_plugin_template.__file__).is_relative_to(TEMPLATE)


def test_template_appears_in_polyrec_plugins() -> None:
    result = polyrec_cli("plugins", "--json")
    assert result.returncode == 0, result.stderr
    components = json.loads(result.stdout)["components"]
    assert {
        "name": "hashing-text",
        "kind": "encoder",
        "modality": "text",
        "plugin": "polyrec_hashing_encoder",
        "distribution": "polyrec-plugin-template",
        "version": distribution("polyrec-plugin-template").version,
    } in components
    table = polyrec_cli("plugins").stdout.splitlines()
    assert any(line.split()[:3] == ["hashing-text", "encoder", "text"] for line in table[1:])


def test_template_encoder_works_from_a_config(tmp_path: Path) -> None:
    path = tmp_path / "polyrec.toml"
    path.write_text('[encoders.title]\nplugin = "hashing-text"\ndim = 64\nngram_max = 3\n')
    registry = build_registry(build_plugin_manager())
    spec = load_config(path, registry).encoders["title"]
    assert (spec.plugin, spec.field) == ("hashing-text", "title")
    encoder = registry.get(spec.kind, spec.plugin)(spec.config)
    vectors = encoder.encode([encoder.prepare(text) for text in ["Toy Story", "Toy Story 2", "Heat"]])
    assert vectors.shape == (3, 64) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-6)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2]
    assert '"ngram_max":3' in encoder.fingerprint


def test_template_rejects_a_bad_parameter_with_the_key(tmp_path: Path) -> None:
    path = tmp_path / "polyrec.toml"
    path.write_text('[encoders.title]\nplugin = "hashing-text"\ndim = 4\n')
    result = polyrec_cli("config", "check", str(path))
    assert result.returncode == 2
    assert (
        "  encoders.title.dim: invalid value 4 for encoder plugin 'hashing-text': "
        "input should be greater than or equal to 8"
    ) in result.stderr.splitlines()


def test_template_own_test_suite_passes() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-v", "-p", "no:cacheprovider"],
        cwd=TEMPLATE,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    summary = result.stdout.strip().splitlines()[-1]
    assert " passed" in summary and "failed" not in summary and "error" not in summary
    # it runs polyrec's encoder contract suite, not only its own tests
    assert "TestHashingTextContract::test_bad_values_do_not_sink_the_batch PASSED" in result.stdout


def test_plugin_whose_import_raises_is_skipped_with_a_warning(fake_distribution: Callable[..., Path]) -> None:
    fake_distribution("raising-plugin", {"raising": "tpl_raising_plugin"}, {"tpl_raising_plugin": BROKEN_SOURCE})
    with pytest.warns(PluginLoadWarning, match="plugin 'raising' from distribution 'raising-plugin' failed to load"):
        registry = build_registry(build_plugin_manager())
    assert "hashing-text" in registry.names("encoder")  # the other plugins still load


def test_cli_skips_a_raising_plugin_and_strict_mode_fails(fake_distribution: Callable[..., Path]) -> None:
    site = fake_distribution(
        "raising-plugin", {"raising": "tpl_raising_cli"}, {"tpl_raising_cli": BROKEN_SOURCE}, on_sys_path=False
    )
    env = {"PYTHONPATH": str(site)}
    lenient = polyrec_cli("plugins", env=env)
    assert lenient.returncode == 0, lenient.stderr
    assert "hashing-text" in lenient.stdout
    skipped = lenient.stdout[lenient.stdout.index("failed to load and were skipped") :]
    assert "raising  " in skipped and "RuntimeError: import-time failure of a third-party plugin" in skipped
    strict = polyrec_cli("plugins", env={**env, "POLYREC_STRICT_PLUGINS": "1"})
    assert strict.returncode == 1
    assert strict.stderr.strip() == (
        "polyrec: error: plugin 'raising' from distribution 'raising-plugin' failed to load: "
        "RuntimeError: import-time failure of a third-party plugin"
    )
    disabled = polyrec_cli("plugins", env={**env, "POLYREC_DISABLE_PLUGINS": "raising-plugin"})
    assert disabled.returncode == 0
    assert "raising" not in disabled.stdout.split()
