"""``polyrec keys``: create, list and revoke the API keys ``polyrec serve`` accepts.

The keys file holds names, scopes and SHA-256 digests; a key's secret is printed once, when
it is created, and kept nowhere.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from polyrec.engine.server.auth import ApiKey

__all__ = ["add_parser", "run_create", "run_list", "run_revoke", "default_keys_file"]

DEFAULT_KEYS_FILE = Path("polyrec-keys.json")


def default_keys_file() -> Path:
    from polyrec.engine.server.auth import KEYS_FILE_ENV

    return Path(os.environ.get(KEYS_FILE_ENV) or DEFAULT_KEYS_FILE)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "keys",
        help="create, list and revoke API keys for `polyrec serve`",
        description="API keys for `polyrec serve --keys FILE`. Scopes: read (queries, GET), "
        "write (items, events, deletes). The file keeps only digests: a secret is shown once.",
    )
    parser.add_argument(
        "--file",
        type=Path,
        default=None,
        metavar="FILE",
        help=f"keys file (default: $POLYREC_KEYS_FILE, else {DEFAULT_KEYS_FILE})",
    )
    actions = parser.add_subparsers(title="actions", metavar="ACTION", required=True)
    create = actions.add_parser("create", help="create a key and print its secret (once)")
    create.add_argument("name", help="a name for the key (who or what uses it)")
    create.add_argument(
        "--scope",
        action="append",
        choices=("read", "write"),
        help="repeatable (default: read and write)",
    )
    create.set_defaults(func=run_create)
    listing = actions.add_parser("list", help="list the keys (names and scopes, never secrets)")
    listing.set_defaults(func=run_list)
    revoke = actions.add_parser("revoke", help="remove a key by name")
    revoke.add_argument("name")
    revoke.set_defaults(func=run_revoke)


def _path(args: argparse.Namespace) -> Path:
    return args.file if args.file is not None else default_keys_file()


def _existing(path: Path) -> list[ApiKey]:
    from polyrec.contracts import ConfigError
    from polyrec.engine.server.auth import read_keys_file

    if not path.exists():
        return []
    try:
        return read_keys_file(path)
    except ValueError as exc:
        raise ConfigError([("--file", str(exc))]) from None


def run_create(args: argparse.Namespace) -> int:
    from polyrec.contracts import ConfigError
    from polyrec.engine.server.auth import ApiKey, digest_of, new_secret, write_keys_file

    path = _path(args)
    keys = _existing(path)
    if any(key.name == args.name for key in keys):
        raise ConfigError([("name", f"a key named {args.name!r} exists in {path}; revoke it first or pick a name")])
    secret = new_secret()
    scopes = frozenset(args.scope or ("read", "write"))
    write_keys_file(path, [*keys, ApiKey(args.name, scopes, digest_of(secret))])
    print(f"created key {args.name!r} ({'+'.join(sorted(scopes))}) in {path}; its secret (shown only now):")
    print(secret)
    return 0


def run_list(args: argparse.Namespace) -> int:
    path = _path(args)
    keys = _existing(path)
    if not keys:
        print(f"no keys in {path}")
        return 0
    width = max(len(key.name) for key in keys)
    for key in keys:
        print(f"{key.name:<{width}}  {'+'.join(sorted(key.scopes))}  sha256:{key.digest[:12]}…")
    return 0


def run_revoke(args: argparse.Namespace) -> int:
    from polyrec.contracts import ConfigError
    from polyrec.engine.server.auth import write_keys_file

    path = _path(args)
    keys = _existing(path)
    kept = [key for key in keys if key.name != args.name]
    if len(kept) == len(keys):
        raise ConfigError([("name", f"no key named {args.name!r} in {path}")])
    write_keys_file(path, kept)
    print(f"revoked key {args.name!r} in {path} (a running server reads its keys at start: restart it)")
    return 0
