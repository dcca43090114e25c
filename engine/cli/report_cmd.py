"""``polyrec report``: an HTML report of some users' histories and recommendations."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from polyrec.engine.cli._engine_args import add_config_argument, open_engine, positive_int

if TYPE_CHECKING:
    from polyrec.engine.engine import Engine

__all__ = ["add_parser", "run", "DEFAULT_REPORT_USERS"]

#: users reported when --users is not given: the most active ones
DEFAULT_REPORT_USERS = 3


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "report",
        help="write an HTML report of users' histories, recommendations and an item map",
        description="For each user: the history, the top-k recommendations with the history items behind "
        "each (attention weights) and thumbnails of item pictures; plus a 2-D map of the item vectors "
        "(PNG). Writes DIR/report.html.",
    )
    add_config_argument(parser)
    parser.add_argument("--users", "-u", metavar="U1,U2", help="comma-separated user ids (default: the 3 most active)")
    parser.add_argument("--out", type=Path, default=Path("polyrec-report"), metavar="DIR",
                        help="output folder (default: polyrec-report)")  # fmt: skip
    parser.add_argument("-k", type=positive_int, default=5, help="recommendations per user (default: 5)")
    parser.add_argument("--color-by", metavar="FIELD", help="item metadata field that colours the map and tags")
    parser.add_argument("--label-field", default="title", metavar="FIELD", help="item field shown as its name")
    parser.add_argument("--media-root", type=Path, action="append", default=[], metavar="DIR",
                        help="folder relative picture paths are resolved against (repeatable; "
                        "default: the config's folder, then the working directory)")  # fmt: skip
    parser.add_argument("--map-method", choices=("tsne", "pca"), default="tsne", help="2-D projection (default: tsne)")
    parser.add_argument("--max-map-points", type=positive_int, default=3000, metavar="N",
                        help="items sampled for the map (default: 3000)")  # fmt: skip
    parser.add_argument("--json", action="store_true", help="print {html, map, users} as JSON")
    parser.set_defaults(func=run)


def _users(text: str | None) -> list[str]:
    from polyrec.contracts import ConfigError

    if text is None:
        return []
    users = [user.strip() for user in text.split(",") if user.strip()]
    if not users:
        raise ConfigError([("--users", "no user id given")])
    return users


def _most_active(engine: Engine, count: int) -> list[str]:
    from collections import Counter

    events = engine.events()
    return [user for user, _ in Counter(event.user for event in events).most_common(count)]


def run(args: argparse.Namespace) -> int:
    from polyrec.contracts import PolyrecError
    from polyrec.engine.report import ReportOptions, build_report

    users = _users(args.users)
    config_dir = Path(args.config).resolve().parent
    with open_engine(args) as engine:
        users = users or _most_active(engine, DEFAULT_REPORT_USERS)
        if not users:
            raise PolyrecError("no users to report: the event log is empty (pass --users)")
        options = ReportOptions(
            k=args.k,
            label_field=args.label_field,
            color_by=args.color_by,
            media_roots=[*args.media_root, config_dir],
            map_method=args.map_method,
            max_map_points=args.max_map_points,
            subtitle=[f"config: {args.config}", f"{engine.count()} items; users: {', '.join(users)}"],
        )
        files = build_report(engine, users, args.out, options)
    if args.json:
        payload = {"html": str(files.html), "map": str(files.map) if files.map else None, "users": users}
        print(json.dumps(payload, indent=2))
        return 0
    print(f"report: {files.html}", file=sys.stdout)
    if files.map is not None:
        print(f"map:    {files.map}")
    return 0
