"""The import directions of the layout, read from the source with ``ast`` (no code is imported).

contracts <- engine, contracts <- plugins; the engine loads built-ins by name only; a plugin
imports another plugin's code only through shared helper modules: its own kind's helpers
(``scorers/base.py``, ``fusions/fields.py``, ...) or ``plugins/support/``.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

FOLDERS = {"contracts": "polyrec.contracts", "engine": "polyrec.engine", "plugins": "polyrec.plugins"}
SHARED_KIND = "support"


@dataclass(frozen=True)
class Module:
    name: str
    path: Path
    is_package: bool
    registers: bool  # defines a @hookimpl: a plugin module


def _module_name(root: Path, path: Path) -> tuple[str, bool]:
    folder, *rest = path.relative_to(root).with_suffix("").parts
    is_package = rest[-1] == "__init__" if rest else False
    parts = rest[:-1] if is_package else rest
    return ".".join([FOLDERS[folder], *parts]), is_package


def _registers(tree: ast.Module) -> bool:
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef):
            for decorator in node.decorator_list:
                if isinstance(decorator, ast.Name | ast.Attribute) and ast.unparse(decorator).endswith("hookimpl"):
                    return True
    return False


def collect(root: Path) -> dict[str, tuple[Module, ast.Module]]:
    modules = {}
    for folder in FOLDERS:
        for path in sorted((root / folder).rglob("*.py")):
            tree = ast.parse(path.read_text(), filename=str(path))
            name, is_package = _module_name(root, path)
            modules[name] = (Module(name, path, is_package, _registers(tree)), tree)
    return modules


def imported_names(module: Module, tree: ast.Module, known: set[str]) -> set[str]:
    """Every module named by an import anywhere in the file (lazy imports included)."""
    names: set[str] = set()
    package = module.name if module.is_package else module.name.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names if f"{base}.{alias.name}" in known)
    return names


def plugin_unit(name: str) -> str:
    """The plugin a module belongs to: ``polyrec.plugins.<kind>.<module or package>``."""
    return ".".join(name.split(".")[:4])


def _kind(name: str) -> str:
    return name.split(".")[2] if name.count(".") >= 2 else ""


def _plugin_violation(importer: Module, target: Module, units: dict[str, bool]) -> str | None:
    if plugin_unit(importer.name) == plugin_unit(target.name):
        return None
    if target.registers or units.get(plugin_unit(target.name), False):
        return "imports another plugin's module"
    if _kind(target.name) not in (_kind(importer.name), SHARED_KIND, ""):
        return f"imports a helper of another kind ({_kind(target.name)})"
    return None


def violations(root: Path) -> list[str]:
    """One line per import that breaks a layout rule, naming the file and the import."""
    modules = collect(root)
    known = set(modules)
    # a plugin package (stores/lancedb/) counts as one plugin whichever of its modules registers
    units: dict[str, bool] = {}
    for module, _ in modules.values():
        if module.name.startswith("polyrec.plugins.") and module.name.count(".") >= 3:
            unit = plugin_unit(module.name)
            units[unit] = units.get(unit, False) or module.registers
    found = []
    for module, tree in modules.values():
        for name in sorted(imported_names(module, tree, known)):
            problem = _problem(module, name, modules, units)
            if problem:
                found.append(f"{module.path.relative_to(root)}: {problem}: {name}")
    return found


def _problem(module: Module, name: str, modules: dict, units: dict[str, bool]) -> str | None:
    if module.name.startswith("polyrec.contracts") and name.startswith(("polyrec.engine", "polyrec.plugins")):
        return "contracts import the engine or plugins"
    if module.name.startswith("polyrec.engine") and name.startswith("polyrec.plugins"):
        return "the engine imports a built-in plugin module (name it in DEFAULT_PLUGINS instead)"
    if module.name.startswith("polyrec.plugins"):
        if name.startswith("polyrec.engine"):
            return "a plugin imports the engine"
        if name in modules and name.count(".") >= 3:
            return _plugin_violation(module, modules[name][0], units)
    return None
