"""``polyrec init DATA``: write a starting config from a catalog (and its events)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

__all__ = ["add_parser", "run"]


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "init",
        help="write a starting config from a catalog (and events)",
        description="Inspect DATA - a catalog file (CSV/TSV/JSONL/Parquet) or a dataset directory (RecBole, "
        "GroupLens, items.* + events.*) - and write a polyrec.toml: text columns become a derived text field, "
        "image and audio columns get their encoders, ids and event columns are mapped in [columns]; with "
        "events, the behavior encoder and a trained scorer are added. Prints each decision and why.",
    )
    parser.add_argument("data", type=Path, metavar="DATA", help="catalog file or dataset directory")
    parser.add_argument("--events", type=Path, metavar="FILE", help="events file (for a catalog file)")
    parser.add_argument("-o", "--output", type=Path, metavar="FILE", help="write the config here (default: stdout)")
    parser.add_argument("--force", action="store_true", help="overwrite FILE if it exists")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from polyrec.engine.config_init import infer_config, render

    if args.output is not None and args.output.exists() and not args.force:
        print(f"polyrec init: {args.output} exists (use --force to overwrite)", file=sys.stderr)
        return 2
    config_dir = args.output.resolve().parent if args.output is not None else Path.cwd()
    result = infer_config(args.data, args.events, config_dir=config_dir)
    text = render(result, f"Written by `polyrec init {args.data}`.")
    decisions = sys.stdout if args.output is not None else sys.stderr
    for line in result.decisions:
        print(f"  {line}", file=decisions)
    if args.output is None:
        sys.stdout.write(text)
        return 0
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text, encoding="utf-8")
    print(f"wrote {args.output}; check it with: polyrec config check {args.output}")
    return 0
