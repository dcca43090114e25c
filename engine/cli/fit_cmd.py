"""``polyrec fit``: train the trainable components on the event log and save them."""

from __future__ import annotations

import argparse
import json

from polyrec.engine.cli._engine_args import add_config_argument, open_engine

__all__ = ["add_parser", "run"]


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "fit",
        help="fit behavior encoders, trainable fusion and scorer on the events",
        description="Fit every trainable component on the store's event log, re-encode and re-fuse "
        "what they changed, and save their state beside the store.",
    )
    add_config_argument(parser)
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    with open_engine(args) as engine:
        report = engine.fit()
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        print(report.summary())
    return 0
