"""``polyrec plugins``: every registered component and where it came from, plus load failures."""

from __future__ import annotations

import argparse
import json
import warnings
from typing import TYPE_CHECKING, Any

from polyrec.engine.plugins import PluginLoadWarning

if TYPE_CHECKING:  # imported in run(): every command imports this module to build the parser
    from polyrec.engine.registry import Registry

__all__ = ["add_parser", "run", "registry_report", "format_table"]

COLUMNS = ("name", "kind", "modality", "plugin", "distribution", "version")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "plugins",
        help="list registered components and plugins that failed to load",
        description="List every registered component (name, kind, modality, plugin, distribution, version) "
        "and every plugin that failed to load, with the reason.",
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.set_defaults(func=run)


def registry_report(registry: Registry) -> dict[str, list[dict[str, Any]]]:
    components = [
        {
            "name": entry.name,
            "kind": entry.kind,
            "modality": entry.modality,
            "plugin": entry.plugin,
            "distribution": entry.distribution,
            "version": entry.version,
        }
        for entry in registry.entries()
    ]
    failures = [
        {"plugin": failure.name, "distribution": failure.distribution, "error": _reason(failure.cause)}
        for failure in registry.failures
    ]
    return {"components": components, "failures": failures}


def _reason(cause: BaseException) -> str:
    return f"{type(cause).__name__}: {cause}"


def format_table(rows: list[dict[str, Any]], columns: tuple[str, ...]) -> str:
    cells = [[str(row.get(column) or "") for column in columns] for row in rows]
    widths = [max([len(column)] + [len(line[i]) for line in cells]) for i, column in enumerate(columns)]
    lines = ["  ".join(column.upper().ljust(width) for column, width in zip(columns, widths))]
    lines += ["  ".join(cell.ljust(width) for cell, width in zip(line, widths)) for line in cells]
    return "\n".join(line.rstrip() for line in lines)


def run(args: argparse.Namespace) -> int:
    from polyrec.engine.registry import build_registry

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PluginLoadWarning)  # failures are listed below instead
        report = registry_report(build_registry())
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(format_table(report["components"], COLUMNS) if report["components"] else "no components registered")
    if report["failures"]:
        print(f"\n{len(report['failures'])} plugin(s) failed to load and were skipped:")
        print(format_table(report["failures"], ("plugin", "distribution", "error")))
    return 0
