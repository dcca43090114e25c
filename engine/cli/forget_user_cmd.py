"""``polyrec forget-user ID``: erase a user's events from the store, its files included."""

from __future__ import annotations

import argparse
import json

from polyrec.engine.cli._engine_args import add_config_argument, open_engine

__all__ = ["add_parser", "run"]


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "forget-user",
        help="erase a user's events and attributes (right to erasure); --export shows them first",
        description="Erase every event and the attributes of USER from the store and from its files (older "
        "versions are removed too), and with them the user's history and weight in popularity. "
        "Trained state (a fitted scorer or fusion) keeps what it learnt until the next `polyrec fit`.",
    )
    parser.add_argument("user", metavar="USER", help="the user id")
    add_config_argument(parser)
    parser.add_argument("--export", action="store_true", help="print what is stored about USER (JSON) first")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    with open_engine(args) as engine:
        if args.export:
            print(json.dumps(engine.export_user(args.user), indent=2, ensure_ascii=False))
        erased = engine.forget_user(args.user)
    plural = "" if erased.events == 1 else "s"
    attributes = ", their attributes" if erased.attributes else ""
    print(
        f"forgot user {erased.user!r}: {erased.events} event{plural}{attributes} erased, older store versions removed"
    )
    return 0
