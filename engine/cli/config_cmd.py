"""``polyrec config check FILE``: validate a config against the installed plugins."""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

from polyrec.contracts import ConfigError
from polyrec.engine.config import ComponentSpec, ResolvedConfig, load_config
from polyrec.engine.plugins import PluginLoadWarning
from polyrec.engine.registry import build_registry

__all__ = ["add_parser", "run", "summarize"]


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("config", help="work with config files")
    actions = parser.add_subparsers(title="actions", metavar="ACTION", required=True)
    check = actions.add_parser(
        "check",
        help="validate a config file (TOML or YAML)",
        description="Validate FILE against the installed plugins: print OK and the slots, "
        "or every problem with its key (exit code 2).",
    )
    check.add_argument("file", type=Path, metavar="FILE")
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
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PluginLoadWarning)
        registry = build_registry()
    try:
        resolved = load_config(args.file, registry)
    except ConfigError as exc:
        print(f"invalid config {args.file}:", file=sys.stderr)
        for key, message in exc.problems:
            print(f"  {key}: {message}" if key else f"  {message}", file=sys.stderr)
        if any(key.endswith(".plugin") for key, _ in exc.problems):  # a plugin that failed to load may be why
            for failure in registry.failures:
                print(f"  (note: {failure})", file=sys.stderr)
        return 2
    modalities = {entry.name: entry.modality for entry in registry.entries() if entry.kind == "encoder"}
    print(f"OK {args.file}")
    print("\n".join(summarize(resolved, modalities)))
    return 0
