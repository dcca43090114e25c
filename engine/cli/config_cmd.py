"""``polyrec config check [FILE]``: validate a config against the installed plugins, every
problem in one run (see :mod:`polyrec.engine.config_check` for the stages and how to add a check)."""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from polyrec.engine.cli._engine_args import DEFAULT_CONFIG
from polyrec.engine.plugins import PluginLoadWarning

if TYPE_CHECKING:  # imported in run(): every command imports this module to build the parser
    from polyrec.engine.config import ComponentSpec, ResolvedConfig

__all__ = ["add_parser", "run", "summarize"]


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("config", help="work with config files")
    actions = parser.add_subparsers(title="actions", metavar="ACTION", required=True)
    check = actions.add_parser(
        "check",
        help="validate a config file (TOML or YAML)",
        description="Validate FILE against the installed plugins: print OK and the slots, "
        "or every problem with its key, all in one run (exit code 2).",
    )
    check.add_argument("file", type=Path, metavar="FILE", nargs="?", help=f"config file (default: {DEFAULT_CONFIG})")
    check.add_argument("--config", "-c", type=Path, metavar="FILE", dest="config", help="the same as FILE")
    check.add_argument("--json", action="store_true", help="print {file, ok, problems, slots} as JSON")
    check.add_argument(
        "--load",
        action="store_true",
        help="also build the components and ask each encoder its dim (loads the models: slower)",
    )
    check.set_defaults(func=run)


def _describe(spec: ComponentSpec, registry_modality: str) -> str:
    details = []
    if spec.field is not None:
        details.append(f"field={spec.field}")
    if registry_modality:
        details.append(f"modality={registry_modality}")
    details += [f"{name}={value}" for name, value in spec.config.model_dump(exclude_unset=True).items()]
    return "  ".join(details)


def summarize(resolved: ResolvedConfig, modalities: dict[str, str]) -> list[str]:
    specs = resolved.specs()
    width_key = max(len(spec.key) for spec in specs)
    width_plugin = max(len(spec.plugin) for spec in specs)
    lines = []
    for spec in specs:
        detail = _describe(spec, modalities.get(spec.plugin, "") if spec.kind == "encoder" else "")
        lines.append(f"  {spec.key.ljust(width_key)}  {spec.plugin.ljust(width_plugin)}  {detail}".rstrip())
    return lines


def run(args: argparse.Namespace) -> int:
    from polyrec.engine.config_check import check_config
    from polyrec.engine.registry import build_registry

    if args.file is not None and args.config is not None and args.file != args.config:
        print("polyrec config check: give FILE or --config, not both", file=sys.stderr)
        return 2
    path = args.file or args.config or DEFAULT_CONFIG
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PluginLoadWarning)
        registry = build_registry()
    result = check_config(path, registry, load=args.load)
    # a plugin that failed to load may be why a plugin name is unknown
    notes = [str(f) for f in registry.failures] if any(k.endswith(".plugin") for k, _ in result.problems) else []
    modalities = {entry.name: entry.modality for entry in registry.entries() if entry.kind == "encoder"}
    if args.json:
        payload = result.to_dict()
        payload["notes"] = notes
        if result.ok and result.resolved is not None:
            payload["slots"] = {
                spec.key: {"plugin": spec.plugin, "kind": spec.kind} for spec in result.resolved.specs()
            }
        print(json.dumps(payload, indent=2))
        return 0 if result.ok else 2
    if not result.ok:
        count = len(result.problems)
        print(f"invalid config {path}: {count} problem{'s' if count != 1 else ''}", file=sys.stderr)
        for key, message in result.problems:
            print(f"  {key}: {message}" if key else f"  {message}", file=sys.stderr)
        for note in notes:
            print(f"  (note: {note})", file=sys.stderr)
        return 2
    assert result.resolved is not None
    print(f"OK {path}")
    print("\n".join(summarize(result.resolved, modalities)))
    return 0
