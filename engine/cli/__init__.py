"""The ``polyrec`` command line.

Adding a subcommand: write ``engine/cli/<name>_cmd.py`` with
``add_parser(subparsers) -> None`` that calls ``subparsers.add_parser(...)`` and sets
``func=run`` via ``set_defaults``; ``run(args) -> int`` returns the exit code. Then add the
module name to :data:`SUBCOMMANDS`. Keep the module's top level light: import the engine
and heavy libraries inside ``run`` so ``polyrec --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from polyrec.contracts import ConfigError, PolyrecError
from polyrec.engine.plugins import polyrec_version

__all__ = ["SUBCOMMANDS", "build_parser", "main"]

#: Subcommand modules under ``polyrec.engine.cli``, in ``--help`` order.
SUBCOMMANDS: tuple[str, ...] = (
    "init_cmd",
    "ingest_cmd",
    "users_cmd",
    "fit_cmd",
    "recommend_cmd",
    "plugins_cmd",
    "config_cmd",
    "evaluate_cmd",
    "serve_cmd",
    "keys_cmd",
    "forget_user_cmd",
    "quickstart_cmd",
    "report_cmd",
)

#: Exit codes: 1 for a failed operation, 2 for invalid input (usage or config).
EXIT_ERROR = 1
EXIT_INVALID = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="polyrec", description="Plugin-based multimodal embedding engine for recommendation."
    )
    parser.add_argument("--version", action="version", version=f"polyrec {polyrec_version()}")
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND")
    for module_name in SUBCOMMANDS:
        importlib.import_module(f"{__name__}.{module_name}").add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; return the exit code (the console script exits with it)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "func"):
        parser.print_help(sys.stderr)
        return EXIT_INVALID
    try:
        return int(args.func(args) or 0)
    except ConfigError as exc:
        print(f"polyrec: {exc}", file=sys.stderr)
        return EXIT_INVALID
    except PolyrecError as exc:
        print(f"polyrec: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
