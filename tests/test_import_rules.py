"""The layout's import directions hold, and the check really catches each kind of bad import."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from import_rules import violations

ROOT = Path(__file__).resolve().parents[1]


def test_the_tree_keeps_the_import_rules() -> None:
    assert violations(ROOT) == []


@pytest.fixture
def tree_copy(tmp_path: Path) -> Path:
    for folder in ("contracts", "engine", "plugins"):
        shutil.copytree(ROOT / folder, tmp_path / folder, ignore=shutil.ignore_patterns("__pycache__", "static"))
    return tmp_path


@pytest.mark.parametrize(
    ("path", "line", "expected"),
    [
        ("contracts/records.py", "from polyrec.engine import Engine", "contracts import the engine"),
        ("contracts/filters.py", "import polyrec.plugins.stores.memory", "contracts import the engine or plugins"),
        ("plugins/fusions/mean.py", "from polyrec.engine.config import EngineConfig", "a plugin imports the engine"),
        ("engine/engine.py", "from polyrec.plugins.stores.memory import MemoryStore", "the engine imports a built-in"),
        ("plugins/scorers/mlp.py", "from polyrec.plugins.scorers.dot import DotScorer", "another plugin's module"),
        ("plugins/scorers/dot.py", "from .target_attention import TargetAttentionScorer", "another plugin's module"),
        (
            "plugins/stores/memory.py",
            "from polyrec.plugins.stores.lancedb.filters import where_clause",
            "another plugin's module",
        ),
        ("plugins/scorers/dot.py", "from polyrec.plugins.fusions.fields import check_field_weights", "another kind"),
    ],
)
def test_a_bad_import_is_reported(tree_copy: Path, path: str, line: str, expected: str) -> None:
    target = tree_copy / path
    target.write_text(target.read_text() + f"\n\ndef _late():\n    {line}\n")
    found = violations(tree_copy)
    assert len(found) == 1, found
    assert found[0].startswith(path) and expected in found[0], found


def test_imports_inside_one_plugin_package_and_of_shared_helpers_are_allowed(tree_copy: Path) -> None:
    extra = {
        "plugins/stores/lancedb/events.py": "from polyrec.plugins.stores.lancedb.store import LanceDBStore",
        "plugins/scorers/mlp.py": "from polyrec.plugins.scorers.base import check_inputs",
        "plugins/fusions/gated.py": "from polyrec.plugins.support.vectors import l2_normalize_rows",
    }
    for path, line in extra.items():
        (tree_copy / path).write_text((tree_copy / path).read_text() + f"\n\ndef _late():\n    {line}\n")
    assert violations(tree_copy) == []
