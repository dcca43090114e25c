"""``polyrec users USERS``: store user attributes (for recommending new users from who they are)."""

from __future__ import annotations

import argparse
from pathlib import Path

from polyrec.engine.cli._engine_args import add_config_argument, open_engine

__all__ = ["add_parser", "run"]


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "users",
        help="store user attributes (JSONL, CSV/TSV, Parquet, or a dataset's users file)",
        description="Store the attributes of the users in USERS (any columns: categories, numbers, text); "
        "the id column is [columns] user_id (default: the events' user column, else id). A RecBole or "
        "GroupLens dataset directory reads its .user / u.user file. `polyrec fit` then learns which items "
        "users with such attributes pick, and new users are recommended from their attributes.",
    )
    parser.add_argument("users", type=Path, metavar="USERS", help="users file or dataset directory")
    add_config_argument(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    with open_engine(args) as engine:
        stored = engine.add_users(args.users)
    print(f"stored {stored} users")
    return 0
