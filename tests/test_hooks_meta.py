"""Every hook has a test of its own and is documented in the README's plugin-writing section."""

from __future__ import annotations

import ast
import inspect
import re
from pathlib import Path

from polyrec.contracts import PROJECT_NAME
from polyrec.engine import hookspecs
from polyrec.engine.plugins import build_plugin_manager

ROOT = Path(__file__).resolve().parents[1]
PLUGIN_SECTION_TITLE = "Writing a plugin"


def hook_names() -> list[str]:
    """Names of the hook specifications (functions marked with the polyrec hookspec marker)."""
    marker = f"{PROJECT_NAME}_spec"
    return sorted(name for name, obj in inspect.getmembers(hookspecs, inspect.isfunction) if hasattr(obj, marker))


def collect_test_names(test_dir: Path) -> set[str]:
    """Names of all ``test*`` functions and methods in the ``.py`` files under ``test_dir``."""
    names = set()
    for path in test_dir.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith("test"):
                names.add(node.name)
    return names


def hooks_without_tests(hooks: list[str], tests: set[str]) -> list[str]:
    return [hook for hook in hooks if not any(hook in test for test in tests)]


def markdown_section(text: str, title: str) -> str:
    """The body of the first heading containing ``title``, up to the next heading of the same or higher level."""
    match = re.search(rf"^(#+)[^\n]*{re.escape(title)}[^\n]*$", text, flags=re.MULTILINE | re.IGNORECASE)
    if match is None:
        return ""
    level = len(match.group(1))
    rest = text[match.end() :]
    following = re.search(rf"^#{{1,{level}}} ", rest, flags=re.MULTILINE)
    return rest[: following.start()] if following else rest


def hooks_missing_from(section: str, hooks: list[str]) -> list[str]:
    return [hook for hook in hooks if not re.search(rf"\b{re.escape(hook)}\b", section)]


def test_hook_names_are_the_plugin_managers_hooks() -> None:
    pm = build_plugin_manager(builtins=(), load_entry_points=False)
    assert hook_names() == sorted(name for name in vars(pm.hook) if not name.startswith("_"))
    assert hook_names() == ["register_encoders", "register_fusions", "register_scorers", "register_stores"]


def test_every_hook_has_a_test_of_its_own() -> None:
    missing = hooks_without_tests(hook_names(), collect_test_names(ROOT / "tests"))
    assert not missing, f"write a test whose name contains each of these hooks: {missing}"


def test_every_hook_is_documented_in_the_readme_plugin_section() -> None:
    section = markdown_section((ROOT / "README.md").read_text(encoding="utf-8"), PLUGIN_SECTION_TITLE)
    assert section, f"README.md has no '{PLUGIN_SECTION_TITLE}' section"
    missing = hooks_missing_from(section, hook_names())
    assert not missing, f"document these hooks in README.md's '{PLUGIN_SECTION_TITLE}' section: {missing}"


def test_the_checks_catch_an_undocumented_untested_hook(tmp_path: Path) -> None:
    (tmp_path / "test_some.py").write_text(
        "def test_register_encoders_works():\n    pass\n\n"
        "class TestX:\n    def test_register_stores_too(self):\n        pass\n\n"
        "def register_scorers_helper():\n    pass\n"
    )
    hooks = ["register_encoders", "register_scorers", "register_stores"]
    assert hooks_without_tests(hooks, collect_test_names(tmp_path)) == ["register_scorers"]
    readme = (
        "# Title\n## Writing a plugin\nUse `register_encoders(register)`.\n### Hooks\nregister_stores\n"
        "## CLI\nregister_scorers\n"
    )
    section = markdown_section(readme, PLUGIN_SECTION_TITLE)
    assert "register_stores" in section and "## CLI" not in section
    assert hooks_missing_from(section, hooks) == ["register_scorers"]
    assert markdown_section(readme, "Not there") == ""
